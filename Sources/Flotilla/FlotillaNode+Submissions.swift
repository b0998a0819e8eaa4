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
    /// the answer behind the rest of the Ready; on a loaded leader that was a tenth of its
    /// event loop, and at one client a third of a write's latency.
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

    /// In the loop: the submitted writes join the batch for the next Ready, as `apply(_:)`'s
    /// do. One submitted while no leader is known waits for one in a task of its own, as
    /// `apply(_:)` does.
    func takeSubmissions(now: ContinuousClock.Instant) {
        let waiting = submissions.withLock { inbox in
            defer { inbox.waiting = [] }
            return inbox.waiting
        }
        for submission in waiting {
            if let tooLarge = proposalSizeError(submission.command) {
                submission.completion(.failure(tooLarge))
                continue
            }
            guard instance.leader != 0 else {
                Task {
                    do throws(FlotillaError) {
                        submission.completion(.success(try await self.apply(submission.command)))
                    } catch {
                        submission.completion(.failure(error))
                    }
                }
                continue
            }
            metrics.proposals.increment()
            let failed = metrics.proposalsFailed
            let id = instance.ids.make()
            parked[id] = .writeCallback { outcome in
                if case .failure = outcome { failed.increment() }
                submission.completion(outcome)
            }
            instance.propose(submission.command, id: id, deadline: now + configuration.requestTimeout)
        }
    }
}
