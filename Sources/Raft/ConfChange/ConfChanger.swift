/// Computes the configuration that results from a membership change, without touching the
/// tracker it starts from (etcd's confchange.Changer). Every result is checked against the
/// invariants of a configuration before it is returned.
struct ConfChanger {
    var tracker: ProgressTracker
    /// The leader's last index; new members start probing from here.
    let lastIndex: UInt64

    typealias Outcome = (config: TrackerConfig, progress: ProgressMap)

    /// Enters a joint configuration: the current voters become the outgoing half and `changes`
    /// apply to the incoming half (thesis §4.3).
    func enterJoint(autoLeave: Bool, _ changes: [ConfChangeSingle]) throws(RaftError) -> Outcome {
        var (cfg, prs) = try checkedCopy()
        if cfg.voters.isJoint { throw RaftError.invalidConfChange("the configuration is already joint; leave it first") }
        if cfg.voters.incoming.isEmpty {
            // Adding to an empty config is allowed (bootstrap) but it cannot be made joint.
            throw RaftError.invalidConfChange("can't make a zero-voter configuration joint")
        }
        cfg.voters.outgoing = cfg.voters.incoming
        try apply(&cfg, &prs, changes)
        cfg.autoLeave = autoLeave
        return try checked(cfg, prs)
    }

    /// Leaves a joint configuration: the outgoing half is dropped, staged learners become learners,
    /// and members that are neither voters nor learners any more lose their progress.
    func leaveJoint() throws(RaftError) -> Outcome {
        var (cfg, prs) = try checkedCopy()
        if !cfg.voters.isJoint { throw RaftError.invalidConfChange("can't leave a non-joint configuration") }
        for id in cfg.learnersNext.ids {
            cfg.learners.insert(id)
            if let i = prs.index(of: id) { prs[position: i].isLearner = true }
        }
        cfg.learnersNext = MajorityConfig()
        for id in cfg.voters.outgoing.ids where !cfg.voters.incoming.contains(id) && !cfg.learners.contains(id) {
            prs[id] = nil
        }
        cfg.voters.outgoing = MajorityConfig()
        cfg.autoLeave = false
        return try checked(cfg, prs)
    }

    /// Applies changes that alter at most one voter, without joint consensus.
    func simple(_ changes: [ConfChangeSingle]) throws(RaftError) -> Outcome {
        var (cfg, prs) = try checkedCopy()
        if cfg.voters.isJoint {
            throw RaftError.invalidConfChange("can't apply a simple configuration change in a joint configuration; leave it first")
        }
        try apply(&cfg, &prs, changes)
        let before = tracker.config.voters.incoming
        let after = cfg.voters.incoming
        let changed = before.ids.filter { !after.contains($0) }.count + after.ids.filter { !before.contains($0) }.count
        if changed > 1 {
            throw RaftError.invalidConfChange("more than one voter changed without entering a joint configuration; use ConfChangeV2 with a joint transition")
        }
        return try checked(cfg, prs)
    }

    private func apply(_ cfg: inout TrackerConfig, _ prs: inout ProgressMap, _ changes: [ConfChangeSingle]) throws(RaftError) {
        for cc in changes {
            // A zero node id is how an application says "skip this change" (etcd does this).
            if cc.nodeID == 0 { continue }
            switch cc.type {
            case .addNode: makeVoter(&cfg, &prs, cc.nodeID)
            case .addLearnerNode: makeLearner(&cfg, &prs, cc.nodeID)
            case .removeNode: remove(&cfg, &prs, cc.nodeID)
            case .updateNode: break
            }
        }
        if cfg.voters.incoming.isEmpty { throw RaftError.invalidConfChange("the change removes every voter") }
    }

    private func makeVoter(_ cfg: inout TrackerConfig, _ prs: inout ProgressMap, _ id: UInt64) {
        guard let i = prs.index(of: id) else {
            initProgress(&cfg, &prs, id, isLearner: false)
            return
        }
        prs[position: i].isLearner = false
        cfg.learners.remove(id)
        cfg.learnersNext.remove(id)
        cfg.voters.incoming.insert(id)
    }

    private func makeLearner(_ cfg: inout TrackerConfig, _ prs: inout ProgressMap, _ id: UInt64) {
        guard let existing = prs[id] else {
            initProgress(&cfg, &prs, id, isLearner: true)
            return
        }
        if existing.isLearner { return }
        // Drop it from the incoming voters but keep its progress.
        remove(&cfg, &prs, id)
        var pr = existing
        if cfg.voters.outgoing.contains(id) {
            // Still a voter in the outgoing half: it becomes a learner when the joint config is left.
            cfg.learnersNext.insert(id)
        } else {
            pr.isLearner = true
            cfg.learners.insert(id)
        }
        prs[id] = pr
    }

    private func remove(_ cfg: inout TrackerConfig, _ prs: inout ProgressMap, _ id: UInt64) {
        guard prs.contains(id) else { return }
        cfg.voters.incoming.remove(id)
        cfg.learners.remove(id)
        cfg.learnersNext.remove(id)
        // A voter of the outgoing half keeps its progress until the joint config is left.
        if !cfg.voters.outgoing.contains(id) { prs[id] = nil }
    }

    private func initProgress(_ cfg: inout TrackerConfig, _ prs: inout ProgressMap, _ id: UInt64, isLearner: Bool) {
        if isLearner { cfg.learners.insert(id) } else { cfg.voters.incoming.insert(id) }
        // New members probe from the last index, and count as recently active so that
        // CheckQuorum does not depose the leader before they had a chance to answer.
        prs[id] = Progress(
            id: id, match: 0, next: lastIndex,
            inflights: Inflights(capacity: tracker.maxInflight, maxBytes: tracker.maxInflightBytes),
            isLearner: isLearner, recentActive: true)
    }

    private func checkedCopy() throws(RaftError) -> Outcome {
        try Self.checkInvariants(tracker.config, tracker.progress)
        return (tracker.config, tracker.progress)
    }

    private func checked(_ cfg: TrackerConfig, _ prs: ProgressMap) throws(RaftError) -> Outcome {
        try Self.checkInvariants(cfg, prs)
        return (cfg, prs)
    }

    /// The invariants of a configuration. The empty configuration is allowed (bootstrap).
    static func checkInvariants(_ cfg: TrackerConfig, _ prs: ProgressMap) throws(RaftError) {
        for id in cfg.voters.ids + cfg.learners.ids + cfg.learnersNext.ids where !prs.contains(id) {
            throw RaftError.invalidConfChange("no progress for member \(id)")
        }
        for id in cfg.learnersNext.ids {
            if !cfg.voters.outgoing.contains(id) {
                throw RaftError.invalidConfChange("\(id) is in learnersNext but not an outgoing voter")
            }
            if prs[id]?.isLearner == true {
                throw RaftError.invalidConfChange("\(id) is in learnersNext but already marked as a learner")
            }
        }
        for id in cfg.learners.ids {
            if cfg.voters.outgoing.contains(id) || cfg.voters.incoming.contains(id) {
                throw RaftError.invalidConfChange("\(id) is both a learner and a voter")
            }
            if prs[id]?.isLearner != true {
                throw RaftError.invalidConfChange("\(id) is a learner but its progress is not marked as one")
            }
        }
        if !cfg.voters.isJoint {
            if !cfg.learnersNext.isEmpty { throw RaftError.invalidConfChange("learnersNext is set outside a joint configuration") }
            if cfg.autoLeave { throw RaftError.invalidConfChange("autoLeave is set outside a joint configuration") }
        }
    }

    /// Rebuilds the configuration a ConfState describes, starting from an empty tracker, by
    /// replaying the changes that lead to it (etcd's confchange.Restore).
    static func restore(_ cs: ConfState, tracker: ProgressTracker, lastIndex: UInt64) throws(RaftError) -> Outcome {
        var outgoing: [ConfChangeSingle] = []
        var incoming: [ConfChangeSingle] = []
        // For a joint state (1 2 3)&(1 2 4 6): first establish (1 2 4 6) one voter at a time,
        // then enter the joint state removing those and adding the incoming set.
        for id in cs.votersOutgoing {
            outgoing.append(ConfChangeSingle(type: .addNode, nodeID: id))
            incoming.append(ConfChangeSingle(type: .removeNode, nodeID: id))
        }
        for id in cs.voters { incoming.append(ConfChangeSingle(type: .addNode, nodeID: id)) }
        for id in cs.learners { incoming.append(ConfChangeSingle(type: .addLearnerNode, nodeID: id)) }
        // Staged learners are outgoing voters; adding them as learners now stages them again.
        for id in cs.learnersNext { incoming.append(ConfChangeSingle(type: .addLearnerNode, nodeID: id)) }

        var changer = ConfChanger(tracker: tracker, lastIndex: lastIndex)
        func step(_ outcome: Outcome) {
            changer.tracker.config = outcome.config
            changer.tracker.progress = outcome.progress
        }
        if outgoing.isEmpty {
            for cc in incoming { step(try changer.simple([cc])) }
        } else {
            for cc in outgoing { step(try changer.simple([cc])) }
            step(try changer.enterJoint(autoLeave: cs.autoLeave, incoming))
        }
        // Replaying can quietly turn an inconsistent state into a valid one (a voter listed as a
        // learner too is demoted, autoLeave outside a joint config is dropped): refuse it instead.
        let rebuilt = changer.tracker.config.confState
        guard rebuilt.isEquivalent(to: cs) else {
            throw RaftError.invalidConfChange(
                "the configuration \(cs) is inconsistent (a node may be both voter and learner, or a staged learner not an outgoing voter); it rebuilds as \(rebuilt)")
        }
        return (changer.tracker.config, changer.tracker.progress)
    }
}
