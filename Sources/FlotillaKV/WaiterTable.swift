/// Requests waiting for something the Ready loop will do: an entry applied, a ReadState
/// delivered, the applied index reaching a read's index, a leader elected.
///
/// A request registers its id *before* it hands its work to raft, so the outcome can arrive
/// before the request gets round to waiting for it (the Ready loop and the request both run on
/// the owning actor, in either order); `attach` then finds the outcome already there. Every
/// registration carries a deadline; `expire(now:)` fails the overdue ones with their expiry
/// error. Not thread-safe on its own: it lives inside an actor.
struct WaiterTable<Value: Sendable> {
    typealias Outcome = Result<Value, ReplicaError>

    private struct Waiter {
        var continuation: CheckedContinuation<Outcome, Never>?
        var outcome: Outcome?
        let deadline: ContinuousClock.Instant
        let expiry: ReplicaError
    }

    private var waiters: [UInt64: Waiter] = [:]

    var count: Int { waiters.count }

    func contains(_ id: UInt64) -> Bool { waiters[id] != nil }

    /// Starts waiting for `id`; the request fails with `expiry` if nothing arrives by `deadline`.
    mutating func register(_ id: UInt64, deadline: ContinuousClock.Instant, expiry: ReplicaError) {
        waiters[id] = Waiter(continuation: nil, outcome: nil, deadline: deadline, expiry: expiry)
    }

    /// Forgets `id` without resuming anyone (its request never got as far as waiting).
    mutating func remove(_ id: UInt64) {
        waiters[id] = nil
    }

    /// Parks `continuation` until `id`'s outcome arrives, or resumes it at once if it has.
    mutating func attach(_ id: UInt64, _ continuation: CheckedContinuation<Outcome, Never>) {
        guard var waiter = waiters[id] else {
            // Not registered: the caller's bug, but never leave a continuation hanging.
            continuation.resume(returning: .failure(.failed("waited for request \(id) that was never registered")))
            return
        }
        if let outcome = waiter.outcome {
            waiters[id] = nil
            continuation.resume(returning: outcome)
        } else {
            waiter.continuation = continuation
            waiters[id] = waiter
        }
    }

    /// Delivers `id`'s outcome. Returns false if nobody waits for `id` (it timed out, or it was
    /// proposed by an earlier incarnation of this node).
    @discardableResult
    mutating func resolve(_ id: UInt64, _ outcome: Outcome) -> Bool {
        guard var waiter = waiters[id], waiter.outcome == nil else { return false }
        if let continuation = waiter.continuation {
            waiters[id] = nil
            continuation.resume(returning: outcome)
        } else {
            waiter.outcome = outcome
            waiters[id] = waiter
        }
        return true
    }

    /// Delivers the same outcome to everyone waiting.
    mutating func resolveAll(_ outcome: Outcome) {
        for id in Array(waiters.keys) { resolve(id, outcome) }
    }

    /// Fails every request whose deadline has passed with its expiry error.
    mutating func expire(now: ContinuousClock.Instant) {
        let overdue = waiters.compactMap { id, waiter in
            waiter.outcome == nil && waiter.deadline <= now ? (id, waiter.expiry) : nil
        }
        for (id, expiry) in overdue { resolve(id, .failure(expiry)) }
    }
}
