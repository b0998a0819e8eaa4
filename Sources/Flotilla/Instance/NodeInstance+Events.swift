import Logging
import Raft
import RaftNIO

/// The events a `NodeInstance` is driven by: the clock, the network, the storage's reports,
/// and requests. After each, the shell calls `drive` and performs `takeActions()`.
extension NodeInstance {
    // MARK: The clock, the network, the storage

    /// One tick of raft's clock; overdue requests fail, lost read rounds are asked again.
    package mutating func tick(now: ContinuousClock.Instant) {
        raw.tick()
        expireWaiters(now: now)
        retryReadRounds(askedBefore: now - settings.tickInterval * settings.electionTicks, now: now)
    }

    /// A message from a peer. What raft refuses (values no correct peer sends, a response from
    /// a non-member) changes nothing and is counted.
    package mutating func receive(_ message: Message) {
        if let snapshot = message.snapshot, message.type == .snapshot, !SnapshotEnvelope.hasWellFormedHead(snapshot.data) {
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
    }

    /// What the transport reports: a peer unreachable, a snapshot sent or failed.
    package mutating func transportEvent(_ event: TransportEvent) {
        switch event {
        case .unreachable(let peer): raw.reportUnreachable(peer)
        case .snapshot(let peer, let status): raw.reportSnapshot(peer, status: status)
        }
    }

    /// The storage wrote a Ready (`NodeAction.persist`): raft learns it is durable, and what
    /// its messages promised leaves now.
    package mutating func persisted(_ persisted: PersistedReady) {
        writesInFlight -= 1
        if persisted.carriedEntries { entryWritesInFlight -= 1 }
        raw.onPersistReady(persisted.number)
        // Acknowledgements and votes: what they promise is on the disk now.
        send(persisted.messagesAfterPersist)
    }

    /// The snapshot under way (`NodeAction.snapshot`) was written at this index (0: made stale
    /// by the leader's), or failed. A failure is the storage's: fatal, rethrown.
    package mutating func snapshotTaken(_ result: Result<UInt64, any Error>) throws {
        snapshotUnderWay = false
        let index = try result.get()
        if index > snapshotIndex {
            snapshotIndex = index
            metrics.snapshots.increment()
        }
        try maybeSnapshot()  // a member added meanwhile asks for another
    }

    /// Where a peer listens now (also recorded in the next snapshot).
    package mutating func updatePeer(id: UInt64, address: TransportAddress) {
        guard id != nodeID else { return }
        addresses[id] = address
    }

    // MARK: Requests

    /// Write `id`: joins the batch proposed with the next Ready; answered with the state
    /// machine's response once applied here.
    package mutating func propose(_ command: [UInt8], id: UInt64, deadline: ContinuousClock.Instant) {
        writes.register(id, deadline: deadline)
        batch.commands.append(ProposalEnvelope(requestID: id, command: command).encoded())
        batch.proposalIDs.append(id)
    }

    /// Read-index request `id`: one round serves the reads gathered before the next Ready;
    /// answered with the index to have applied before reading.
    package mutating func readIndex(id: UInt64, deadline: ContinuousClock.Instant) {
        readIndexes.register(id, deadline: deadline)
        batch.readIDs.append(id)
    }

    /// Answers `id` once `index` is applied here (at once if it is).
    package mutating func waitUntilApplied(_ index: UInt64, id: UInt64, deadline: ContinuousClock.Instant) {
        if applied >= index {
            complete(id, .done(.success(())))
        } else {
            appliedWaits.register(id, key: index, deadline: deadline)
        }
    }

    /// Answers `id` once `target` leads (0: any leader), or with `expiry` at `deadline`.
    package mutating func waitForLeader(_ target: UInt64, id: UInt64, deadline: ContinuousClock.Instant, expiry: FlotillaError) {
        if leader != 0 && (target == 0 || leader == target) {
            complete(id, .leader(.success(leader)))
        } else {
            leaderWaits.register(id, key: target, deadline: deadline, expiry: expiry)
        }
    }

    /// Proposes a membership change; `id` is answered once it is applied here (or refused).
    package mutating func changeMembership(
        _ type: ConfChangeType, member: UInt64, address: TransportAddress?, id: UInt64, deadline: ContinuousClock.Instant
    ) {
        memberships.register(id, deadline: deadline)
        let change = ConfChange(type: type, nodeID: member, context: MemberContext(requestID: id, address: address).encoded())
        do {
            try raw.proposeConfChange(change)
        } catch {
            if memberships.remove(id) { complete(id, .done(.failure(droppedError(error)))) }
        }
    }

    /// Asks for leadership to go to `target`; `id` is answered once this node sees it lead.
    package mutating func transferLeadership(to target: UInt64, id: UInt64, deadline: ContinuousClock.Instant) {
        waitForLeader(target, id: id, deadline: deadline, expiry: .timeout)
        if leader != target { raw.transferLeader(to: target) }
    }

    /// Request `id` fails with `.cancelled` (its task was cancelled), if it still waits.
    package mutating func cancel(_ id: UInt64) {
        fail(id, with: .cancelled)
    }

    /// Request `id` fails with `error`, in whichever table it waits.
    package mutating func fail(_ id: UInt64, with error: FlotillaError) {
        if writes.remove(id) {
            complete(id, .applied(.failure(error)))
        } else if readIndexes.remove(id) {
            complete(id, .readIndex(.failure(error)))
        } else if appliedWaits.remove(id) || memberships.remove(id) {
            complete(id, .done(.failure(error)))
        } else if leaderWaits.remove(id) {
            complete(id, .leader(.failure(error)))
        }
    }

    /// Every waiting request fails with `error` (the node stopped).
    package mutating func failAll(_ error: FlotillaError) {
        for id in writes.removeAll() { complete(id, .applied(.failure(error))) }
        for id in readIndexes.removeAll() { complete(id, .readIndex(.failure(error))) }
        for id in appliedWaits.removeAll() + memberships.removeAll() { complete(id, .done(.failure(error))) }
        for id in leaderWaits.removeAll() { complete(id, .leader(.failure(error))) }
        batch = RequestBatch()
        readRounds.removeAll()
    }

    /// The error for a proposal raft refused.
    func droppedError(_ error: any Error) -> FlotillaError {
        guard let error = error as? RaftError, error == .proposalDropped else { return .failed("\(error)") }
        if leader == 0 { return .noLeader }
        if leader != nodeID { return .notLeader(leaderID: leader) }
        return .proposalDropped
    }

    // MARK: Deadlines and lost rounds

    mutating func expireWaiters(now: ContinuousClock.Instant) {
        for (id, error) in writes.removeExpired(now: now) { complete(id, .applied(.failure(error))) }
        for (id, error) in readIndexes.removeExpired(now: now) { complete(id, .readIndex(.failure(error))) }
        for (id, error) in appliedWaits.removeExpired(now: now) + memberships.removeExpired(now: now) {
            complete(id, .done(.failure(error)))
        }
        for (id, error) in leaderWaits.removeExpired(now: now) { complete(id, .leader(.failure(error))) }
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
    mutating func retryReadRounds(askedBefore instant: ContinuousClock.Instant?, now: ContinuousClock.Instant) {
        guard !readRounds.isEmpty else { return }
        for round in readRounds.keys.sorted() {
            guard let pending = readRounds[round], instant.map({ pending.asked < $0 }) ?? true else { continue }
            readRounds[round]?.asked = now
            raw.readIndex(readContext(round))
        }
    }
}
