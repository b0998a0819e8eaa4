import Testing
@testable import Raft
import RaftTestKit

/// Membership changes (thesis ch. 4, etcd's confchange): learners, joint consensus with
/// `ConfChangeV2`, and the safety rules around changes.
@Suite struct MembershipTests {
    /// A network whose nodes all start from one snapshot (index 1, term 1) holding `confState`.
    private func network(_ confState: ConfState, ids: [UInt64], configure: (inout Config) -> Void = { _ in }) throws
        -> SimulatedNetwork
    {
        let net = try SimulatedNetwork(ids: [])
        for id in ids {
            let storage = MemoryStorage()
            try storage.applySnapshot(Snapshot(metadata: SnapshotMetadata(confState: confState, index: 1, term: 1)))
            try net.add(id: id, storage: storage, configure: configure)
        }
        return net
    }

    private func proposeV2(_ net: SimulatedNetwork, on id: UInt64, _ cc: ConfChangeV2) throws {
        try net.with(id) { try $0.proposeConfChange(cc) }
        net.deliverAll()
    }

    private func single(_ type: ConfChangeType, _ id: UInt64) -> ConfChangeSingle {
        ConfChangeSingle(type: type, nodeID: id)
    }

    // MARK: - Learners

    /// A learner receives and applies the log, but no vote request is ever sent to it, it is not
    /// counted in the quorum, and it never campaigns however long it goes without a leader.
    @Test func learnerReplicatesButNeverVotesOrCampaigns() throws {
        let net = try network(ConfState(voters: [1, 2, 3], learners: [4]), ids: [1, 2, 3, 4])
        let log = MessageLog()
        net.record(into: log)
        try net.elect(1)
        #expect(net.leader?.id == 1)
        #expect(log.of(.vote, to: 4).isEmpty && log.of(.preVote, to: 4).isEmpty, "no vote requests to a learner")
        try net.with(1) { try $0.propose([7]) }
        net.deliverAll()
        #expect(net.appliedData(4) == [[7]], "the learner applies the log")

        // The learner alone cannot be a quorum member: with 2 and 3 gone nothing commits even
        // though the learner acknowledges.
        net.isolate(2)
        net.isolate(3)
        try net.with(1) { try $0.propose([8]) }
        net.deliverAll()
        #expect(net.appliedData(1) == [[7]], "leader + learner is not a quorum of {1,2,3}")

        // Cut off from everyone, the learner never becomes a candidate.
        net.isolate(4)
        let term = net.term(4)
        for _ in 0..<200 { net.tick(4) }
        #expect(net.state(4) == .follower)
        #expect(net.term(4) == term)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Promotion (`addNode` of a learner) makes it a voter that counts; demotion (`addLearnerNode`
    /// of a voter) takes its vote away. Both are single-voter changes, so no joint state.
    @Test func learnerPromotionAndVoterDemotion() throws {
        let net = try network(ConfState(voters: [1, 2, 3], learners: [4]), ids: [1, 2, 3, 4])
        try net.elect(1)
        try proposeV2(net, on: 1, ConfChangeV2(changes: [single(.addNode, 4)]))
        for id: UInt64 in 1...4 {
            #expect(net.status(id)?.config.voters.sorted() == [1, 2, 3, 4], "node \(id)")
            #expect(net.status(id)?.config.learners == [], "node \(id)")
        }
        // Now 4 counts: with 2 and 3 away, 1 and 4 are not 3 of 4…
        net.isolate(2)
        net.isolate(3)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        #expect(!net.appliedData(1).contains([1]))
        // …and with 3 back, {1, 3, 4} is a quorum.
        net.heal()
        net.isolate(2)
        net.run(rounds: 3)
        #expect(net.appliedData(4).contains([1]))

        // Demote 3: the voters shrink to {1, 2, 4}, 3 keeps receiving the log as a learner.
        try proposeV2(net, on: 1, ConfChangeV2(changes: [single(.addLearnerNode, 3)]))
        net.run(rounds: 3)
        #expect(net.status(1)?.config.voters.sorted() == [1, 2, 4])
        #expect(net.status(1)?.config.learners == [3])
        #expect(net.status(3)?.config.learners == [3])
        #expect(net.status(1)?.progress[3]?.isLearner == true)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - Joint consensus

    /// Two voters added at once with `.auto` go through a joint configuration, which the leader
    /// leaves by itself (an empty ConfChangeV2) once the joint entry is applied.
    @Test func autoTransitionEntersAndLeavesJointConsensus() throws {
        let net = try network(ConfState(voters: [1, 2, 3]), ids: [1, 2, 3, 4, 5])
        try net.elect(1)
        var seenJoint = false
        net.filter = { _ in
            if let cs = net.status(1)?.config, !cs.votersOutgoing.isEmpty {
                seenJoint = true
                #expect(cs.voters.sorted() == [1, 2, 3, 4, 5] && cs.votersOutgoing.sorted() == [1, 2, 3] && cs.autoLeave)
            }
            return true
        }
        try proposeV2(net, on: 1, ConfChangeV2(changes: [single(.addNode, 4), single(.addNode, 5)]))
        net.run(rounds: 3)
        #expect(seenJoint, "the change went through a joint configuration")
        for id: UInt64 in 1...5 {
            let cs = try #require(net.status(id)?.config)
            #expect(cs.voters.sorted() == [1, 2, 3, 4, 5] && cs.votersOutgoing.isEmpty && !cs.autoLeave, "node \(id): \(cs)")
        }
        // The log holds the joint entry and the automatic, empty leave entry.
        let changes = net.log(1).filter { $0.type == .confChangeV2 }.map { try? ConfChangeV2(serializedBytes: $0.data) }
        #expect(changes.count == 2)
        #expect(changes.last??.leavesJoint == true)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// `.jointExplicit` stays joint until the application proposes the empty change itself; a
    /// second joint change meanwhile is refused (replaced by an empty normal entry).
    @Test func explicitTransitionStaysJointUntilTheApplicationLeaves() throws {
        let net = try network(ConfState(voters: [1, 2, 3]), ids: [1, 2, 3, 4])
        try net.elect(1)
        try proposeV2(net, on: 1, ConfChangeV2(transition: .jointExplicit, changes: [single(.addNode, 4)]))
        net.run(rounds: 5)
        var cs = try #require(net.status(1)?.config)
        #expect(cs.voters.sorted() == [1, 2, 3, 4] && cs.votersOutgoing.sorted() == [1, 2, 3] && !cs.autoLeave)

        let before = net.log(1).count
        try proposeV2(net, on: 1, ConfChangeV2(transition: .jointExplicit, changes: [single(.removeNode, 2)]))
        let refused = Array(net.log(1).dropFirst(before))
        #expect(refused.count == 1 && refused[0].type == .normal && refused[0].data.isEmpty, "must leave the joint config first")
        #expect(net.status(1)?.config.votersOutgoing.sorted() == [1, 2, 3])

        try proposeV2(net, on: 1, ConfChangeV2())
        net.run(rounds: 2)
        cs = try #require(net.status(1)?.config)
        #expect(cs.voters.sorted() == [1, 2, 3, 4] && cs.votersOutgoing.isEmpty)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// In the joint configuration (1 4 5)&(1 2 3), committing needs a majority of both halves:
    /// all of the incoming half is not enough without the outgoing one, and the other way round.
    @Test func jointConfigurationCommitsOnlyWithBothMajorities() throws {
        let joint = ConfState(voters: [1, 4, 5], votersOutgoing: [1, 2, 3])
        let net = try network(joint, ids: [1, 2, 3, 4, 5])
        try net.elect(1)
        #expect(net.leader?.id == 1)

        // Only the incoming half answers: (1 4 5) acknowledge, (1 2 3) has just the leader.
        net.isolate(2)
        net.isolate(3)
        try net.with(1) { try $0.propose([1]) }
        net.run(rounds: 3)
        #expect(!net.appliedData(1).contains([1]), "the outgoing half (1 2 3) has no majority")
        // Node 2 comes back: 1 and 2 are a majority of the outgoing half, and it commits.
        net.heal()
        net.isolate(3)
        net.run(rounds: 3)
        #expect(net.appliedData(1).contains([1]))

        // Only the outgoing half answers: (1 2 3) acknowledge, (1 4 5) has just the leader.
        net.heal()
        net.isolate(4)
        net.isolate(5)
        try net.with(1) { try $0.propose([2]) }
        net.run(rounds: 3)
        #expect(!net.appliedData(1).contains([2]), "the incoming half (1 4 5) has no majority")
        net.heal()
        net.isolate(5)
        net.run(rounds: 3)
        #expect(net.appliedData(1).contains([2]), "1 and 4 of (1 4 5), with (1 2 3)")
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Elections in a joint configuration need both majorities too.
    @Test func jointConfigurationElectsOnlyWithBothMajorities() throws {
        let joint = ConfState(voters: [1, 4, 5], votersOutgoing: [1, 2, 3])
        let net = try network(joint, ids: [1, 2, 3, 4, 5])
        net.isolate(4)
        net.isolate(5)
        try net.with(1) { try $0.campaign() }
        net.deliverAll()
        #expect(net.state(1) == .candidate, "votes from 1,2,3 win only the outgoing half")
        net.heal()
        try net.with(1) { try $0.campaign() }
        net.deliverAll()
        #expect(net.state(1) == .leader)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// CheckQuorum in a joint configuration: the leader steps down when one half loses its majority.
    @Test func jointConfigurationCheckQuorumNeedsBothHalves() throws {
        let joint = ConfState(voters: [1, 4, 5], votersOutgoing: [1, 2, 3])
        let net = try network(joint, ids: [1, 2, 3, 4, 5]) { $0.checkQuorum = true }
        try net.elect(1)
        #expect(net.state(1) == .leader)
        net.isolate(2)
        net.isolate(3)
        for _ in 0..<25 { net.tickAll(); net.deliverAll() }
        #expect(net.state(1) != .leader, "the outgoing half went quiet")
    }

    /// ReadIndex in a joint configuration is answered only once both halves acknowledged.
    @Test func jointConfigurationReadIndexNeedsBothHalves() throws {
        let joint = ConfState(voters: [1, 4, 5], votersOutgoing: [1, 2, 3])
        let net = try network(joint, ids: [1, 2, 3, 4, 5])
        try net.elect(1)
        net.isolate(2)
        net.isolate(3)
        var states: [ReadState] = []
        net.with(1) { $0.readIndex([9]) }
        net.deliverAll()
        // The network handles Readies itself; read states surface in the node's next Ready only
        // if they exist, so look at what the core holds.
        states = net.nodes[1]!.core.readStates
        #expect(states.isEmpty)
        #expect(net.nodes[1]!.core.readOnly.pendingCount == 1, "still waiting for the outgoing half")
        net.heal()
        net.tick(1)
        net.deliverAll()
        #expect(net.nodes[1]!.core.readOnly.pendingCount == 0, "answered once (1 2 3) acknowledged too")
    }

    /// The joint state survives a snapshot: a node restored from it has the same ConfState,
    /// outgoing voters, staged learners and autoLeave included.
    @Test func jointStateIsRestoredFromSnapshots() throws {
        let cs = ConfState(voters: [1, 2, 4], learners: [5], votersOutgoing: [1, 2, 3], learnersNext: [3], autoLeave: true)
        let storage = MemoryStorage()
        try storage.applySnapshot(Snapshot(metadata: SnapshotMetadata(confState: cs, index: 10, term: 2)))
        let node = try RawNode(config: Config(id: 1, storage: storage))
        let restored = node.status.config
        #expect(restored.isEquivalent(to: cs), "\(restored)")
        #expect(node.core.tracker.progress[3]?.isLearner == false, "3 votes in the outgoing half until it is left")

        // Leaving turns the staged learner into a learner and drops the outgoing voters.
        let left = try node.applyConfChangeChecked(ConfChangeV2())
        #expect(left.voters.sorted() == [1, 2, 4] && left.learners.sorted() == [3, 5])
        #expect(left.votersOutgoing.isEmpty && left.learnersNext.isEmpty && !left.autoLeave)
    }

    // MARK: - Invalid changes

    /// Invalid changes are refused with `invalidConfChange` and leave the configuration as it was.
    @Test func invalidChangesAreRefusedWithAClearError() throws {
        let node = try RawNode(config: Config(id: 1, storage: bootstrappedStorage(voters: [1, 2, 3])))
        let before = node.status.config
        func refused(_ cc: ConfChangeV2, _ why: String) {
            #expect(throws: RaftError.self, "\(why)") { try node.applyConfChangeChecked(cc) }
            #expect(node.status.config == before, "\(why): configuration unchanged")
        }
        refused(ConfChangeV2(), "leaving a joint config that is not joint")
        refused(ConfChangeV2(changes: [single(.removeNode, 1), single(.removeNode, 2), single(.removeNode, 3)]), "removing every voter")
        refused(ConfChangeV2(transition: .auto, changes: []), "an empty auto change leaves joint")

        // Two voters at once without joint consensus.
        let changer = ConfChanger(tracker: node.core.tracker, lastIndex: 1)
        #expect(throws: RaftError.self) { try changer.simple([single(.addNode, 4), single(.addNode, 5)]) }

        // Entering a joint config while joint.
        _ = try node.applyConfChangeChecked(ConfChangeV2(transition: .jointExplicit, changes: [single(.addNode, 4)]))
        let joint = node.status.config
        #expect(throws: RaftError.self) {
            try node.applyConfChangeChecked(ConfChangeV2(transition: .jointExplicit, changes: [single(.addNode, 5)]))
        }
        #expect(node.status.config == joint)
        // The unchecked variant logs, and also leaves the configuration alone.
        #expect(node.applyConfChange(ConfChangeV2(transition: .jointExplicit, changes: [single(.addNode, 5)])) == joint)

        // The error says what is wrong.
        do {
            _ = try node.applyConfChangeChecked(ConfChangeV2(transition: .jointExplicit, changes: [single(.addNode, 5)]))
        } catch let error as RaftError {
            #expect(error.description.contains("joint"), "\(error)")
        }
    }

    /// A configuration where a voter is also a learner cannot be restored from storage.
    @Test func voterThatIsAlsoALearnerIsRefused() throws {
        let storage = MemoryStorage()
        try storage.applySnapshot(
            Snapshot(metadata: SnapshotMetadata(confState: ConfState(voters: [1, 2], learners: [2]), index: 1, term: 1)))
        #expect(throws: RaftError.self) { try RawNode(config: Config(id: 1, storage: storage)) }
    }

    // MARK: - Safety rules

    /// A new leader accepts no configuration change until it has applied everything up to its
    /// own first entry: an earlier, unapplied change might still be in its log.
    @Test func newLeaderRefusesChangesUntilItsTermHasAnAppliedEntry() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        _ = try n.becomeLeader()
        #expect(n.node.core.pendingConfIndex == n.node.core.log.lastIndex, "the leader's own empty entry")
        try n.node.proposeConfChange(ConfChange(type: .addNode, nodeID: 4))
        let appended = n.node.core.log.unstable.entries.last ?? n.node.core.log.allEntries().last!
        #expect(appended.type == .normal && appended.data.isEmpty, "refused while the leader's first entry is unapplied")

        // Once an entry of its term is committed and applied, changes are accepted again.
        _ = try n.ack(from: 2, index: n.node.core.log.lastIndex)
        #expect(n.node.status.applied == n.node.core.log.lastIndex)
        try n.node.proposeConfChange(ConfChange(type: .addNode, nodeID: 4))
        let accepted = n.node.core.log.allEntries().last!
        #expect(accepted.type == .confChange)
    }

    /// Removing the leader with `stepDownOnRemoval`: once the removal is applied it steps down
    /// (into a new term), the others elect a leader among themselves and commit again.
    @Test func removedLeaderStepsDownAndTheRestCarriesOn() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.stepDownOnRemoval = true }
        try net.elect(1)
        try net.with(1) { try $0.proposeConfChange(ConfChange(type: .removeNode, nodeID: 1)) }
        net.deliverAll()
        #expect(net.state(1) == .follower, "the removed leader stepped down")
        #expect(net.status(2)?.config.voters.sorted() == [2, 3])
        net.run(rounds: 40)
        let leader = try #require(net.leader)
        #expect(leader.id == 2 || leader.id == 3)
        try net.with(leader.id) { try $0.propose([5]) }
        net.deliverAll()
        #expect(net.appliedData(2).contains([5]) && net.appliedData(3).contains([5]))
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A removed node ignores the group afterwards: it is not promotable, so however long it goes
    /// without hearing from a leader it never campaigns and never raises anyone's term.
    @Test func removedNodeNeverCampaigns() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.preVote = false }
        try net.elect(1)
        try net.with(1) { try $0.proposeConfChange(ConfChange(type: .removeNode, nodeID: 3)) }
        net.deliverAll()
        #expect(net.status(3)?.config.voters.sorted() == [1, 2])
        let term = net.term(1)
        for _ in 0..<100 {
            net.tick(3)
            net.deliverAll()
        }
        #expect(net.state(3) == .follower)
        #expect(net.term(3) == term && net.term(1) == term, "nobody's term moved")
        #expect(net.leader?.id == 1)
    }

    /// When a removed node's vote is no longer needed, entries waiting for it commit: in a
    /// two-node cluster whose second node stops answering, removing it lets the leader commit
    /// alone (etcd's TestCommitAfterRemoveNode).
    @Test func commitMovesOnWhenARemovedNodesVoteIsNoLongerNeeded() throws {
        let n = try TestNode(id: 1, voters: [1, 2])
        _ = try n.becomeLeader()
        _ = try n.ack(from: 2, index: n.node.core.log.lastIndex)  // the leader's entry, so changes are taken
        // The removal and a normal entry; node 2 acknowledges only the removal.
        try n.node.proposeConfChange(ConfChange(type: .removeNode, nodeID: 2))
        _ = n.readMessages()
        let removalIndex = n.node.core.log.lastIndex
        #expect(n.node.core.log.allEntries().last?.type == .confChange, "the removal was accepted")
        try n.propose([42])
        _ = try n.ack(from: 2, index: removalIndex)
        #expect(n.node.status.hardState.commit == removalIndex, "the normal entry waits for node 2")
        // Applying the removal leaves node 1 as the only voter: its own ack commits the rest.
        n.node.applyConfChange(ConfChange(type: .removeNode, nodeID: 2))
        _ = n.readMessages()
        #expect(n.node.status.hardState.commit == removalIndex + 1)
        #expect(n.committed.last?.data == [42])
    }
}
