/// Requests a `NodeInstance` owes an answer, by request id: what each waits for (`key`: an
/// index, a leader id), until when, and the error it gets then. Only bookkeeping: the answer
/// leaves the instance as a `NodeAction.complete`, and who waits for it (a task's continuation,
/// a completion handler, a simulated client) is the shell's business.
///
/// A request is registered and its work handed to raft in the same synchronous step, so
/// nothing can be answered before it is registered.
struct Waiters {
    struct Waiter {
        let deadline: ContinuousClock.Instant
        let expiry: FlotillaError
        let key: UInt64
    }

    private var waiters: [UInt64: Waiter] = [:]

    var isEmpty: Bool { waiters.isEmpty }
    var count: Int { waiters.count }

    mutating func register(_ id: UInt64, key: UInt64 = 0, deadline: ContinuousClock.Instant, expiry: FlotillaError = .timeout) {
        waiters[id] = Waiter(deadline: deadline, expiry: expiry, key: key)
    }

    /// Whether `id` waited here (it is removed). False when nobody waits: it timed out, was
    /// cancelled, or was proposed by another node or an earlier run of this one.
    mutating func remove(_ id: UInt64) -> Bool {
        waiters.removeValue(forKey: id) != nil
    }

    /// Removes the waiters whose key satisfies `predicate`, returning them (by ascending id, so
    /// that the answers go out in one order on every run).
    mutating func removeAll(where predicate: (UInt64) -> Bool) -> [(id: UInt64, key: UInt64)] {
        guard !waiters.isEmpty else { return [] }
        let matching = waiters.filter { predicate($0.value.key) }.map { (id: $0.key, key: $0.value.key) }.sorted { $0.id < $1.id }
        for waiter in matching { waiters[waiter.id] = nil }
        return matching
    }

    /// Removes every waiter, returning their ids (ascending).
    mutating func removeAll() -> [UInt64] {
        defer { waiters.removeAll() }
        return waiters.keys.sorted()
    }

    /// Removes the waiters whose deadline has passed, returning them with their expiry error.
    mutating func removeExpired(now: ContinuousClock.Instant) -> [(id: UInt64, error: FlotillaError)] {
        guard !waiters.isEmpty else { return [] }
        let overdue = waiters.filter { $0.value.deadline <= now }.map { (id: $0.key, error: $0.value.expiry) }.sorted { $0.id < $1.id }
        for waiter in overdue { waiters[waiter.id] = nil }
        return overdue
    }
}

/// Request ids that do not repeat within a run or across restarts: a random 64-bit start, then
/// counting up (0 is "nobody waits"). The start comes from the instance's seed, so a simulated
/// run draws the same ids every time.
package struct RequestIDs {
    private var next: UInt64

    init(start: UInt64) {
        next = start
    }

    package mutating func make() -> UInt64 {
        next &+= 1
        if next == 0 { next = 1 }
        return next
    }
}
