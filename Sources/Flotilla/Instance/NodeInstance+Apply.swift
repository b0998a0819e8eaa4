import Logging
import Raft
import RaftNIO

/// Applying what raft commits: snapshots from the leader, commands, membership changes.
extension NodeInstance {
    /// A snapshot from the leader, before `storage.save` persists it: replace the state.
    mutating func restore(_ snapshot: Snapshot) throws {
        guard let envelope = SnapshotEnvelope(decoding: snapshot.data) else {
            throw FlotillaError.failed("snapshot \(snapshot.metadata.index) is not a Flotilla snapshot")
        }
        try machine.restore(from: envelope.state)
        for (peer, address) in envelope.addresses where peer != nodeID {
            addresses[peer] = address
            emit(.addPeer(peer, address))
        }
        applied = snapshot.metadata.index
        snapshotIndex = snapshot.metadata.index
        // Whether the writes appended up to here survived is in the snapshot, which does not
        // say: they end at their timeout.
        proposedAt = proposedAt.filter { $0.key > snapshot.metadata.index }
        confState = snapshot.metadata.confState
        metrics.snapshotsRestored.increment()
        logger.info("restored a snapshot from the leader", metadata: ["index": "\(snapshotIndex)"])
    }

    mutating func apply(_ entry: Entry) throws {
        defer { applied = max(applied, entry.index) }
        guard entry.index > applied else { return }
        if !proposedAt.isEmpty, let appended = proposedAt.removeValue(forKey: entry.index),
           entry.type != .normal || ProposalEnvelope.requestID(of: entry.data) != appended {
            // Another entry was committed where this node, as leader, had appended the write:
            // a later leader's. Log matching: the write can never be committed now.
            if writes.remove(appended) { complete(appended, .applied(.failure(.leaderChanged))) }
        }
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
            if writes.remove(proposal.requestID) { complete(proposal.requestID, .applied(.success(response))) }
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
    private mutating func applyMembership(_ change: ConfChangeV2, single: ConfChange?, index: UInt64) {
        let context = MemberContext(decoding: change.context)
        do {
            confState = try raw.applyConfChangeChecked(change)
        } catch {
            logger.info("refused a membership change", metadata: ["index": "\(index)", "error": "\(error)"])
            if let context, memberships.remove(context.requestID) {
                complete(context.requestID, .done(.failure(.invalidMembershipChange("\(error)"))))
            }
            return
        }
        for item in change.changes where item.nodeID != nodeID {
            switch item.type {
            case .addNode, .addLearnerNode, .updateNode:
                // The next snapshot must contain the new member: a node refuses a snapshot
                // whose configuration leaves it out, and the one in storage may predate it.
                snapshotRequested = true
                if let address = context?.address {
                    addresses[item.nodeID] = address
                    emit(.addPeer(item.nodeID, address))
                }
            case .removeNode:
                addresses[item.nodeID] = nil
                emit(.removePeer(item.nodeID))
            }
        }
        if change.changes.contains(where: { $0.nodeID == nodeID && $0.type == .removeNode }) {
            logger.info("this node was removed from the cluster")
        }
        logger.info("membership changed", metadata: [
            "index": "\(index)", "voters": "\(confState.voters.sorted())", "learners": "\(confState.learners.sorted())",
        ])
        if let context, memberships.remove(context.requestID) { complete(context.requestID, .done(.success(()))) }
    }
}
