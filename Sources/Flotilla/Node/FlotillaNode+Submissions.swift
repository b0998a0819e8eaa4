import Synchronization

/// Writes handed to a node with a completion handler (`FlotillaNode.apply(_:completion:)`),
/// from any thread, until the Ready loop takes them.
struct SubmissionInbox<Response: Sendable> {
    struct Submission: Sendable {
        let command: [UInt8]
        let completion: @Sendable (Result<Response, FlotillaError>) -> Void
    }

    enum State {
        /// Before `start()`: refused with `.notStarted`.
        case notStarted
        case open
        /// Since the node stopped taking requests: refused with this error.
        case closed(FlotillaError)
    }

    var state = State.notStarted
    var waiting: [Submission] = []
}

extension FlotillaNode {
    // MARK: Writes with a completion handler

    /// `apply(_:)` for a caller that is not in a task — a channel handler on an event loop:
    /// returns at once, and `completion` gets the state machine's response once `command` is
    /// applied on this node, or the error `apply(_:)` would throw (`.cancelled` aside).
    ///
    /// `completion` is called once, on the node's actor, inside its Ready loop as the entry is
    /// applied (or at once, on the caller's thread, when the node is not running): it must be
    /// quick and hand anything more to its own executor. A server whose event loop is also
    /// Swift concurrency's executor (as `flotilla serve` sets up) can write its answer there
    /// and then, before the node goes on to tell its followers the new commit index.
    ///
    /// Why: an `await` per request costs a task, a continuation and executor hops, and puts
    /// the answer behind the rest of the Ready (Benchmarks/README.md has what that cost).
    public nonisolated func apply(
        _ command: [UInt8], completion: @escaping @Sendable (Result<Machine.Response, FlotillaError>) -> Void
    ) {
        let refusal = submissions.withLock { inbox -> FlotillaError? in
            switch inbox.state {
            case .notStarted: return .notStarted
            case .closed(let error): return error
            case .open:
                let limit = configuration.maxQueuedWrites
                guard inbox.waiting.count < limit else { return .overloaded(queued: inbox.waiting.count, limit: limit) }
                inbox.waiting.append(.init(command: command, completion: completion))
                // One input wakes the loop for every submission that arrives before it runs.
                if inbox.waiting.count == 1 { inputs.yield(.submitted) }
                return nil
            }
        }
        if let refusal { completion(.failure(refusal)) }
    }

    /// Opens the inbox (the node is running).
    func openSubmissions() {
        submissions.withLock { $0.state = .open }
    }

    /// Closes the inbox with `error` and fails what waits in it.
    func closeSubmissions(_ error: FlotillaError) {
        let waiting = submissions.withLock { inbox in
            inbox.state = .closed(error)
            defer { inbox.waiting = [] }
            return inbox.waiting
        }
        for submission in waiting { submission.completion(.failure(error)) }
    }

    /// In the loop: the submitted writes join the batch for the next Ready, as `apply(_:)`'s do.
    func takeSubmissions(now: ContinuousClock.Instant) {
        let waiting = submissions.withLock { inbox in
            defer { inbox.waiting = [] }
            return inbox.waiting
        }
        for submission in waiting {
            submitWrite(submission.command, id: instance.ids.make(), now: now, completion: submission.completion)
        }
    }

    /// The one path of every write, `apply(_:)`'s and `apply(_:completion:)`'s: checks its size,
    /// and proposes it under request `id` — at once when a leader is known, else once one is
    /// (waiting at most `leaderWait`). `completion` is called once, on the actor.
    func submitWrite(
        _ command: [UInt8], id: UInt64, now: ContinuousClock.Instant,
        completion: @escaping @Sendable (Result<Machine.Response, FlotillaError>) -> Void
    ) {
        if let tooLarge = proposalSizeError(command) {
            completion(.failure(tooLarge))
            return
        }
        metrics.proposals.increment()
        let failed = metrics.proposalsFailed
        let counted: @Sendable (Result<Machine.Response, FlotillaError>) -> Void = { outcome in
            if case .failure = outcome { failed.increment() }
            completion(outcome)
        }
        let deadline = now + configuration.requestTimeout
        if instance.leader != 0 {
            parked[id] = .write(counted)
            instance.propose(command, id: id, deadline: deadline)
        } else {
            // Raft drops a proposal while no leader is known: wait for one under the same id
            // (so cancelling finds it), then propose (`proposeAwaitingWrite`).
            parked[id] = .writeAwaitingLeader(AwaitingWrite(command: command, deadline: deadline, completion: counted))
            instance.waitForLeader(0, id: id, deadline: min(deadline, now + configuration.leaderWait), expiry: .noLeader)
        }
    }

    /// A leader is known (`outcome` succeeded): propose the write that waited for one, still
    /// under `id`; or fail it with the wait's error.
    func proposeAwaitingWrite(_ write: AwaitingWrite<Machine.Response>, id: UInt64, outcome: Result<UInt64, FlotillaError>) {
        switch outcome {
        case .success:
            parked[id] = .write(write.completion)
            instance.propose(write.command, id: id, deadline: write.deadline)
            wake()
        case .failure(let error):
            write.completion(.failure(error))
        }
    }
}

/// A write that waits for a leader before it is proposed.
struct AwaitingWrite<Response: Sendable> {
    let command: [UInt8]
    let deadline: ContinuousClock.Instant
    let completion: @Sendable (Result<Response, FlotillaError>) -> Void
}
