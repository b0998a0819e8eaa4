/// Requests parked until the Ready loop does what they wait for: an entry applied, a ReadState
/// delivered, the applied index reaching a read's index, a leader elected, a conf change applied.
///
/// Lives inside the `FlotillaNode` actor (not thread-safe on its own). A request registers its
/// continuation and hands its work to raft in the same synchronous actor step, so nothing can
/// be resolved before it is registered. Each waiter has a deadline (`expire(now:)`, called every
/// tick, fails overdue ones with `.timeout` or their own expiry error) and a `key`: what it
/// waits for (an index, a leader id), for the tables that are scanned rather than looked up.
struct Waiters<Value: Sendable> {
    typealias Continuation = CheckedContinuation<Result<Value, FlotillaError>, Never>
    /// Called on the node's actor with the outcome: for requests that do not wait in a task.
    typealias Callback = @Sendable (Result<Value, FlotillaError>) -> Void

    private enum Completion {
        case continuation(Continuation)
        case callback(Callback)

        func complete(_ outcome: Result<Value, FlotillaError>) {
            switch self {
            case .continuation(let continuation): continuation.resume(returning: outcome)
            case .callback(let callback): callback(outcome)
            }
        }
    }

    private struct Waiter {
        let completion: Completion
        let deadline: ContinuousClock.Instant
        let expiry: FlotillaError
        let key: UInt64
    }

    private var waiters: [UInt64: Waiter] = [:]

    var isEmpty: Bool { waiters.isEmpty }
    var count: Int { waiters.count }

    mutating func register(
        _ id: UInt64, key: UInt64 = 0, deadline: ContinuousClock.Instant, expiry: FlotillaError = .timeout,
        _ continuation: Continuation
    ) {
        waiters[id] = Waiter(completion: .continuation(continuation), deadline: deadline, expiry: expiry, key: key)
    }

    mutating func register(
        _ id: UInt64, key: UInt64 = 0, deadline: ContinuousClock.Instant, expiry: FlotillaError = .timeout,
        callback: @escaping Callback
    ) {
        waiters[id] = Waiter(completion: .callback(callback), deadline: deadline, expiry: expiry, key: key)
    }

    /// Resumes `id`'s request (or calls its callback) with `outcome`. False when nobody waits
    /// (it timed out, was cancelled, or was proposed by another node or an earlier run of this
    /// one).
    @discardableResult
    mutating func resolve(_ id: UInt64, _ outcome: Result<Value, FlotillaError>) -> Bool {
        guard let waiter = waiters.removeValue(forKey: id) else { return false }
        waiter.completion.complete(outcome)
        return true
    }

    /// Resolves every waiter whose key satisfies `predicate` with `value(key)`.
    mutating func resolveAll(where predicate: (UInt64) -> Bool, with value: (UInt64) -> Value) {
        guard !waiters.isEmpty else { return }
        for (id, waiter) in waiters where predicate(waiter.key) {
            resolve(id, .success(value(waiter.key)))
        }
    }

    /// Fails every waiter with `error` (the node stopped).
    mutating func failAll(_ error: FlotillaError) {
        let all = waiters
        waiters.removeAll()
        for waiter in all.values { waiter.completion.complete(.failure(error)) }
    }

    /// Fails the waiters whose deadline has passed with their expiry error.
    mutating func expire(now: ContinuousClock.Instant) {
        guard !waiters.isEmpty else { return }
        for (id, waiter) in waiters where waiter.deadline <= now {
            resolve(id, .failure(waiter.expiry))
        }
    }
}

/// Request ids that do not repeat within a run or across restarts: a random 64-bit start, then
/// counting up (0 is "nobody waits").
struct RequestIDs {
    private var next: UInt64

    init() {
        var rng = SystemRandomNumberGenerator()
        next = rng.next()
    }

    mutating func make() -> UInt64 {
        next &+= 1
        if next == 0 { next = 1 }
        return next
    }
}
