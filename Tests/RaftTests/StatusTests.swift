import Testing
@testable import Raft
import RaftTestKit

/// `RawNode.status`: what a node reports about itself and, on the leader, about each member's
/// replication (etcd's Status with its Progress map), as the cluster changes underneath it.
@Suite struct StatusTests {
    /// The leader reports every member's progress: the leader itself and an up-to-date follower
    /// at the last index, and a follower whose answers are lost behind, with its appends in
    /// flight, paused once the window is full. When it answers again, it catches up.
    @Test func leaderReportsEachFollowersProgress() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.maxInflightMsgs = 3 }
        try net.elect(1)
        net.drop(from: 3, to: 1)
        for i in 0..<2 { try net.with(1) { try $0.propose([UInt8(i)]) } }
        net.deliverAll()

        var status = try #require(net.status(1))
        #expect(status.progress.keys.sorted() == [1, 2, 3])
        let me = try #require(status.progress[1])
        #expect(me.match == 4 && me.next == 5 && me.state == .replicate)
        let up = try #require(status.progress[2])
        #expect(up.match == 4 && up.next == 5 && up.state == .replicate)
        #expect(up.inflights.count == 0 && !up.isPaused && up.recentActive)
        var lagging = try #require(status.progress[3])
        #expect(lagging.match == 2 && lagging.next == 5 && lagging.state == .replicate)
        #expect(lagging.inflights.count == 2 && !lagging.isPaused)

        try net.with(1) { try $0.propose([2]) }
        net.deliverAll()
        status = try #require(net.status(1))
        lagging = try #require(status.progress[3])
        #expect(lagging.match == 2 && lagging.next == 6 && lagging.inflights.count == 3)
        #expect(lagging.isPaused, "a full window")
        #expect(status.progress[2]?.match == 5)

        net.heal()
        net.tick(1)
        net.deliverAll()
        lagging = try #require(net.status(1)?.progress[3])
        #expect(lagging.match == 5 && lagging.next == 6 && lagging.inflights.count == 0 && !lagging.isPaused)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A follower being sent a snapshot shows in the `.snapshot` state, with the snapshot's
    /// index pending and paused; afterwards it is replicating again.
    @Test func followerInTheSnapshotState() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        net.isolate(3)
        for i in 0..<3 { try net.with(1) { try $0.propose([UInt8(i)]) } }
        net.deliverAll()
        _ = try net.storages[1]!.createSnapshot(5, confState: ConfState(voters: [1, 2, 3]), data: [])
        try net.storages[1]!.compact(5)
        net.heal()
        net.tick(1)
        while !net.queue.contains(where: { $0.type == .snapshot }) && !net.queue.isEmpty { net.deliverNext() }

        var pr = try #require(net.status(1)?.progress[3])
        #expect(pr.state == .snapshot && pr.pendingSnapshot == 5 && pr.isPaused)
        #expect(pr.match == 2)
        net.deliverAll()
        pr = try #require(net.status(1)?.progress[3])
        #expect(pr.state == .replicate && pr.pendingSnapshot == 0 && pr.match == 5 && pr.next == 6)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// With CheckQuorum, each quorum check (every election timeout) clears every follower's
    /// `recentActive`; a follower that answers in the next round is active again, one whose
    /// answers are lost stays inactive. The leader always counts itself active.
    @Test func recentActiveIsResetByCheckQuorumTicks() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.checkQuorum = true }
        try net.elect(1)
        var status = try #require(net.status(1))
        #expect(status.progress[2]?.recentActive == true && status.progress[3]?.recentActive == true,
                "both answered the leader's append")

        net.drop(from: 3, to: 1)
        // Only the leader ticks (so no follower campaigns); the ninth tick is the last before a check.
        for _ in 0..<9 {
            net.tick(1)
            net.deliverAll()
        }
        status = try #require(net.status(1))
        #expect(status.progress[3]?.recentActive == true, "not checked yet")
        // The tenth tick: the check clears the flags, then that tick's heartbeats are answered by 2 only.
        net.tick(1)
        #expect(net.status(1)?.progress[2]?.recentActive == false)
        #expect(net.status(1)?.progress[3]?.recentActive == false)
        #expect(net.status(1)?.progress[1]?.recentActive == true)
        net.deliverAll()
        status = try #require(net.status(1))
        #expect(status.progress[2]?.recentActive == true)
        #expect(status.progress[3]?.recentActive == false)
        #expect(status.raftState == .leader, "1 and 2 are a quorum")

        net.heal()
        net.tick(1)
        net.deliverAll()
        #expect(net.status(1)?.progress[3]?.recentActive == true)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Only a leader fills `progress`: followers, candidates and pre-candidates report none, nor
    /// does a leader once it steps down.
    @Test func onlyTheLeaderHasProgress() throws {
        let candidate = try TestNode(id: 1, voters: [1, 2, 3])
        try candidate.node.campaign()
        #expect(candidate.node.status.raftState == .candidate)
        #expect(candidate.node.status.progress.isEmpty)
        let preCandidate = try TestNode(id: 1, voters: [1, 2, 3]) { $0.preVote = true }
        try preCandidate.node.campaign()
        #expect(preCandidate.node.status.raftState == .preCandidate)
        #expect(preCandidate.node.status.progress.isEmpty)

        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        for id: UInt64 in [2, 3] {
            let s = try #require(net.status(id))
            #expect(s.raftState == .follower && s.lead == 1 && s.progress.isEmpty, "node \(id)")
        }
        try net.elect(2)
        #expect(net.status(1)?.progress.isEmpty == true)
        #expect(net.status(2)?.progress.keys.sorted() == [1, 2, 3])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// `leadTransferee` names the transferee while a transfer is under way, on the leader only,
    /// and is 0 once it ends, by success or timeout.
    @Test func leadTransfereeDuringATransfer() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        net.isolate(3)
        net.with(1) { $0.transferLeader(to: 3) }
        #expect(net.status(1)?.leadTransferee == 3)
        #expect(net.status(2)?.leadTransferee == 0 && net.status(3)?.leadTransferee == 0)
        for _ in 0..<10 { net.tick(1) }
        #expect(net.status(1)?.leadTransferee == 0, "abandoned")
        #expect(net.status(1)?.raftState == .leader)

        net.heal()
        net.run(rounds: 2)
        net.with(1) { $0.transferLeader(to: 3) }
        #expect(net.status(1)?.leadTransferee == 3)
        net.deliverAll()
        #expect(net.leader?.id == 3)
        for id: UInt64 in 1...3 { #expect(net.status(id)?.leadTransferee == 0, "node \(id)") }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// `applied` moves when the application calls `advance`, not when a Ready hands committed
    /// entries out; with paginated Readies it follows each page.
    @Test func appliedFollowsAdvance() throws {
        let storage = try bootstrappedStorage(voters: [1])
        var config = Config(id: 1, storage: storage)
        config.maxCommittedSizePerReady = 1
        let node = try RawNode(config: config)
        #expect(node.status.applied == 1, "the bootstrap snapshot")
        try node.campaign()
        for i in 0..<3 { try node.propose([UInt8(i)]) }
        var applied: [UInt64] = []
        while node.hasReady {
            let rd = node.ready()
            try storage.append(rd.entries)
            if let hs = rd.hardState { try storage.setHardState(hs) }
            let before = node.status.applied
            node.advance(rd)
            if let last = rd.committedEntries.last {
                #expect(rd.committedEntries.count == 1)
                #expect(before == last.index - 1, "not applied before advance")
                #expect(node.status.applied == last.index)
                applied.append(node.status.applied)
            } else {
                #expect(node.status.applied == before)
            }
        }
        #expect(applied == [2, 3, 4, 5])
        #expect(node.status.hardState.commit == 5)

        // A restarted node reports the applied index it was given.
        var restart = Config(id: 1, storage: storage)
        restart.applied = 4
        #expect(try RawNode(config: restart).status.applied == 4)
    }

    /// `config` is the membership as applied: learners, promotions, removals and joint
    /// configurations show on every node that applied them, and the leader's progress follows.
    @Test func configReflectsTheMembership() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        for id: UInt64 in 1...3 { #expect(net.status(id)?.config == ConfState(voters: [1, 2, 3])) }

        func change(_ cc: ConfChange) throws {
            try net.with(1) { try $0.proposeConfChange(cc) }
            net.deliverAll()
        }
        try change(ConfChange(type: .addLearnerNode, nodeID: 4))
        for id: UInt64 in 1...3 { #expect(net.status(id)?.config == ConfState(voters: [1, 2, 3], learners: [4]), "node \(id)") }
        #expect(net.status(1)?.progress[4]?.isLearner == true)

        try change(ConfChange(type: .addNode, nodeID: 4))
        for id: UInt64 in 1...3 { #expect(net.status(id)?.config == ConfState(voters: [1, 2, 3, 4]), "node \(id)") }
        #expect(net.status(1)?.progress[4]?.isLearner == false)

        try change(ConfChange(type: .removeNode, nodeID: 2))
        for id: UInt64 in [1, 3] { #expect(net.status(id)?.config == ConfState(voters: [1, 3, 4]), "node \(id)") }
        #expect(net.status(1)?.progress.keys.sorted() == [1, 3, 4])

        // A joint configuration, left explicitly.
        try net.with(1) {
            try $0.proposeConfChange(ConfChangeV2(transition: .jointExplicit, changes: [
                ConfChangeSingle(type: .addNode, nodeID: 2), ConfChangeSingle(type: .removeNode, nodeID: 4),
            ]))
        }
        net.deliverAll()
        #expect(net.status(1)?.config == ConfState(voters: [1, 2, 3], votersOutgoing: [1, 3, 4]))
        try net.with(1) { try $0.proposeConfChange(ConfChangeV2()) }
        net.deliverAll()
        for id: UInt64 in [1, 2, 3] { #expect(net.status(id)?.config == ConfState(voters: [1, 2, 3]), "node \(id)") }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }
}

@Suite struct LeaderSelfStatusTests {
    /// The leader counts itself as recently active from the moment it leads, CheckQuorum or not.
    @Test(arguments: [false, true])
    func leaderIsRecentlyActiveFromTheStart(checkQuorum: Bool) throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.checkQuorum = checkQuorum }
        try net.elect(1)
        #expect(net.status(1)?.progress[1]?.recentActive == true)
    }
}
