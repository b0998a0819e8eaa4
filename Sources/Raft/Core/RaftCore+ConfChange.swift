/// Membership changes take effect when applied (as in etcd), not when appended.
extension RaftCore {
    mutating func applyConfChange(_ cc: ConfChangeV2) throws(RaftError) -> ConfState {
        let changer = ConfChanger(tracker: tracker, lastIndex: log.lastIndex)
        let outcome: ConfChanger.Outcome
        if cc.leavesJoint {
            outcome = try changer.leaveJoint()
        } else if case (true, let autoLeave) = cc.entersJoint {
            outcome = try changer.enterJoint(autoLeave: autoLeave, cc.changes)
        } else {
            outcome = try changer.simple(cc.changes)
        }
        return switchToConfig(outcome.config, outcome.progress)
    }

    /// Installs a new configuration and does what it implies for a leader: commit what the new
    /// quorum allows, probe new members, step down or abort a transfer if needed.
    @discardableResult
    mutating func switchToConfig(_ config: TrackerConfig, _ progress: ProgressMap) -> ConfState {
        tracker.config = config
        tracker.progress = progress
        logger.info("switched to configuration", metadata: ["raft.id": "\(id)", "config": "\(config.confState)"])
        let cs = tracker.confState
        let me = tracker.progress[id]
        isLearner = me?.isLearner ?? false

        if (me == nil || isLearner) && state == .leader {
            // This leader was removed or demoted. It keeps its role until it steps down; with
            // stepDownOnRemoval it does so at once, into the next term so no stale leader remains.
            if stepDownOnRemoval {
                becomeFollower(term: term + 1, lead: 0)
            }
            return cs
        }
        // The rest only matters to a leader with other members.
        guard state == .leader, !cs.voters.isEmpty else { return cs }
        if maybeCommit() {
            // A smaller quorum may commit more now (e.g. after a removal).
            broadcastAppend()
        } else {
            // Probe new members right away rather than waiting for the next heartbeat or proposal.
            for i in 0..<tracker.progress.count where tracker.progress[position: i].id != id {
                maybeSendAppend(at: i, sendIfEmpty: false)
            }
        }
        if leadTransferee != 0 && !tracker.config.voters.contains(leadTransferee) {
            abortLeaderTransfer()
        }
        return cs
    }

    /// What the application reports having done with a Ready: applied up to `appliedIndex`,
    /// persisted entries up to `(stableIndex, stableTerm)` and the snapshot at `snapshotIndex`.
    mutating func advance(committedEntries: [Entry], stable: (index: UInt64, term: UInt64)?, snapshotIndex: UInt64?) {
        reduceUncommittedSize(committedEntries)
        let newApplied = committedEntries.last?.index ?? snapshotIndex ?? 0
        if newApplied > 0 { appliedTo(newApplied) }
        if let stable { log.stableTo(index: stable.index, term: stable.term) }
        if let snapshotIndex { log.stableSnapTo(snapshotIndex) }
    }

    /// The application applied up to `newApplied`; a leader whose joint configuration is now
    /// applied leaves it.
    mutating func appliedTo(_ newApplied: UInt64) {
        let oldApplied = log.applied
        log.appliedTo(newApplied)
        if tracker.config.autoLeave && oldApplied <= pendingConfIndex && newApplied >= pendingConfIndex && state == .leader {
            // The joint configuration we entered is applied: leave it, with an empty change.
            // Nothing else may be pending, so this proposal cannot be refused.
            var leave = [Entry(type: .confChangeV2, data: ConfChangeV2().serializedBytes())]
            guard appendEntries(&leave) else {
                preconditionFailure("refused the un-refusable automatic leave of a joint configuration")
            }
            pendingConfIndex = log.lastIndex
            // etcd leaves followers to learn of it on the next heartbeat; send it now.
            broadcastAppend()
            logger.info("initiating automatic transition out of joint configuration", metadata: ["raft.id": "\(id)", "config": "\(tracker.confState)"])
        }
    }
}
