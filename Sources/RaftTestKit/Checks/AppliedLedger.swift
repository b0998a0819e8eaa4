import Flotilla
import Raft

/// Every command any node applied, by log index, over every node and every life of it: the
/// simulator's check of State Machine Safety on the runtime's own apply path. Raft promises that
/// no two nodes ever apply different commands at one index, and power loss must not change
/// that: a node that applied a command at index 41 before every node lost power, and the node
/// that applies index 41 after, apply the same bytes.
final class AppliedLedger {
    private(set) var commands: [UInt64: [UInt8]] = [:]
    /// Where each command was first applied. Puts are unique (each carries its operation's
    /// number in its value); a delete's bytes repeat, so its entry is the latest one.
    private(set) var indexOfCommand: [[UInt8]: UInt64] = [:]
    private(set) var violation: String?

    func applied(_ command: [UInt8], index: UInt64, on node: UInt64) {
        if let earlier = commands[index] {
            if earlier != command && violation == nil {
                violation = "n\(node) applied \(printable(command)) at index \(index), where another node (or an earlier "
                    + "life) applied \(printable(earlier))"
            }
            return
        }
        commands[index] = command
        indexOfCommand[command] = index
    }
}

/// A key-value store that tells the ledger what it applies; the rest is the store's own.
struct LedgeredStore<Inner: SimulatedKeyValueStore>: StateMachine {
    var inner: Inner
    let ledger: AppliedLedger
    let node: UInt64

    mutating func apply(_ command: [UInt8], index: UInt64) -> Inner.Response {
        ledger.applied(command, index: index, on: node)
        return inner.apply(command, index: index)
    }

    func snapshot() throws -> [UInt8] { try inner.snapshot() }

    mutating func restore(from snapshot: [UInt8]) throws { try inner.restore(from: snapshot) }

    mutating func captureSnapshot() throws -> @Sendable () throws -> [UInt8] { try inner.captureSnapshot() }
}

/// Bytes as text, for a failure's message (the simulator's commands are text; other bytes show as dots).
func printable(_ bytes: [UInt8]) -> String {
    let text = String(decoding: bytes.map { (32...126).contains($0) ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
    return "\"\(text)\""
}
