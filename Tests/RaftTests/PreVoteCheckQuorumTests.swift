import Testing
@testable import Raft
import RaftTestKit

/// PreVote (thesis §9.6) and CheckQuorum with leader leases (thesis §6.2, §4.2.3): what keeps a
/// partitioned or removed node from disrupting a healthy cluster, and what makes a leader that
/// lost its quorum step down. In the manner of etcd's raft_test.go; driven by ticks.
@Suite struct PreVoteCheckQuorumTests {
    /// Elects 1 in a three-node cluster, isolates 3, commits `proposals` entries without it and
    /// ticks every node `rounds` times. Returns the network.
    private func partitionThree(
        preVote: Bool, checkQuorum: Bool, proposals: Int = 3, rounds: Int = 100
    ) throws -> SimulatedNetwork {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) {
            $0.preVote = preVote
            $0.checkQuorum = checkQuorum
        }
        try net.elect(1)
        #expect(net.leader?.id == 1 && net.leader?.term == 1)
        net.isolate(3)
        for i in 0..<proposals { try net.with(1) { try $0.propose([UInt8(i)]) } }
        net.run(rounds: rounds)
        #expect(net.commit(1) == UInt64(2 + proposals))
        #expect(net.commit(3) == 2)
        return net
    }

    // MARK: - PreVote

    /// With PreVote a partitioned node cannot win a pre-election, so its term stays where it
    /// was; when it rejoins, the leader is undisturbed and simply brings it up to date.
    @Test(arguments: [false, true])
    func preVotePartitionedNodeRejoinsWithoutDisruption(checkQuorum: Bool) throws {
        let net = try partitionThree(preVote: true, checkQuorum: checkQuorum)
        #expect(net.term(3) == 1, "a pre-candidate does not raise its term")
        #expect(net.state(3) == .preCandidate)
        #expect(net.status(3)?.hardState.vote == 1, "its vote of term 1 stands")
        #expect(net.leader?.id == 1 && net.leader?.term == 1)

        net.heal()
        net.run(rounds: 30)
        #expect(net.leader?.id == 1)
        for id: UInt64 in 1...3 {
            #expect(net.term(id) == 1, "node \(id)")
            #expect(net.status(id)?.lead == 1, "node \(id)")
        }
        #expect(net.log(3) == net.log(1))
        #expect(net.appliedData(3) == [[0], [1], [2]])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Without PreVote the same partitioned node keeps raising its term; when it rejoins, its
    /// vote requests depose the healthy leader. Its log is behind, so it cannot win: another
    /// election, at a term above its own, elects one of the others.
    @Test func withoutPreVoteRejoiningNodeDeposesTheLeader() throws {
        let net = try partitionThree(preVote: false, checkQuorum: false)
        let isolatedTerm = net.term(3)
        #expect(isolatedTerm >= 3, "the isolated node campaigned repeatedly (term \(isolatedTerm))")
        #expect(net.state(3) == .candidate)
        #expect(net.leader?.id == 1 && net.leader?.term == 1)

        net.heal()
        var deposed = false
        for _ in 0..<60 {
            net.run(rounds: 1)
            if net.state(1) != .leader { deposed = true }
        }
        #expect(deposed, "the leader of term 1 was deposed")
        let leader = try #require(net.leader)
        #expect(leader.id != 3, "node 3 lacks committed entries")
        #expect(leader.term > isolatedTerm)
        for id: UInt64 in 1...3 { #expect(net.status(id)?.lead == leader.id, "node \(id)") }
        #expect(net.log(3) == net.log(leader.id))
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A pre-candidate asks for votes for its term + 1 without changing its term or vote (nor
    /// anything to persist); only once a majority grants does it become a candidate, raising its
    /// term, and then a leader. A majority of refusals sends it back to follower at its term.
    @Test func preCandidateKeepsItsTermUntilItWinsThePreVote() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 2, commit: 1)) { $0.preVote = true }
        try n.node.campaign()
        #expect(n.state == .preCandidate)
        #expect(n.term == 2 && n.core.vote == 0)
        let requests = n.readMessages()
        #expect(requests.sorted { $0.to < $1.to } == [2, 3].map {
            Message(type: .preVote, to: $0, from: 1, term: 3, logTerm: 1, index: 1)
        })
        #expect(n.readies.last?.hardState == nil)
        #expect(n.readies.last?.mustSync == false)
        #expect(n.storage.hardState == HardState(term: 2, commit: 1))

        let votes = try n.stepAndRead(Message(type: .preVoteResponse, to: 1, from: 2, term: 3))
        #expect(n.state == .candidate)
        #expect(n.term == 3 && n.core.vote == 1)
        #expect(votes.sorted { $0.to < $1.to } == [2, 3].map {
            Message(type: .vote, to: $0, from: 1, term: 3, logTerm: 1, index: 1)
        })
        #expect(n.storage.hardState == HardState(term: 3, vote: 1, commit: 1))
        _ = try n.stepAndRead(Message(type: .voteResponse, to: 1, from: 3, term: 3))
        #expect(n.state == .leader && n.term == 3)

        // Refused by a majority at the same term: back to follower, term unchanged.
        let refused = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 2, commit: 1)) { $0.preVote = true }
        try refused.node.campaign()
        refused.readMessages()
        try refused.step(Message(type: .preVoteResponse, to: 1, from: 2, term: 2, reject: true))
        #expect(refused.state == .preCandidate)
        try refused.step(Message(type: .preVoteResponse, to: 1, from: 3, term: 2, reject: true))
        #expect(refused.state == .follower && refused.term == 2 && refused.core.vote == 0)

        // Refused by a node of a later term: follow that term at once.
        let behind = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 2, commit: 1)) { $0.preVote = true }
        try behind.node.campaign()
        behind.readMessages()
        try behind.step(Message(type: .preVoteResponse, to: 1, from: 2, term: 7, reject: true))
        #expect(behind.state == .follower && behind.term == 7)
    }

    /// A node grants a pre-vote for a later term, even if it voted for someone else in its
    /// current term, exactly when the pre-candidate's log is at least as up to date as its own;
    /// answering changes neither its term nor its vote. For its current term the usual rule holds.
    @Test func preVoteGrantedForFutureTermOnlyWhenLogIsUpToDate() throws {
        // Voter: log (1,1) (2,2) (3,2); term 2, voted for 3.
        let cases: [(term: UInt64, logTerm: UInt64, index: UInt64, from: UInt64, reject: Bool)] = [
            (3, 2, 3, 2, false),
            (3, 2, 9, 2, false),
            (3, 3, 2, 2, false),
            (3, 2, 2, 2, true),
            (3, 1, 9, 2, true),
            (5, 2, 3, 2, false),
            (5, 1, 3, 2, true),
            // Its current term: only the node it voted for.
            (2, 2, 3, 2, true),
            (2, 2, 3, 3, false),
        ]
        for (i, c) in cases.enumerated() {
            let n = try TestNode(
                id: 1, voters: [1, 2, 3], entries: entries(from: 2, terms: [2, 2]),
                hardState: HardState(term: 2, vote: 3, commit: 1)) { $0.preVote = true }
            let sent = try n.stepAndRead(Message(type: .preVote, to: 1, from: c.from, term: c.term, logTerm: c.logTerm, index: c.index))
            // A grant carries the pre-vote's term; a refusal the voter's own.
            #expect(sent == [
                Message(type: .preVoteResponse, to: c.from, from: 1, term: c.reject ? 2 : c.term, reject: c.reject)
            ], "case \(i): \(c)")
            #expect(n.term == 2 && n.core.vote == 3 && n.state == .follower, "case \(i)")
            #expect(n.storage.hardState == HardState(term: 2, vote: 3, commit: 1), "case \(i)")
        }
    }

    /// A single voter with PreVote wins its pre-election and its election at once.
    @Test func singleNodePreCandidateBecomesLeader() throws {
        let n = try TestNode(id: 1, voters: [1]) { $0.preVote = true }
        try n.node.campaign()
        #expect(n.state == .leader && n.term == 1)
        #expect(n.takeCommitted() == [Entry(term: 1, index: 2)])
    }

    /// A node that fell behind in terms can still complete an election with PreVote (etcd's
    /// TestNodeWithSmallerTermCanCompleteElection): refusals carry the voter's term, so the
    /// pre-candidate at the older term learns the current one, and a pre-vote response carries
    /// the term asked about, so it is not discarded as stale.
    @Test func nodeWithSmallerTermCanCompleteElection() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.preVote = true }
        net.cut(1, 3)
        net.cut(2, 3)
        try net.elect(1)
        #expect(net.leader?.id == 1 && net.term(1) == 1)
        try net.with(3) { try $0.campaign() }
        net.deliverAll()
        #expect(net.state(3) == .preCandidate && net.term(3) == 0)
        try net.elect(2)
        #expect(net.leader?.id == 2)
        #expect(net.term(1) == 2 && net.term(2) == 2 && net.term(3) == 0)

        // 3 comes back while 2 goes down; 3 and 1 both campaign.
        net.heal()
        net.isolate(2)
        try net.with(3) { try $0.campaign() }
        net.deliverAll()
        #expect(net.term(3) == 2 && net.state(3) == .follower, "refused, with the current term")
        try net.with(1) { try $0.campaign() }
        net.deliverAll()
        let leader = try #require(net.leaders.first { $0.id != 2 })
        #expect(leader.id == 1 && leader.term == 3)
        #expect(net.status(3)?.lead == 1)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - CheckQuorum

    /// A CheckQuorum leader that hears from no majority steps down at its next quorum check
    /// whose whole window follows the partition: within two election timeouts at the most,
    /// exactly when its own clock says. A healthy leader never does.
    @Test func checkQuorumLeaderStepsDownWithoutAMajority() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.checkQuorum = true }
        try net.elect(1)
        net.run(rounds: 37)
        #expect(net.leader?.id == 1 && net.leader?.term == 1, "a healthy leader keeps its quorum")

        let electionTick = net.nodes[1]!.core.electionTimeout
        let elapsed = net.nodes[1]!.core.electionElapsed
        let expected = elapsed == 0 ? electionTick : 2 * electionTick - elapsed
        net.isolate(1)
        var ticks = 0
        while net.state(1) == .leader && ticks < 3 * electionTick {
            net.tick(1)
            ticks += 1
        }
        #expect(ticks == expected, "stepped down after \(ticks) ticks, elapsed \(elapsed)")
        #expect(net.state(1) == .follower)
        #expect(net.term(1) == 1 && net.status(1)?.lead == 0)

        // Meanwhile the others elect a new leader; the old one (whose clock stops here, so that
        // it does not campaign alone) follows it once healed.
        for _ in 0..<40 {
            net.tick(2)
            net.tick(3)
            net.deliverAll()
        }
        let leader = try #require(net.leaders.first { $0.id != 1 })
        #expect(leader.term == 2)
        net.heal()
        net.run(rounds: 5)
        #expect(net.leader?.id == leader.id)
        #expect(net.status(1)?.lead == leader.id && net.term(1) == 2)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A CheckQuorum leader keeps leading while a bare majority answers, in a five-node cluster
    /// with two followers cut off.
    @Test func checkQuorumLeaderKeepsLeadingWithABareMajority() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3, 4, 5]) { $0.checkQuorum = true }
        try net.elect(1)
        net.isolate(4)
        net.isolate(5)
        // Only the leader's clock runs, so that 4 and 5 do not campaign.
        for _ in 0..<100 {
            net.tick(1)
            net.deliverAll()
        }
        #expect(net.leader?.id == 1 && net.term(1) == 1)
        net.isolate(3)
        for _ in 0..<20 {
            net.tick(1)
            net.deliverAll()
        }
        #expect(net.state(1) == .follower, "two of five is no majority")
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Leases: with CheckQuorum, a node that heard from a leader within the election timeout
    /// ignores vote and pre-vote requests of higher terms, without even adopting the term. A
    /// leadership transfer's vote is honoured; so is any request once the lease has expired.
    @Test func followerInLeaseIgnoresVoteRequests() throws {
        let requests: [(Message, honouredInLease: Bool)] = [
            (Message(type: .vote, to: 1, from: 3, term: 2, logTerm: 1, index: 1), false),
            (Message(type: .preVote, to: 1, from: 3, term: 2, logTerm: 1, index: 1), false),
            (Message(type: .vote, to: 1, from: 3, term: 2, logTerm: 1, index: 1, context: Array("CampaignTransfer".utf8)), true),
        ]
        for (request, honoured) in requests {
            let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 1, commit: 1)) {
                $0.checkQuorum = true
                $0.preVote = request.type == .preVote
            }
            // Keep the node from campaigning by itself while the test ticks it.
            n.node.core.randomizedElectionTimeout = 2 * n.core.electionTimeout - 1
            _ = try n.stepAndRead(Message(type: .heartbeat, to: 1, from: 2, term: 1, commit: 1))
            n.tick(n.core.electionTimeout - 1)
            var sent = try n.stepAndRead(request)
            let what = "\(request.type) \(request.context.isEmpty ? "" : "(transfer)")"
            if honoured {
                #expect(sent.map(\.type) == [request.type == .vote ? .voteResponse : .preVoteResponse], "\(what)")
                #expect(sent.first?.reject == false, "\(what)")
                continue
            }
            #expect(sent.isEmpty, "\(what): ignored in lease")
            #expect(n.term == 1 && n.core.lead == 2 && n.core.vote == 0, "\(what)")
            // One more tick and the lease has expired.
            n.tick()
            sent = try n.stepAndRead(request)
            #expect(sent.map(\.type) == [request.type == .vote ? .voteResponse : .preVoteResponse], "\(what)")
            #expect(sent.first?.reject == false, "\(what)")
            #expect(n.term == (request.type == .vote ? 2 : 1), "\(what)")
        }
    }

    /// In a cluster: a node partitioned away (no PreVote) raised its term; when it rejoins and
    /// asks for votes, the leader and its follower, both in lease, ignore it: no vote is cast,
    /// no term changes and the leader keeps leading.
    @Test func disruptiveCandidateIsIgnoredWhileTheLeaderIsHealthy() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.checkQuorum = true }
        try net.elect(1)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        net.isolate(3)
        try net.with(1) { try $0.propose([2]) }
        net.deliverAll()
        // Only 3's clock runs: it campaigns again and again, alone.
        for _ in 0..<50 { net.tick(3) }
        let staleTerm = net.term(3)
        #expect(staleTerm >= 3)
        #expect(net.state(3) == .candidate)

        net.heal()
        let log = MessageLog()
        net.record(into: log)
        var ticks = 0
        while !net.queue.contains(where: { $0.type == .vote }) && ticks < 40 {
            net.tick(3)
            ticks += 1
        }
        #expect(net.queue.filter { $0.type == .vote }.count == 2)
        net.deliverAll()
        #expect(log.of(.voteResponse).isEmpty, "\(log.of(.voteResponse))")
        #expect(net.leader?.id == 1 && net.term(1) == 1)
        #expect(net.term(2) == 1 && net.status(2)?.lead == 1)
        #expect(net.term(3) == staleTerm + 1 && net.state(3) == .candidate)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// …but the stuck candidate answers the leader's next heartbeat (CheckQuorum makes nodes
    /// answer messages of older terms) with its higher term, and the leader steps down: a leader
    /// receiving a response of a higher term becomes a follower of that term. A new election at
    /// a later term then elects an up-to-date node and frees the candidate (etcd's
    /// TestFreeStuckCandidateWithCheckQuorum).
    @Test func leaderStepsDownOnHigherTermResponseAndClusterRecovers() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.checkQuorum = true }
        try net.elect(1)
        net.isolate(3)
        try net.with(1) { try $0.propose([2]) }
        net.deliverAll()
        for _ in 0..<50 { net.tick(3) }
        let staleTerm = net.term(3)
        net.heal()

        let log = MessageLog()
        net.record(into: log)
        net.tick(1)
        net.deliverAll()
        let answers = log.of(.appendResponse, from: 3, to: 1)
        #expect(answers.map(\.term) == [staleTerm])
        #expect(net.state(1) == .follower)
        #expect(net.term(1) == staleTerm)
        #expect(net.status(1)?.lead == 0)

        net.run(rounds: 60)
        let leader = try #require(net.leader)
        #expect(leader.id != 3)
        #expect(leader.term > staleTerm)
        for id: UInt64 in 1...3 {
            #expect(net.status(id)?.lead == leader.id, "node \(id)")
            #expect(net.appliedData(id) == [[2]], "node \(id)")
        }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// With CheckQuorum or PreVote, a node answers an append or heartbeat of an older term with
    /// its own term, so that a stale leader learns it; with neither, the stale message is dropped.
    @Test func staleLeaderMessagesAreAnsweredWithTheCurrentTerm() throws {
        for (checkQuorum, preVote) in [(false, false), (true, false), (false, true), (true, true)] {
            for type in [MessageType.append, .heartbeat] {
                let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 5, commit: 1)) {
                    $0.checkQuorum = checkQuorum
                    $0.preVote = preVote
                }
                let sent = try n.stepAndRead(Message(type: type, to: 1, from: 2, term: 3, logTerm: 1, index: 1))
                let what = "checkQuorum \(checkQuorum), preVote \(preVote), \(type)"
                if checkQuorum || preVote {
                    #expect(sent == [Message(type: .appendResponse, to: 2, from: 1, term: 5)], "\(what)")
                } else {
                    #expect(sent.isEmpty, "\(what)")
                }
                #expect(n.term == 5 && n.core.lead == 0, "\(what)")
            }
        }
        // And the stale leader steps down on that answer.
        let leader = try TestNode(id: 1, voters: [1, 2, 3]) { $0.checkQuorum = true }
        try leader.becomeLeader()
        _ = try leader.stepAndRead(Message(type: .appendResponse, to: 1, from: 2, term: 5))
        #expect(leader.state == .follower && leader.term == 5 && leader.core.lead == 0)
    }

    /// A leader cut off from the cluster (a minority) is replaced; when it rejoins, it learns the
    /// new term and follows the new leader, and what it appended alone is discarded. With
    /// CheckQuorum it has stepped down already; without, it learns from the new leader's
    /// heartbeats or from the answers to its own.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func stalePartitionedLeaderGetsTheNewTermWhenItRejoins(checkQuorum: Bool, preVote: Bool) throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) {
            $0.checkQuorum = checkQuorum
            $0.preVote = preVote
        }
        try net.elect(1)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        net.isolate(1)
        try net.with(1) { try $0.propose(Array("lost".utf8)) }
        // Node 1's clock runs as long as it leads (so that CheckQuorum can depose it), no longer:
        // a follower alone would campaign and come back with a higher term of its own.
        for _ in 0..<40 {
            if net.state(1) == .leader { net.tick(1) }
            net.tick(2)
            net.tick(3)
            net.deliverAll()
        }
        let newLeader = try #require(net.leaders.first { $0.id != 1 })
        #expect(newLeader.term == 2)
        #expect(net.state(1) == (checkQuorum ? .follower : .leader))
        #expect(net.term(1) == 1)
        try net.with(newLeader.id) { try $0.propose([3]) }
        net.deliverAll()

        net.heal()
        net.run(rounds: 5)
        #expect(net.leader?.id == newLeader.id)
        #expect(net.term(1) == 2)
        #expect(net.status(1)?.lead == newLeader.id)
        #expect(net.log(1) == net.log(newLeader.id))
        for id: UInt64 in 1...3 { #expect(net.appliedData(id) == [[1], [3]], "node \(id)") }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A node that has never seen a term (term 0: bootstrapped from a snapshot with no hard
    /// state) refuses a pre-vote from a candidate whose log is behind its own. A response must
    /// carry a term, so the refusal is made in the request's term instead of crashing the node
    /// (etcd panics here; raft-rs issue #511). Runs in a child process, which must survive.
    @Test func preVoteRefusalAtTermZeroDoesNotCrash() async {
        await #expect(processExitsWith: .success) {
            let storage = MemoryStorage()
            try storage.applySnapshot(
                Snapshot(metadata: SnapshotMetadata(confState: ConfState(voters: [1, 2, 3]), index: 1, term: 1)))
            var config = Config(id: 1, storage: storage)
            config.preVote = true
            let node = try RawNode(config: config)
            // The pre-candidate's log ends at (0, 0), behind the voter's (1, 1).
            try node.step(Message(type: .preVote, to: 1, from: 2, term: 1, logTerm: 0, index: 0))
            let rd = node.ready()
            guard rd.messages.count == 1, rd.messages[0].type == .preVoteResponse, rd.messages[0].reject,
                rd.messages[0].term == 1
            else { fatalError("expected a refusal for term 1, got \(rd.messages)") }
        }
    }
}
