import Logging
import Metrics
import Raft
import RaftNIO

/// What wakes the Ready loop.
enum LoopInput: Sendable {
    case tick
    case message(Message)
    case transport(TransportEvent)
    /// A request gave raft work (a proposal, a read index, a transfer…).
    case wake
}

extension FlotillaNode {
    /// The single serial loop: one input at a time into raft, then every Ready it produced.
    /// Handling a Ready is synchronous (the transport's `send` never blocks; the WAL write is
    /// a blocking call), so a Ready is always finished before the actor does anything else.
    func loop(_ inputs: AsyncStream<LoopInput>) async {
        for await input in inputs {
            guard case .running = lifecycle else { break }
            switch input {
            case .tick:
                raw.tick()
                expireWaiters()
            case .message(let message):
                do {
                    try raw.step(message)
                } catch {
                    logger.trace("ignored a message", metadata: ["type": "\(message.type)", "error": "\(error)"])
                }
            case .transport(.unreachable(let peer)):
                raw.reportUnreachable(peer)
            case .transport(.snapshot(let peer, let status)):
                raw.reportSnapshot(peer, status: status)
            case .wake:
                break
            }
            do {
                while raw.hasReady {
                    let ready = raw.ready()
                    try handle(ready)
                    raw.advance(ready)
                }
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

    func wake() {
        inputs?.yield(.wake)
    }

    func expireWaiters() {
        let now = ContinuousClock.now
        writes.expire(now: now)
        readIndexes.expire(now: now)
        appliedWaits.expire(now: now)
        leaderWaits.expire(now: now)
        memberships.expire(now: now)
    }

    /// One Ready, in etcd's order (DiskStorage's documentation).
    func handle(_ ready: Ready) throws {
        if let soft = ready.softState { observe(soft) }

        // Persist and send. The leader sends first: its followers write their logs while it
        // writes its own (thesis §10.2.1); its own entry counts towards the commit only through
        // this Ready, which is persisted before anything it commits is applied. A follower
        // must persist first: its acknowledgements promise what is on its disk.
        let isLeader = role == .leader
        if isLeader { transport.send(ready.messages) }
        if ready.hardState != nil || !ready.entries.isEmpty || !(ready.snapshot?.isEmpty ?? true) {
            let start = ContinuousClock.now
            try storage.save(ready)
            metrics.walSave.recordNanoseconds(nanoseconds(ContinuousClock.now - start))
        }
        if !isLeader { transport.send(ready.messages) }
        if let hardState = ready.hardState { committed = max(committed, hardState.commit) }

        // Apply.
        if let snapshot = ready.snapshot, !snapshot.isEmpty { try restore(snapshot) }
        for entry in ready.committedEntries { try apply(entry) }
        if !ready.committedEntries.isEmpty {
            metrics.commits.increment(by: Int64(ready.committedEntries.count))
        }
        metrics.appliedIndex.record(Int64(applied))
        metrics.applyLag.record(Int64(committed >= applied ? committed - applied : 0))

        // Reads: a ReadState says "serve this read once applied ≥ index".
        for readState in ready.readStates {
            guard let id = requestID(fromReadContext: readState.requestContext) else { continue }
            readIndexes.resolve(id, .success(readState.index))
        }
        let applied = self.applied
        appliedWaits.resolveAll(where: { $0 <= applied }, with: { _ in () })

        try maybeSnapshot()
    }

    private func observe(_ soft: SoftState) {
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
    }

    /// A snapshot from the leader (already saved by `storage.save`): replace the state.
    private func restore(_ snapshot: Snapshot) throws {
        guard let envelope = SnapshotEnvelope(decoding: snapshot.data) else {
            throw FlotillaError.failed("snapshot \(snapshot.metadata.index) is not a Flotilla snapshot")
        }
        try machine.restore(from: envelope.state)
        for (peer, address) in envelope.addresses where peer != nodeID {
            addresses[peer] = address
            transport.addPeer(id: peer, address: address)
        }
        applied = snapshot.metadata.index
        snapshotIndex = snapshot.metadata.index
        confState = snapshot.metadata.confState
        metrics.snapshotsRestored.increment()
        logger.info("restored a snapshot from the leader", metadata: ["index": "\(snapshotIndex)"])
    }

    private func apply(_ entry: Entry) throws {
        defer { applied = max(applied, entry.index) }
        guard entry.index > applied else { return }
        switch entry.type {
        case .normal:
            // An empty entry is the one a new leader appends: nothing to apply.
            guard !entry.data.isEmpty else { return }
            guard let proposal = ProposalEnvelope(decoding: entry.data) else {
                // Every replica skips the same bytes the same way, so they stay identical.
                logger.warning("skipped a committed entry that is not a Flotilla proposal", metadata: ["index": "\(entry.index)"])
                return
            }
            let response = machine.apply(proposal.command, index: entry.index)
            writes.resolve(proposal.requestID, .success(response))
        case .confChange:
            let change = try ConfChange(serializedBytes: entry.data)
            applyMembership(change.asV2, single: change, index: entry.index)
        case .confChangeV2:
            let change = try ConfChangeV2(serializedBytes: entry.data)
            applyMembership(change, single: nil, index: entry.index)
        }
    }

    /// Applies a conf change to raft, then to the transport: a member added learns its
    /// address from the change's context; a member removed is dropped.
    private func applyMembership(_ change: ConfChangeV2, single: ConfChange?, index: UInt64) {
        let context = MemberContext(decoding: change.context)
        do {
            confState = try raw.applyConfChangeChecked(change)
        } catch {
            logger.info("refused a membership change", metadata: ["index": "\(index)", "error": "\(error)"])
            if let context { memberships.resolve(context.requestID, .failure(.invalidMembershipChange("\(error)"))) }
            return
        }
        for item in change.changes where item.nodeID != nodeID {
            switch item.type {
            case .addNode, .addLearnerNode, .updateNode:
                // The next snapshot must contain the new member: a node refuses a snapshot
                // whose configuration leaves it out, and the one in storage may predate it.
                snapshotSoon = true
                if let address = context?.address {
                    addresses[item.nodeID] = address
                    transport.addPeer(id: item.nodeID, address: address)
                }
            case .removeNode:
                addresses[item.nodeID] = nil
                transport.removePeer(id: item.nodeID)
            }
        }
        if change.changes.contains(where: { $0.nodeID == nodeID && $0.type == .removeNode }) {
            logger.info("this node was removed from the cluster")
        }
        logger.info("membership changed", metadata: [
            "index": "\(index)", "voters": "\(confState.voters.sorted())", "learners": "\(confState.learners.sorted())",
        ])
        if let context { memberships.resolve(context.requestID, .success(())) }
    }

    /// Every `snapshotInterval` applied entries, and after a member is added: snapshot the state machine (with the address
    /// book) into storage, then drop the log behind it but `entriesKeptAfterCompaction`.
    private func maybeSnapshot() throws {
        let interval = configuration.snapshotInterval
        guard interval > 0, applied > snapshotIndex, snapshotSoon || applied >= snapshotIndex + interval else { return }
        snapshotSoon = false
        let data = SnapshotEnvelope(addresses: addresses, state: try machine.snapshot()).encoded()
        try storage.createSnapshot(index: applied, confState: confState, data: data)
        snapshotIndex = applied
        metrics.snapshots.increment()
        let keep = configuration.entriesKeptAfterCompaction
        if applied > keep {
            let compactIndex = applied - keep
            if compactIndex >= (try storage.firstIndex()) { try storage.compact(compactIndex) }
        }
        logger.debug("snapshot taken", metadata: ["index": "\(applied)", "bytes": "\(data.count)"])
    }
}

func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
}
