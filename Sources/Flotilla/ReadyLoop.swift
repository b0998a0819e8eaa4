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

/// A Ready the disk thread wrote: its number for `RawNode.onPersistReady`, and what waited for it.
struct PersistedReady: Sendable {
    let number: UInt64
    let messagesAfterPersist: [Message]
    /// It carried entries or a snapshot (proposals wait while such a write is under way).
    let carriedEntries: Bool
}

/// Requests gathered between two Readies: one proposal message and one read-index round serve
/// them all (etcd's server batches its reads the same way).
struct RequestBatch {
    var commands: [[UInt8]] = []
    var proposalIDs: [UInt64] = []
    var readIDs: [UInt64] = []

    var isEmpty: Bool { commands.isEmpty && readIDs.isEmpty }
}

/// The requests one read-index round answers.
struct ReadRound {
    let requestIDs: [UInt64]
    let deadline: ContinuousClock.Instant
    /// When it was last asked of raft (see `retryReadRounds`).
    var asked: ContinuousClock.Instant
}

extension FlotillaNode {
    /// The single serial loop. Each input is given to raft, then the Ready it produced is
    /// handled — unless one is still being persisted: then inputs keep being stepped (acks
    /// counted, proposals appended) and the next Ready, with everything gathered meanwhile,
    /// is taken once the disk thread reports. One Ready is out at a time, as RawNode requires.
    func loop(_ inputs: AsyncStream<LoopInput>) async {
        for await input in inputs {
            guard case .running = lifecycle else { break }
            do {
                try take(input)
                try driveReady()
            } catch {
                // The storage or the state machine failed: the state machine may no longer
                // follow the log. Stop; a restart recovers from what reached the disk.
                let reason = "\(error)"
                logger.error("the Ready loop failed; stopping the node", metadata: ["error": "\(reason)"])
                failure = reason
                failAllWaiters(.failed(reason))
                Task { await self.shutdown() }
                return
            }
        }
    }

    private func take(_ input: LoopInput) throws {
        switch input {
        case .tick:
            raw.tick()
            expireWaiters()
            retryReadRounds(askedBefore: ContinuousClock.now - configuration.tickInterval * configuration.electionTicks)
        case .message(let message):
            if let snapshot = message.snapshot, message.type == .snapshot,
                !SnapshotEnvelope.hasWellFormedHead(snapshot.data)
            {
                metrics.refusedInvalidValues.increment()
                logger.warning("refused a snapshot that is not a Flotilla snapshot", metadata: [
                    "from": "\(message.from)", "index": "\(snapshot.metadata.index)", "bytes": "\(snapshot.data.count)",
                ])
                return
            }
            do {
                try raw.step(message)
            } catch RaftError.invalidMessage(let why) {
                // Values no correct peer sends: a forger, or a bug in a peer. Nothing changed.
                metrics.refusedInvalidValues.increment()
                refusedMessages += 1
                if refusedMessages <= 10 || refusedMessages % 1000 == 0 {
                    logger.warning("refused a peer message", metadata: ["reason": "\(why)", "refused": "\(refusedMessages)"])
                }
            } catch RaftError.stepPeerNotFound {
                // A response from a node that is no longer (or never was) a member.
                metrics.refusedUnknownSender.increment()
                logger.debug("ignored a response from a non-member", metadata: ["type": "\(message.type)", "from": "\(message.from)"])
            } catch {
                logger.trace("ignored a message", metadata: ["type": "\(message.type)", "error": "\(error)"])
            }
        case .transport(.unreachable(let peer)):
            raw.reportUnreachable(peer)
        case .transport(.snapshot(let peer, let status)):
            raw.reportSnapshot(peer, status: status)
        case .wake:
            wakeQueued = false
        case .submitted:
            takeSubmissions()
        case .persisted(let result):
            let persisted = try result.get()
            writesInFlight -= 1
            if persisted.carriedEntries { entryWritesInFlight -= 1 }
            raw.onPersistReady(persisted.number)
            // Acknowledgements and votes: what they promise is on the disk now.
            transport.send(persisted.messagesAfterPersist)
        case .snapshotTaken(let result):
            snapshotUnderWay = false
            let index = try result.get()
            if index > snapshotIndex {  // 0: made stale by the leader's snapshot
                snapshotIndex = index
                metrics.snapshots.increment()
            }
            try maybeSnapshot()  // a member added meanwhile asks for another
        }
    }

    /// Asks the loop to look at the node again (after a request gave raft or the batch work).
    /// At most one wake waits in the queue at a time.
    func wake() {
        guard !wakeQueued else { return }
        wakeQueued = true
        inputs.yield(.wake)
    }

    func expireWaiters() {
        let now = ContinuousClock.now
        writes.expire(now: now)
        readIndexes.expire(now: now)
        appliedWaits.expire(now: now)
        leaderWaits.expire(now: now)
        memberships.expire(now: now)
        if !readRounds.isEmpty {
            readRounds = readRounds.filter { $0.value.deadline > now }
        }
    }

    /// Asks raft again for the read-index rounds last asked before `instant` (nil: all). A
    /// round is lost when the leader it went to lost its leadership or its life first, or a
    /// message was dropped; raft does not say so, so a round unanswered for an election
    /// timeout, or pending when a new leader appears, is asked again (etcd's server retries
    /// the same way). Asking later is still linearizable: the index answered is at
    /// least the commit index at the time of the new question, which follows every request in
    /// the round. If both answers come, the second finds the round gone and is ignored.
    func retryReadRounds(askedBefore instant: ContinuousClock.Instant?) {
        guard !readRounds.isEmpty else { return }
        let now = ContinuousClock.now
        for (round, pending) in readRounds where instant.map({ pending.asked < $0 }) ?? true {
            readRounds[round]?.asked = now
            raw.readIndex(readContext(round))
        }
    }

    /// Hands the batched requests to raft, then takes and handles Readies until none is left.
    ///
    /// Raft runs with asynchronous storage writes (`Config.asyncStorageWrites`), so the order
    /// that makes this safe is the core's: each Ready's writes go to the disk thread, in order,
    /// and `onPersistReady` reports them; what a Ready's messages promise (a follower's
    /// acknowledgements, votes) leaves only then (`messagesAfterPersist`); the leader sends its
    /// appends at once and writes its own log meanwhile (thesis §10.2.1), counting its own copy
    /// only once durable; committed entries are handed out only once durable here. Nothing in
    /// the loop waits for the disk, so a follower's loop (its event loop, its HTTP and transport)
    /// never sits in an fdatasync.
    private func driveReady() throws {
        while true {
            submitBatch()
            guard raw.hasReady else { return }
            let ready = raw.ready()
            if !justProposed.isEmpty { trackProposals(ready.entries) }
            if let soft = ready.softState { observe(soft) }
            if let snapshot = ready.snapshot, !snapshot.isEmpty {
                // Restored before it is saved (and so before it is acknowledged, which waits for
                // the save): a snapshot the state machine cannot restore stops the node with its
                // data directory as it was, so it starts again and asks the leader anew, instead
                // of persisting a snapshot it could never start from. The state machine is not
                // durable, so running ahead of the disk by one snapshot loses nothing.
                try restore(snapshot)
            }
            // The appends that only carry the new commit index go after the answers, which
            // requests waiting with a completion handler write as their entries apply: the
            // client need not wait for the followers to learn the commit index, and on a machine
            // they share, sending first woke them onto the cores the answers needed. Appends with
            // entries, votes and heartbeats go first, and the disk thread starts on this Ready's
            // entries before the answers are written.
            let (later, now) = role == .leader && !ready.committedEntries.isEmpty
                ? ready.messages.partitioned { $0.type == .append && $0.entries.isEmpty }
                : ([], ready.messages)
            transport.send(now)
            let mustSave = ready.hardState != nil || !ready.entries.isEmpty || ready.snapshot != nil
            if mustSave || !ready.messagesAfterPersist.isEmpty { save(ready) }
            try applyCommitted(ready)
            let applyingTo = max(ready.committedEntries.last?.index ?? 0, ready.snapshot?.metadata.index ?? 0)
            if applyingTo > 0 { raw.advanceApply(to: applyingTo) }
            transport.send(later)
            try maybeSnapshot()
        }
    }

    /// The requests gathered since the last Ready, to raft in one proposal and one read round.
    /// Proposals wait while a write of entries is under way: they gather, and go to raft (and to
    /// the disk) together once it is done, one fdatasync for all of them (group commit).
    private func submitBatch() {
        guard !batch.isEmpty else { return }
        if !batch.commands.isEmpty && entryWritesInFlight == 0 {
            let commands = batch.commands
            let proposalIDs = batch.proposalIDs
            batch.commands = []
            batch.proposalIDs = []
            do {
                try raw.propose(batch: commands)
                if role == .leader { justProposed = proposalIDs }
            } catch {
                let failure = droppedError(error)
                for id in proposalIDs { writes.resolve(id, .failure(failure)) }
            }
        }
        if !batch.readIDs.isEmpty {
            let readIDs = batch.readIDs
            batch.readIDs = []
            let round = ids.make()
            let deadline = ContinuousClock.now + configuration.requestTimeout
            readRounds[round] = ReadRound(requestIDs: readIDs, deadline: deadline, asked: .now)
            raw.readIndex(readContext(round))
        }
    }

    /// Writes `ready` on the disk thread (after the writes submitted before it);
    /// `.persisted` comes back into the loop.
    private func save(_ ready: Ready) {
        let storage = storage
        let walSave = metrics.walSave
        let inputs = inputs
        let carriedEntries = !ready.entries.isEmpty || ready.snapshot != nil
        writesInFlight += 1
        if carriedEntries { entryWritesInFlight += 1 }
        disk.submit { isActive in
            guard isActive else { return }  // shutting down: the Ready is dropped, like a crash
            inputs.yield(.persisted(Result {
                try Self.timedSave(ready, storage, walSave)
                return PersistedReady(
                    number: ready.number, messagesAfterPersist: ready.messagesAfterPersist, carriedEntries: carriedEntries)
            }))
        }
    }

    /// `storage.save(ready)` on the disk thread, its time recorded in `flotilla_wal_save_duration`.
    private static func timedSave(_ ready: Ready, _ storage: DiskStorage, _ walSave: Metrics.Timer) throws {
        let start = ContinuousClock.now
        defer { walSave.recordNanoseconds(nanoseconds(ContinuousClock.now - start)) }
        try storage.save(ready)
    }

    /// Notes the indexes at which the batch just proposed was appended: the last entries of the
    /// Ready that follows (a leader appends a proposal at once; a node that is no longer the
    /// leader forwarded it instead, and the ids do not match).
    private func trackProposals(_ entries: [Entry]) {
        let ids = justProposed
        justProposed = []
        guard entries.count >= ids.count else { return }
        for (entry, id) in zip(entries.suffix(ids.count), ids) where ProposalEnvelope.requestID(of: entry.data) == id {
            proposedAt[entry.index] = id
        }
    }

    /// Applies `ready`'s committed entries, resumes the requests waiting for them, and hands
    /// out its read states.
    private func applyCommitted(_ ready: Ready) throws {
        if let hardState = ready.hardState { committed = max(committed, hardState.commit) }
        for entry in ready.committedEntries { try apply(entry) }
        if !ready.committedEntries.isEmpty {
            metrics.commits.increment(by: Int64(ready.committedEntries.count))
            metrics.appliedIndex.record(Int64(applied))
            metrics.applyLag.record(Int64(committed >= applied ? committed - applied : 0))
        }
        // Reads: a ReadState says "serve the reads of this round once applied ≥ index".
        for readState in ready.readStates {
            guard let round = requestID(fromReadContext: readState.requestContext),
                  let requests = readRounds.removeValue(forKey: round)
            else { continue }
            for id in requests.requestIDs { readIndexes.resolve(id, .success(readState.index)) }
        }
        if !appliedWaits.isEmpty {
            let applied = self.applied
            appliedWaits.resolveAll(where: { $0 <= applied }, with: { _ in () })
        }
    }

    private func observe(_ soft: SoftState) {
        let newLeader = soft.lead != 0 && soft.lead != leader
        if soft.lead != leader {
            leader = soft.lead
            metrics.leaderChanges.increment()
            logger.info(soft.lead == 0 ? "no leader" : "leader changed", metadata: [
                "leader": "\(soft.lead)", "role": "\(soft.raftState)",
            ])
        }
        role = soft.raftState
        metrics.isLeader.record(role == .leader ? 1 : 0)
        let leader = self.leader
        if leader != 0 {
            leaderWaits.resolveAll(where: { $0 == 0 || $0 == leader }, with: { _ in leader })
        }
        // Rounds asked of the previous leader are lost with it: ask the new one.
        if newLeader { retryReadRounds(askedBefore: nil) }
    }
}

func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
}

extension Array {
    /// The elements for which `isLater` holds, and the others, each in their order.
    func partitioned(by isLater: (Element) -> Bool) -> (later: [Element], now: [Element]) {
        var later: [Element] = [], now: [Element] = []
        for element in self {
            if isLater(element) { later.append(element) } else { now.append(element) }
        }
        return (later, now)
    }
}
