import Testing
@testable import Raft
import RaftTestKit

/// Leadership transfer (thesis §3.10), in the manner of etcd's TestLeaderTransfer* tests: the
/// leader brings the transferee up to date, then sends it `timeoutNow`; the transferee
/// campaigns at once (skipping PreVote and leases) and wins; meanwhile the leader takes no
/// proposals, and gives up after an election timeout.
@Suite struct LeaderTransferTests {
    /// A leader of term 1 over 1, 2, 3 whose followers in `upToDate` acknowledged its empty
    /// entry (index 2); then `proposals` entries that only `upToDate` acknowledge.
    private func leader(upToDate: [UInt64] = [2, 3], proposals: Int = 0, learners: [UInt64] = [],
                        configure: (inout Config) -> Void = { _ in }) throws -> TestNode {
        let n = try TestNode(id: 1, voters: [1, 2, 3], learners: learners, configure: configure)
        try n.becomeLeader()
        for peer in upToDate { _ = try n.ack(from: peer, index: 2) }
        for i in 0..<proposals { try n.propose([UInt8(i)]) }
        for peer in upToDate where proposals > 0 { _ = try n.ack(from: peer, index: n.core.log.lastIndex) }
        n.readMessages()
        return n
    }

    private func transfer(_ n: TestNode, to transferee: UInt64) -> [Message] {
        n.node.transferLeader(to: transferee)
        return n.readMessages()
    }

    // MARK: - The transfer

    /// The transferee is up to date: the leader sends it `timeoutNow` at once; it campaigns
    /// immediately (no election timeout to wait for) and wins; the old leader follows it.
    @Test func transferToAnUpToDateFollower() throws {
        let n = try leader(proposals: 1)
        #expect(transfer(n, to: 2) == [Message(type: .timeoutNow, to: 2, from: 1, term: 1)])
        #expect(n.node.status.leadTransferee == 2)
        #expect(n.state == .leader, "it leads until the transferee wins")

        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        let log = MessageLog()
        net.record(into: log)
        net.with(1) { $0.transferLeader(to: 2) }
        #expect(net.queue.map(\.type) == [.timeoutNow])
        net.deliverNext()
        #expect(net.state(2) == .candidate && net.term(2) == 2, "campaigns on receipt")
        net.deliverAll()
        #expect(net.leader?.id == 2 && net.leader?.term == 2)
        #expect(net.state(1) == .follower && net.status(1)?.lead == 2)
        #expect(net.status(1)?.leadTransferee == 0)
        #expect(log.of(.vote, from: 2).count == 2)
        // And back again.
        net.with(2) { $0.transferLeader(to: 1) }
        net.deliverAll()
        #expect(net.leader?.id == 1 && net.leader?.term == 3)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// During a transfer the leader takes no proposals, its own or forwarded ones (the
    /// transferee would have to catch up again); once the transfer is abandoned it takes them.
    @Test func leaderRefusesProposalsDuringATransfer() throws {
        let n = try leader(upToDate: [2])
        let last = n.core.log.lastIndex
        _ = transfer(n, to: 3)
        #expect(throws: RaftError.proposalDropped) { try n.propose([1]) }
        #expect(throws: RaftError.proposalDropped) {
            try n.step(Message(type: .proposal, to: 1, from: 2, entries: [Entry(data: [2])]))
        }
        #expect(throws: RaftError.proposalDropped) {
            try n.node.proposeConfChange(ConfChange(type: .addNode, nodeID: 4))
        }
        #expect(n.core.log.lastIndex == last)
        n.tick(10)
        #expect(n.node.status.leadTransferee == 0)
        try n.propose([3])
        #expect(n.core.log.lastIndex == last + 1)
    }

    /// A transferee that lags is caught up first: `timeoutNow` goes out only when its
    /// acknowledgement reaches the leader's last index.
    @Test func laggingTransfereeIsCaughtUpFirst() throws {
        let n = try leader(upToDate: [2, 3])
        try n.propose([1])
        try n.propose([2])
        n.readMessages()
        _ = try n.ack(from: 2, index: 4)
        #expect(n.core.log.committed == 4 && n.node.status.progress[3]?.match == 2)

        var sent = transfer(n, to: 3)
        #expect(!sent.contains { $0.type == .timeoutNow })
        #expect(sent.allSatisfy { $0.type == .append && $0.to == 3 })
        #expect(n.node.status.leadTransferee == 3)
        sent = try n.ack(from: 3, index: 3)
        #expect(!sent.contains { $0.type == .timeoutNow }, "not there yet")
        sent = try n.ack(from: 3, index: 4)
        #expect(sent.filter { $0.type == .timeoutNow } == [Message(type: .timeoutNow, to: 3, from: 1, term: 1)])

        // Through the network (etcd's TestLeaderTransferToSlowFollower): 3 missed entries.
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        net.isolate(3)
        for i in 0..<3 { try net.with(1) { try $0.propose([UInt8(i)]) } }
        net.deliverAll()
        net.heal()
        let log = MessageLog()
        net.record(into: log)
        net.with(1) { $0.transferLeader(to: 3) }
        net.deliverAll()
        #expect(net.leader?.id == 3 && net.leader?.term == 2)
        let toThree = log.messages.filter { $0.from == 1 && $0.to == 3 }
        let timeoutNow = try #require(toThree.firstIndex { $0.type == .timeoutNow })
        #expect(toThree[..<timeoutNow].flatMap(\.entries).map(\.index) == [3, 4, 5], "caught up before")
        #expect(net.appliedData(3) == [[0], [1], [2]])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A transferee behind the leader's compacted log is caught up by a snapshot, then told to
    /// campaign (etcd's TestLeaderTransferAfterSnapshot).
    @Test func transfereeCaughtUpBySnapshot() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        net.isolate(3)
        for i in 0..<3 { try net.with(1) { try $0.propose([UInt8(i)]) } }
        net.deliverAll()
        let storage = try #require(net.storages[1])
        _ = try storage.createSnapshot(5, confState: ConfState(voters: [1, 2, 3]), data: [5])
        try storage.compact(5)
        net.heal()
        let log = MessageLog()
        net.record(into: log)
        net.with(1) { $0.transferLeader(to: 3) }
        // 3 rejects the leader's append; probing back, the leader finds the entries compacted.
        net.deliverAll()
        #expect(log.of(.snapshot, from: 1, to: 3).count == 1)
        let snapshot = try #require(log.messages.firstIndex { $0.type == .snapshot })
        let timeoutNow = try #require(log.messages.firstIndex { $0.type == .timeoutNow })
        #expect(snapshot < timeoutNow)
        #expect(net.leader?.id == 3 && net.leader?.term == 2)
        #expect(try net.storages[3]?.snapshot().metadata.index == 5)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A transfer must finish within an election timeout (counted from the request): if the
    /// transferee does not take over, the leader abandons the transfer and serves again.
    @Test func transferIsAbandonedAfterAnElectionTimeout() throws {
        let n = try leader(upToDate: [2])
        n.tick(5)
        n.readMessages()
        _ = transfer(n, to: 3)
        n.tick(9)
        #expect(n.node.status.leadTransferee == 3, "the clock restarted at the request")
        n.tick()
        #expect(n.node.status.leadTransferee == 0)
        #expect(n.state == .leader && n.term == 1)
        try n.propose([1])

        // Through the network: the transferee is cut off, so the timeoutNow never arrives.
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        net.isolate(3)
        net.with(1) { $0.transferLeader(to: 3) }
        net.run(rounds: 9)
        #expect(net.status(1)?.leadTransferee == 3)
        net.run(rounds: 1)
        #expect(net.status(1)?.leadTransferee == 0)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        #expect(net.appliedData(2) == [[1]])
        #expect(net.leader?.id == 1 && net.leader?.term == 1)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - Requests that are ignored or replace another

    /// Transfers to the leader itself, to a node outside the configuration, or to a learner
    /// (who cannot be elected) are ignored. A transfer to self while another is under way
    /// abandons that one, as in etcd.
    @Test func transfersToSelfStrangersAndLearnersAreIgnored() throws {
        let n = try leader(upToDate: [2, 3], learners: [4])
        for target: UInt64 in [1, 9, 4] {
            #expect(transfer(n, to: target).isEmpty, "to \(target)")
            #expect(n.node.status.leadTransferee == 0, "to \(target)")
        }
        try n.propose([1])

        n.readMessages()
        _ = transfer(n, to: 2)
        #expect(n.node.status.leadTransferee == 2)
        #expect(transfer(n, to: 1).isEmpty)
        #expect(n.node.status.leadTransferee == 0)

        // A learner added by a membership change.
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        try net.with(1) { try $0.proposeConfChange(ConfChange(type: .addLearnerNode, nodeID: 4)) }
        net.deliverAll()
        #expect(net.status(1)?.config.learners == [4])
        net.with(1) { $0.transferLeader(to: 4) }
        #expect(net.status(1)?.leadTransferee == 0)
        #expect(net.queue.isEmpty)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Asking again for the same transferee changes nothing (the clock keeps running); asking
    /// for another one abandons the first transfer and starts over.
    @Test func secondTransferToTheSameOrAnotherTarget() throws {
        let n = try leader(upToDate: [2])
        _ = transfer(n, to: 3)
        n.tick(5)
        n.readMessages()
        #expect(transfer(n, to: 3).isEmpty, "already under way")
        n.tick(4)
        #expect(n.node.status.leadTransferee == 3)
        n.tick()
        #expect(n.node.status.leadTransferee == 0, "ten ticks after the first request")

        n.readMessages()
        _ = transfer(n, to: 3)
        n.tick(5)
        n.readMessages()
        #expect(transfer(n, to: 2) == [Message(type: .timeoutNow, to: 2, from: 1, term: 1)])
        #expect(n.node.status.leadTransferee == 2)
        n.tick(9)
        #expect(n.node.status.leadTransferee == 2, "its own election timeout")
        n.tick()
        #expect(n.node.status.leadTransferee == 0)
    }

    /// Removing or demoting the transferee abandons the transfer.
    @Test(arguments: [ConfChangeType.removeNode, .addLearnerNode])
    func removingTheTransfereeAbandonsTheTransfer(change: ConfChangeType) throws {
        let n = try leader(upToDate: [2])
        _ = transfer(n, to: 3)
        #expect(n.node.status.leadTransferee == 3)
        n.node.applyConfChange(ConfChange(type: change, nodeID: 3))
        #expect(n.node.status.leadTransferee == 0)
        try n.propose([1])
    }

    // MARK: - The transferee

    /// `timeoutNow` makes a follower campaign at once, for real, even with PreVote on: a
    /// transfer is no partition to recover from. Its vote requests carry the transfer context.
    @Test func timeoutNowStartsARealElectionAtOnce() throws {
        let n = try TestNode(id: 2, voters: [1, 2, 3]) {
            $0.preVote = true
            $0.checkQuorum = true
        }
        _ = try n.stepAndRead(Message(type: .heartbeat, to: 2, from: 1, term: 1))
        #expect(n.core.lead == 1 && n.term == 1)
        let sent = try n.stepAndRead(Message(type: .timeoutNow, to: 2, from: 1, term: 1))
        #expect(n.state == .candidate && n.term == 2 && n.core.vote == 2)
        #expect(sent.sorted { $0.to < $1.to } == [1, 3].map {
            Message(type: .vote, to: $0, from: 2, term: 2, logTerm: 1, index: 1, context: CampaignType.transferContext)
        })

        // A learner cannot be elected: it ignores timeoutNow.
        let learner = try TestNode(id: 4, voters: [1, 2, 3], learners: [4])
        _ = try learner.stepAndRead(Message(type: .heartbeat, to: 4, from: 1, term: 1))
        #expect(try learner.stepAndRead(Message(type: .timeoutNow, to: 4, from: 1, term: 1)).isEmpty)
        #expect(learner.state == .follower && learner.term == 1)
    }

    /// With CheckQuorum a follower that hears from its leader ignores vote requests (its lease),
    /// but not those of a transfer: the leader itself asked for that election.
    @Test func followerInLeaseGrantsTheTransfereesVote() throws {
        let n = try TestNode(id: 3, voters: [1, 2, 3]) { $0.checkQuorum = true }
        _ = try n.stepAndRead(Message(type: .heartbeat, to: 3, from: 1, term: 1))
        let plain = Message(type: .vote, to: 3, from: 2, term: 2, logTerm: 1, index: 1)
        #expect(try n.stepAndRead(plain).isEmpty, "in lease: ignored")
        #expect(n.term == 1)
        var transfer = plain
        transfer.context = CampaignType.transferContext
        #expect(try n.stepAndRead(transfer) == [Message(type: .voteResponse, to: 2, from: 3, term: 2)])
        #expect(n.term == 2 && n.core.vote == 2)
    }

    /// Through the network with PreVote and CheckQuorum on every node (etcd's
    /// TestLeaderTransferWithCheckQuorum): every follower is in its lease, and the old leader
    /// believes in its own; the transfer still elects the transferee, without a pre-election.
    @Test func transferWinsWithPreVoteAndCheckQuorum() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) {
            $0.preVote = true
            $0.checkQuorum = true
        }
        try net.elect(1)
        net.run(rounds: 3)
        let log = MessageLog()
        net.record(into: log)
        net.with(1) { $0.transferLeader(to: 2) }
        net.deliverAll()
        #expect(net.leader?.id == 2 && net.leader?.term == 2)
        #expect(log.of(.preVote).isEmpty)
        let votes = log.of(.vote, from: 2)
        #expect(votes.count == 2 && votes.allSatisfy { $0.context == CampaignType.transferContext })
        #expect(log.of(.voteResponse, to: 2).allSatisfy { !$0.reject })
        net.run(rounds: 30)
        #expect(net.leader?.id == 2 && net.leader?.term == 2, "and keeps leading")
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - Forwarding

    /// A follower forwards a transfer request to its leader (etcd's
    /// TestLeaderTransferToUpToDateNodeFromFollower); without a leader it drops it.
    @Test func followerForwardsTransferRequests() throws {
        let n = try TestNode(id: 2, voters: [1, 2, 3])
        n.node.transferLeader(to: 3)
        #expect(n.readMessages().isEmpty, "no leader to ask")
        _ = try n.stepAndRead(Message(type: .heartbeat, to: 2, from: 1, term: 1))
        n.node.transferLeader(to: 3)
        #expect(n.readMessages() == [Message(type: .transferLeader, to: 1, from: 3, term: 1)])

        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        net.with(2) { $0.transferLeader(to: 2) }
        net.deliverAll()
        #expect(net.leader?.id == 2 && net.leader?.term == 2)
        net.with(1) { $0.transferLeader(to: 3) }
        net.deliverAll()
        #expect(net.leader?.id == 3 && net.leader?.term == 3)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }
}

@Suite struct LeaderTransferToNoneTests {
    /// 0 means "none": asked on a follower it must not be forwarded (the follower's id would be
    /// stamped on it and the follower would take over).
    @Test func transferToZeroIsIgnored() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        net.with(3) { $0.transferLeader(to: 0) }
        net.with(1) { $0.transferLeader(to: 0) }
        net.deliverAll()
        net.run(rounds: 3)
        #expect(net.leader?.id == 1)
        #expect(net.status(1)?.leadTransferee == 0)
    }
}
