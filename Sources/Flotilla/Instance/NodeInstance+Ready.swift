import Logging
import Raft

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

extension NodeInstance {
    /// Hands the batched requests to raft, then takes and handles Readies until none is left.
    ///
    /// Raft runs with asynchronous storage writes (`Config.asyncStorageWrites`), so the order
    /// that makes this safe is the core's: each Ready's writes go to the storage (`.persist`),
    /// in order, and `persisted` reports them; what a Ready's messages promise (a follower's
    /// acknowledgements, votes) leaves only then (`messagesAfterPersist`); the leader sends its
    /// appends at once and writes its own log meanwhile (thesis §10.2.1), counting its own copy
    /// only once durable; committed entries are handed out only once durable here. Nothing
    /// waits for the disk, so a shell never sits in an fdatasync on its event loop.
    package mutating func drive(now: ContinuousClock.Instant) throws {
        while true {
            submitBatch(now: now)
            guard raw.hasReady else { return }
            let ready = raw.ready()
            if !justProposed.isEmpty { trackProposals(ready.entries) }
            if let soft = ready.softState { observe(soft, now: now) }
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
            // entries, votes and heartbeats go first, and the disk starts on this Ready's entries
            // before the answers are written.
            let (later, first) = role == .leader && !ready.committedEntries.isEmpty
                ? ready.messages.partitioned { $0.type == .append && $0.entries.isEmpty }
                : ([], ready.messages)
            send(first)
            let mustSave = ready.hardState != nil || !ready.entries.isEmpty || ready.snapshot != nil
            if mustSave || !ready.messagesAfterPersist.isEmpty {
                writesInFlight += 1
                if PersistedReady.carriesEntries(ready) { entryWritesInFlight += 1 }
                emit(.persist(ready))
            }
            try applyCommitted(ready)
            let applyingTo = max(ready.committedEntries.last?.index ?? 0, ready.snapshot?.metadata.index ?? 0)
            if applyingTo > 0 { raw.advanceApply(to: applyingTo) }
            send(later)
            try maybeSnapshot()
        }
    }

    /// The requests gathered since the last Ready, to raft in one proposal and one read round.
    /// Proposals wait while a write of entries is under way: they gather, and go to raft (and to
    /// the disk) together once it is done, one fdatasync for all of them (group commit).
    private mutating func submitBatch(now: ContinuousClock.Instant) {
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
                for id in proposalIDs where writes.remove(id) { complete(id, .applied(.failure(failure))) }
            }
        }
        if !batch.readIDs.isEmpty {
            let readIDs = batch.readIDs
            batch.readIDs = []
            let round = ids.make()
            readRounds[round] = ReadRound(requestIDs: readIDs, deadline: now + settings.requestTimeout, asked: now)
            raw.readIndex(readContext(round))
        }
    }

    /// Notes the indexes at which the batch just proposed was appended: the last entries of the
    /// Ready that follows (a leader appends a proposal at once; a node that is no longer the
    /// leader forwarded it instead, and the ids do not match).
    private mutating func trackProposals(_ entries: [Entry]) {
        let ids = justProposed
        justProposed = []
        guard entries.count >= ids.count else { return }
        for (entry, id) in zip(entries.suffix(ids.count), ids) where ProposalEnvelope.requestID(of: entry.data) == id {
            proposedAt[entry.index] = id
        }
    }

    /// Applies `ready`'s committed entries, answers the requests waiting for them, and hands
    /// out its read states.
    private mutating func applyCommitted(_ ready: Ready) throws {
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
            for id in requests.requestIDs where readIndexes.remove(id) { complete(id, .readIndex(.success(readState.index))) }
        }
        if !appliedWaits.isEmpty {
            let applied = self.applied
            for waiter in appliedWaits.removeAll(where: { $0 <= applied }) { complete(waiter.id, .done(.success(()))) }
        }
    }

    private mutating func observe(_ soft: SoftState, now: ContinuousClock.Instant) {
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
            for waiter in leaderWaits.removeAll(where: { $0 == 0 || $0 == leader }) { complete(waiter.id, .leader(.success(leader))) }
        }
        // Rounds asked of the previous leader are lost with it: ask the new one.
        if newLeader { retryReadRounds(askedBefore: nil, now: now) }
    }
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
