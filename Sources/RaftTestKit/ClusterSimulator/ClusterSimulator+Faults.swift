import Raft

/// The simulator's disturbances: membership changes and leader transfers asked of a leader,
/// crashes that lose what was not persisted, restarts, and log compaction.
extension ClusterSimulator {
    // MARK: - Leaders: membership and transfers

    /// A node that believes it leads (a random one if several do: stale leaders included).
    func someLeader() -> (SimNode, RawNode, Status)? {
        let leaders = liveIDs.compactMap { id -> (SimNode, RawNode, Status)? in
            guard let node = nodes[id], let raw = node.raw else { return nil }
            let s = raw.status
            return s.raftState == .leader ? (node, raw, s) : nil
        }
        return rng.pick(leaders)
    }

    func changeMembership() {
        guard let (node, raw, status) = someLeader() else { return }
        let cs = status.config
        let joint = !cs.votersOutgoing.isEmpty
        let members = cs.voters + cs.learners + cs.votersOutgoing + cs.learnersNext
        if joint {
            // An explicit joint configuration is left with an empty change; an automatic one
            // leaves by itself.
            guard !cs.autoLeave else { return }
            proposeChange(ConfChangeV2(), "leave joint", node, raw)
            return
        }
        var options: [(String, ConfChangeV2)] = []
        let single = features.contains(.membership)
        if single && members.count < 7 {
            options.append(("add voter n\(nextNodeID)", ConfChangeV2(changes: [ConfChangeSingle(type: .addNode, nodeID: nextNodeID)])))
            options.append(("add learner n\(nextNodeID)", ConfChangeV2(changes: [ConfChangeSingle(type: .addLearnerNode, nodeID: nextNodeID)])))
        }
        if single, let learner = rng.pick(cs.learners) {
            options.append(("promote n\(learner)", ConfChangeV2(changes: [ConfChangeSingle(type: .addNode, nodeID: learner)])))
        }
        if single, let learner = rng.pick(cs.learners) {
            options.append(("remove learner n\(learner)", ConfChangeV2(changes: [ConfChangeSingle(type: .removeNode, nodeID: learner)])))
        }
        if single, cs.voters.count > 3, let voter = rng.pick(cs.voters) {
            options.append(("remove voter n\(voter)", ConfChangeV2(changes: [ConfChangeSingle(type: .removeNode, nodeID: voter)])))
        }
        if features.contains(.jointConsensus), let voter = rng.pick(cs.voters), members.count < 7 {
            // Replace a voter: add one and remove one at once, through a joint configuration.
            let transition = rng.pick([ConfChangeTransition.auto, .jointImplicit, .jointExplicit])!
            options.append(
                ("replace n\(voter) by n\(nextNodeID) (\(transition))",
                 ConfChangeV2(transition: transition, changes: [
                     ConfChangeSingle(type: .addNode, nodeID: nextNodeID), ConfChangeSingle(type: .removeNode, nodeID: voter),
                 ])))
            if let learner = rng.pick(cs.learners) {
                options.append(
                    ("promote n\(learner), add learner n\(nextNodeID) (\(transition))",
                     ConfChangeV2(transition: transition, changes: [
                         ConfChangeSingle(type: .addNode, nodeID: learner), ConfChangeSingle(type: .addLearnerNode, nodeID: nextNodeID),
                     ])))
            }
        }
        guard let (what, cc) = rng.pick(options) else { return }
        if cc.changes.contains(where: { $0.nodeID == nextNodeID }) { nextNodeID += 1 }
        proposeChange(cc, what, node, raw)
    }

    func proposeChange(_ cc: ConfChangeV2, _ what: String, _ node: SimNode, _ raw: RawNode) {
        stats.confChangesProposed += 1
        do {
            // Single changes go through the V1 API half the time.
            if cc.transition == .auto, cc.changes.count == 1, rng.chance(0.5) {
                try raw.proposeConfChange(ConfChange(type: cc.changes[0].type, nodeID: cc.changes[0].nodeID))
            } else {
                try raw.proposeConfChange(cc)
            }
            record("conf change on n\(node.id): \(what)")
        } catch {
            record("conf change on n\(node.id): \(what): \(error)")
        }
        touched.insert(node.id)
    }

    func transfer() {
        guard let (node, raw, status) = someLeader() else { return }
        guard let to = rng.pick(status.config.voters.filter { $0 != node.id }) else { return }
        stats.transfers += 1
        record("transfer n\(node.id) -> n\(to)")
        raw.transferLeader(to: to)
        touched.insert(node.id)
    }

    // MARK: - Crashes, restarts, compaction

    func crash() {
        // Half the crashes hit a node with a Ready in hand (persisted or not), when there is one.
        let pending = liveIDs.filter { nodes[$0]?.raw?.hasReady == true || nodes[$0]?.writesInFlight.isEmpty == false }
        let chosen = (rng.chance(0.5) ? rng.pick(pending) : nil) ?? rng.pick(liveIDs)
        guard let id = chosen, let node = nodes[id], let raw = node.raw else { return }
        stats.crashes += 1
        if !node.writesInFlight.isEmpty {
            // A power loss: the writes under way reach the disk up to some point (in order), the
            // rest are lost, and nothing they promised was sent.
            let kept = Int(rng.below(UInt64(node.writesInFlight.count + 1)))
            for rd in node.writesInFlight.prefix(kept) { persist(rd, node) }
            stats.crashesBeforePersist += 1
            record("crash n\(id) with \(node.writesInFlight.count) writes in flight, \(kept) of them done")
            node.writesInFlight = []
        } else if raw.hasReady {
            if rng.chance(0.5) {
                stats.crashesBeforePersist += 1
                record("crash n\(id) before persisting its Ready")
            } else {
                // Persisted, but its messages never left and nothing was applied.
                persist(raw.ready(), node)
                record("crash n\(id) after persisting its Ready")
            }
        } else {
            record("crash n\(id)")
        }
        node.raw = nil
        if rng.chance(0.3) {
            record("restart n\(id)")
            start(node)
        }
    }

    /// Starts (or restarts) a node from its storage, with `applied` 0: its state machine is
    /// rebuilt from the snapshot and the committed entries after it are applied again.
    func start(_ node: SimNode) {
        var config = Config(id: node.id, electionTick: options.electionTick, heartbeatTick: options.heartbeatTick, storage: node.storage)
        config.preVote = options.preVote
        config.checkQuorum = options.checkQuorum
        config.maxSizePerMsg = options.maxSizePerMsg
        config.maxInflightMsgs = options.maxInflightMsgs
        config.readOnlyOption = options.readOnlyOption
        config.randomSeed = seed &+ UInt64(node.incarnation) &* 7919
        config.asyncStorageWrites = options.asyncStorageWrites
        node.writesInFlight = []
        let snapshot = (try? node.storage.snapshot()) ?? Snapshot()
        // The state machine restarts from the snapshot. When the log still holds entries the
        // snapshot covers (compaction kept a few), say so with `applied`, as etcd's server
        // does; otherwise `applied` 0 lets the node start where its log does.
        let firstIndex = (try? node.storage.firstIndex()) ?? 1
        if firstIndex <= snapshot.metadata.index { config.applied = snapshot.metadata.index }
        node.state = decodeState(snapshot.data)
        node.applied = snapshot.metadata.index
        node.confState = snapshot.metadata.confState
        node.cachedLog = nil
        node.volatileCommit = 0
        if node.incarnation > 0 {
            stats.restarts += 1
            checker.nodeRestarted(node.id, snapshotIndex: snapshot.metadata.index)
            checkRestoredState(node)
        }
        node.incarnation += 1
        do {
            node.raw = try RawNode(config: config)
        } catch {
            checker.record("node \(node.id): cannot restart from its storage: \(error)")
            node.raw = nil
        }
        touched.insert(node.id)
    }

    func compact() {
        if let id = rng.pick(liveIDs) { compact(id) }
    }

    func compact(_ id: UInt64) {
        guard let node = nodes[id], node.raw != nil else { return }
        let storage = node.storage
        guard let snapIndex = try? storage.snapshot().metadata.index, node.applied > snapIndex else { return }
        do {
            _ = try storage.createSnapshot(node.applied, confState: node.confState, data: encodeState(node.state))
            // With asynchronous writes a node applies what its log holds durably, possibly before
            // the HardState that says it is committed is written: a snapshot says so durably, as
            // `DiskStorage.recordSnapshot` does (a restart needs commit ≥ the snapshot's index).
            var hardState = try storage.initialState().0
            if hardState.commit < node.applied {
                hardState.commit = node.applied
                try storage.setHardState(hardState)
            }
            // Keep a few entries, as applications do, so that slow followers may catch up from the log.
            let keep = rng.below(4)
            let first = try storage.firstIndex()
            let compactIndex = max(first, node.applied > keep ? node.applied - keep : node.applied)
            try storage.compact(compactIndex)
            node.cachedLog = nil
            stats.compactions += 1
            record("compact n\(id) at \(node.applied) (log from \(compactIndex + 1))")
        } catch {
            record("compact n\(id) at \(node.applied): \(error)")
        }
    }
}
