import Logging
import Metrics
import Raft
import RaftNIO
import RaftWAL

/// What wakes the Ready loop.
enum LoopInput: Sendable {
    case tick
    case message(Message)
    case transport(TransportEvent)
    /// A request gave the node work (a proposal, a read, a transfer…).
    case wake
    /// Writes wait in the submission inbox (`apply(_:completion:)`).
    case submitted
    /// The disk thread finished writing a Ready (or failed to).
    case persisted(Result<PersistedReady, any Error>)
    /// The snapshot under way was written, at this index (or failed).
    case snapshotTaken(Result<UInt64, any Error>)
}

/// Who waits for a request's answer. A write's is a completion handler whoever made it (the
/// async `apply` resumes its continuation from one); the other requests are async only.
enum Parked<Response: Sendable> {
    case write(@Sendable (Result<Response, FlotillaError>) -> Void)
    /// A write waiting, under the same id, for a leader to be known before it is proposed.
    case writeAwaitingLeader(AwaitingWrite<Response>)
    case readIndex(CheckedContinuation<Result<UInt64, FlotillaError>, Never>)
    case done(CheckedContinuation<Result<Void, FlotillaError>, Never>)
    case leader(CheckedContinuation<Result<UInt64, FlotillaError>, Never>)
}

extension FlotillaNode {
    /// The single serial loop: each input goes to the instance, which then drives raft's
    /// Readies; the actions it queued are performed before the next input.
    func loop(_ inputs: AsyncStream<LoopInput>) async {
        for await input in inputs {
            guard case .running = lifecycle else { break }
            do {
                let now = clock.now
                try take(input, now: now)
                try instance.drive(now: now)
                perform(instance.takeActions())
            } catch {
                // The storage or the state machine failed: the state machine may no longer
                // follow the log. Stop; a restart recovers from what reached the disk.
                perform(instance.takeActions())
                let reason = "\(error)"
                logger.error("the Ready loop failed; stopping the node", metadata: ["error": "\(reason)"])
                failure = reason
                failAllWaiters(.failed(reason))
                Task { await self.shutdown() }
                return
            }
        }
    }

    private func take(_ input: LoopInput, now: ContinuousClock.Instant) throws {
        switch input {
        case .tick: instance.tick(now: now)
        case .message(let message): instance.receive(message)
        case .transport(let event): instance.transportEvent(event)
        case .wake: wakeQueued = false
        case .submitted: takeSubmissions(now: now)
        case .persisted(let result): instance.persisted(try result.get())
        case .snapshotTaken(let result): try instance.snapshotTaken(result)
        }
    }

    /// Asks the loop to look at the node again (after a request gave raft or the batch work).
    /// At most one wake waits in the queue at a time.
    func wake() {
        guard !wakeQueued else { return }
        wakeQueued = true
        inputs.yield(.wake)
    }

    /// Does what the instance asked, in order.
    func perform(_ actions: [NodeAction<Machine.Response>]) {
        for action in actions {
            switch action {
            case .send(let messages): transport.send(messages)
            case .persist(let ready): save(ready)
            case .snapshot(let job): takeSnapshot(job)
            case .addPeer(let id, let address): transport.addPeer(id: id, address: address)
            case .removePeer(let id): transport.removePeer(id: id)
            case .complete(let id, let outcome): resume(id, outcome)
            }
        }
    }

    /// Hands the answer to whoever waits for request `id`.
    private func resume(_ id: UInt64, _ outcome: RequestOutcome<Machine.Response>) {
        guard let waiter = parked.removeValue(forKey: id) else { return }
        switch (waiter, outcome) {
        case (.write(let completion), .applied(let result)): completion(result)
        case (.writeAwaitingLeader(let write), .leader(let result)): proposeAwaitingWrite(write, id: id, outcome: result)
        case (.readIndex(let continuation), .readIndex(let result)): continuation.resume(returning: result)
        case (.done(let continuation), .done(let result)): continuation.resume(returning: result)
        case (.leader(let continuation), .leader(let result)): continuation.resume(returning: result)
        default:
            preconditionFailure("request \(id) was answered with \(outcome), which is not what it waits for")
        }
    }

    /// Writes `ready` on the disk thread (after the writes submitted before it);
    /// `.persisted` comes back into the loop.
    private func save(_ ready: Ready) {
        let storage = storage
        let walSave = metrics.walSave
        let inputs = inputs
        let transport = transport
        disk.submit { isActive in
            guard isActive else { return }  // shutting down: the Ready is dropped, like a crash
            let result = Result {
                let start = ContinuousClock.now
                defer { walSave.recordNanoseconds(nanoseconds(ContinuousClock.now - start)) }
                try storage.save(ready)
                return PersistedReady(ready)
            }
            guard case .success(let persisted) = result else {
                inputs.yield(.persisted(result))
                return
            }
            // What the messages promise (a follower's acknowledgement, a vote) is on the disk:
            // they leave from here, not after a trip through the actor, which would put thread
            // wakeups on the path of every write a follower acknowledges.
            transport.send(persisted.messagesAfterPersist)
            inputs.yield(.persisted(.success(persisted.messagesSent())))
        }
    }

    /// The snapshot file on the snapshot thread, beside the WAL's writes; its WAL record and the
    /// compaction on the disk thread, after the saves submitted before; then `.snapshotTaken`.
    private func takeSnapshot(_ job: SnapshotJob) {
        let storage = storage
        let disk = disk
        let inputs = inputs
        let logger = logger
        snapshotThread.submit { isActive in
            guard isActive else { return }
            let file: Snapshot?
            do {
                file = try job.writeFile(to: storage)
            } catch {
                inputs.yield(.snapshotTaken(.failure(error)))
                return
            }
            guard let file else {  // the leader's snapshot, newer, arrived meanwhile
                inputs.yield(.snapshotTaken(.success(0)))
                return
            }
            disk.submit { isActive in
                guard isActive else { return }
                let result = Result<UInt64, any Error> { try job.record(file, in: storage) }
                if case .success = result {
                    logger.debug("snapshot taken", metadata: ["index": "\(job.index)", "bytes": "\(file.data.count)"])
                }
                inputs.yield(.snapshotTaken(result))
            }
        }
    }
}

func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
}
