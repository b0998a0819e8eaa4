/// One client operation on a key-value store, as the client saw it: what it asked, when it asked
/// (`invoked`) and when the answer came (`returned`), in the simulation's nanoseconds.
public struct KeyValueOperation: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case put(value: [UInt8])
        case delete
        /// A read that returned `observed` (nil: the key was absent).
        case get(observed: [UInt8]?)
    }

    public var client: Int
    public var key: [UInt8]
    public var kind: Kind
    public var invoked: UInt64
    /// Nil when the outcome is unknown: a write that failed or timed out may or may not have
    /// taken effect, at any time after `invoked` (Porcupine's "infinite return time").
    public var returned: UInt64?

    public init(client: Int, key: [UInt8], kind: Kind, invoked: UInt64, returned: UInt64?) {
        self.client = client
        self.key = key
        self.kind = kind
        self.invoked = invoked
        self.returned = returned
    }

    public var description: String {
        let what: String
        switch kind {
        case .put(let value): what = "put \(String(decoding: value, as: UTF8.self))"
        case .delete: what = "delete"
        case .get(let observed): what = "get → \(observed.map { String(decoding: $0, as: UTF8.self) } ?? "absent")"
        }
        let end = returned.map { "\($0)" } ?? "?"
        return "client \(client) \(String(decoding: key, as: UTF8.self)): \(what) [\(invoked), \(end)]"
    }
}

/// A linearizability checker for a key-value history, key by key (each key is a register, and
/// a history is linearizable if and only if each key's is: linearizability is local). The
/// search is Wing & Gong's, with Lowe's memoization of (operations linearized, value) as
/// Porcupine does: it tries each operation that could take effect first — one invoked before
/// every pending operation returned — and backtracks.
public enum Linearizability {
    /// Nil if the history is linearizable; otherwise the first key whose history is not (or
    /// could not be decided within `budget` search states: the search is exponential in the
    /// worst case, and a run must end), and its operations.
    public static func check(_ history: [KeyValueOperation], budget: Int = 200_000) -> String? {
        var byKey: [[UInt8]: [KeyValueOperation]] = [:]
        for operation in history { byKey[operation.key, default: []].append(operation) }
        for key in byKey.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let operations = byKey[key]!
            var search = Search(operations: operations.sorted { $0.invoked < $1.invoked }, budget: budget)
            if !search.run() {
                let lines = operations.sorted { $0.invoked < $1.invoked }.map { "    \($0)" }.joined(separator: "\n")
                let verdict = search.exhausted ? "could not be decided in \(budget) search states" : "is not linearizable"
                return "the history of key \(String(decoding: key, as: UTF8.self)) \(verdict) (\(operations.count) operations):\n\(lines)"
            }
        }
        return nil
    }

    private struct Search {
        let operations: [KeyValueOperation]
        /// Return times, unknown ones as UInt64.max.
        let returns: [UInt64]
        var seen: Set<Memo> = []
        var budget: Int
        var exhausted = false

        struct Memo: Hashable {
            var done: [UInt64]
            var value: [UInt8]?
        }

        init(operations: [KeyValueOperation], budget: Int) {
            self.operations = operations
            self.budget = budget
            returns = operations.map { $0.returned ?? .max }
        }

        mutating func run() -> Bool {
            var done = [UInt64](repeating: 0, count: (operations.count + 63) / 64)
            return search(&done, value: nil, remaining: operations.count)
        }

        private mutating func search(_ done: inout [UInt64], value: [UInt8]?, remaining: Int) -> Bool {
            if remaining == 0 { return true }
            budget -= 1
            if budget < 0 {
                exhausted = true
                return false
            }
            let memo = Memo(done: done, value: value)
            if seen.contains(memo) { return false }
            // An operation can take effect next only if it was invoked before every pending
            // operation returned (otherwise that one must come first).
            var earliestReturn = UInt64.max
            for i in operations.indices where !isDone(done, i) { earliestReturn = min(earliestReturn, returns[i]) }
            for i in operations.indices where !isDone(done, i) {
                let operation = operations[i]
                if operation.invoked > earliestReturn { break }  // sorted by invocation
                let next: [UInt8]?
                switch operation.kind {
                case .put(let written): next = written
                case .delete: next = nil
                case .get(let observed):
                    guard observed == value else { continue }
                    next = value
                }
                setDone(&done, i, true)
                if search(&done, value: next, remaining: remaining - 1) { return true }
                setDone(&done, i, false)
            }
            seen.insert(memo)
            return false
        }

        private func isDone(_ done: [UInt64], _ i: Int) -> Bool { done[i / 64] & (1 << UInt64(i % 64)) != 0 }

        private func setDone(_ done: inout [UInt64], _ i: Int, _ on: Bool) {
            if on { done[i / 64] |= 1 << UInt64(i % 64) } else { done[i / 64] &= ~(1 << UInt64(i % 64)) }
        }
    }
}
