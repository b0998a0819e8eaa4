import Testing
@testable import Raft
import RaftTestKit

/// Leader election as the Raft paper describes it (§5.2) and the election restriction (§5.4.1),
/// in the manner of etcd's raft_paper_test.go: one node driven by hand, or a simulated cluster
/// driven by ticks. Logs start with the bootstrap snapshot at (index 1, term 1).
@Suite struct PaperElectionTests {
    // MARK: - Starting an election (§5.2)

    /// A follower or candidate that hears nothing for an election timeout starts an election:
    /// it increments its term, votes for itself and asks every other server for its vote,
    /// describing its last entry. It does so after exactly its randomized timeout.
    @Test(arguments: [StateType.follower, .candidate])
    func nonLeaderStartsElectionOnTimeout(from start: StateType) throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        if start == .follower {
            n.node.core.becomeFollower(term: 1, lead: 2)
        } else {
            n.node.core.becomeCandidate()
        }
        n.readMessages()
        #expect(n.term == 1)
        let timeout = n.core.randomizedElectionTimeout
        let electionTick = n.core.electionTimeout
        #expect(timeout >= electionTick && timeout < 2 * electionTick)

        var ticks = 0
        while n.term == 1 && ticks < 2 * electionTick {
            n.tick()
            ticks += 1
        }
        #expect(ticks == timeout, "campaigned after \(ticks) ticks, timeout \(timeout)")
        #expect(n.term == 2)
        #expect(n.state == .candidate)
        #expect(n.core.vote == 1)
        #expect(n.core.lead == 0)
        #expect(n.core.tracker.votes == [1: true], "only its own vote; the previous election's are forgotten")
        let sent = n.readMessages().sorted { $0.to < $1.to }
        #expect(sent == [
            Message(type: .vote, to: 2, from: 1, term: 2, logTerm: 1, index: 1),
            Message(type: .vote, to: 3, from: 1, term: 2, logTerm: 1, index: 1),
        ])
        // The new term and the vote for itself are persisted before the requests go out.
        #expect(n.storage.hardState == HardState(term: 2, vote: 1, commit: 1))
        #expect(n.readies.last?.mustSync == true)
    }

    /// The vote request describes the candidate's last entry, whatever its log holds.
    @Test func voteRequestCarriesLastIndexAndTerm() throws {
        let n = try TestNode(
            id: 1, voters: [1, 2, 3], entries: entries(from: 2, terms: [1, 2, 2, 4]),
            hardState: HardState(term: 4, commit: 1))
        try n.node.campaign()
        let sent = n.readMessages()
        #expect(sent.count == 2)
        for m in sent {
            #expect(m.type == .vote && m.term == 5 && m.logTerm == 4 && m.index == 5, "\(m)")
        }
    }

    // MARK: - Winning, losing, waiting (§5.2)

    /// A candidate wins once a majority of the cluster (itself included) votes for it in the
    /// same term, returns to follower once a majority refuses, and otherwise keeps waiting.
    @Test func electionInOneRoundOfVotes() throws {
        let cases: [(size: UInt64, votes: [UInt64: Bool], want: StateType)] = [
            (1, [:], .leader),
            (3, [2: true, 3: true], .leader),
            (3, [2: true], .leader),
            (5, [2: true, 3: true, 4: true, 5: true], .leader),
            (5, [2: true, 3: true, 4: true], .leader),
            (5, [2: true, 3: true], .leader),
            (5, [2: false, 3: true, 4: false, 5: true], .leader),
            // A majority of refusals: back to follower, same term.
            (3, [2: false, 3: false], .follower),
            (5, [2: false, 3: false, 4: false, 5: false], .follower),
            (5, [2: true, 3: false, 4: false, 5: false], .follower),
            // Neither: still a candidate.
            (3, [:], .candidate),
            (3, [2: false], .candidate),
            (5, [2: true], .candidate),
            (5, [2: false, 3: false], .candidate),
            (5, [2: true, 3: false, 4: false], .candidate),
            (5, [:], .candidate),
        ]
        for (i, c) in cases.enumerated() {
            let n = try TestNode(id: 1, voters: Array(1...c.size))
            try n.node.campaign()
            let requests = n.readMessages()
            #expect(requests.count == Int(c.size) - 1, "case \(i)")
            for (from, granted) in c.votes.sorted(by: { $0.key < $1.key }) {
                try n.step(Message(type: .voteResponse, to: 1, from: from, term: 1, reject: !granted))
            }
            let sent = n.readMessages()
            #expect(n.state == c.want, "case \(i): \(c)")
            #expect(n.term == 1, "case \(i)")
            if c.want == .leader {
                #expect(n.core.lead == 1, "case \(i)")
                // A new leader announces itself at once with an append of its empty entry.
                #expect(sent.filter { $0.type == .append }.count == Int(c.size) - 1, "case \(i)")
            } else {
                #expect(n.core.lead == 0, "case \(i)")
                #expect(sent.isEmpty, "case \(i): \(sent)")
            }
        }
    }

    /// Votes of an earlier term, or repeated votes, do not count.
    @Test func staleAndDuplicateVotesDoNotCount() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3, 4, 5], hardState: HardState(term: 3, commit: 1))
        try n.node.campaign()
        n.readMessages()
        #expect(n.term == 4)
        // A grant for term 3 is stale.
        try n.step(Message(type: .voteResponse, to: 1, from: 2, term: 3))
        // Node 3 grants, then tries again: one vote is one vote.
        try n.step(Message(type: .voteResponse, to: 1, from: 3, term: 4))
        try n.step(Message(type: .voteResponse, to: 1, from: 3, term: 4))
        #expect(n.state == .candidate)
        // Node 4 refuses, then changes its mind: the first answer stands.
        try n.step(Message(type: .voteResponse, to: 1, from: 4, term: 4, reject: true))
        try n.step(Message(type: .voteResponse, to: 1, from: 4, term: 4))
        #expect(n.state == .candidate)
        try n.step(Message(type: .voteResponse, to: 1, from: 5, term: 4))
        #expect(n.state == .leader)
    }

    // MARK: - Voting (§5.2, §5.4.1)

    /// Each server votes for at most one candidate in a term, first come first served; asking
    /// again for the same vote is answered the same way.
    @Test func followerVotesAtMostOncePerTerm() throws {
        let cases: [(vote: UInt64, candidate: UInt64, reject: Bool)] = [
            (0, 2, false),
            (0, 3, false),
            (2, 2, false),
            (3, 3, false),
            (2, 3, true),
            (3, 2, true),
        ]
        for (i, c) in cases.enumerated() {
            let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 1, vote: c.vote, commit: 1))
            let sent = try n.stepAndRead(Message(type: .vote, to: 1, from: c.candidate, term: 1, logTerm: 1, index: 1))
            #expect(sent == [Message(type: .voteResponse, to: c.candidate, from: 1, term: 1, reject: c.reject)], "case \(i)")
            #expect(n.core.vote == (c.reject ? c.vote : c.candidate), "case \(i)")
            #expect(n.term == 1 && n.state == .follower, "case \(i)")
        }
    }

    /// Through a whole cluster: two candidates of the same term ask the same voter; it votes
    /// for the one that asked first, refuses the other, and the vote is persisted.
    @Test func votersGrantTheFirstCandidateOfATerm() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3, 4, 5])
        // Nodes 1 and 2 campaign for term 1 at the same time; 1's requests are queued first.
        try net.with(1) { try $0.campaign() }
        try net.with(2) { try $0.campaign() }
        let log = MessageLog()
        net.record(into: log)
        net.deliverAll()
        #expect(net.leader?.id == 1)
        #expect(net.term(1) == 1)
        for voter: UInt64 in [3, 4, 5] {
            #expect(net.status(voter)?.hardState.vote == 1, "node \(voter)")
            #expect(net.storages[voter]?.hardState.vote == 1, "node \(voter) persisted its vote")
            let answersTo2 = log.of(.voteResponse, from: voter, to: 2)
            #expect(answersTo2.count == 1 && answersTo2[0].reject, "node \(voter): \(answersTo2)")
        }
        // Node 2 refused 1 (it voted for itself), then followed 1 once it led.
        #expect(log.of(.voteResponse, from: 2, to: 1).map(\.reject) == [true])
        #expect(net.state(2) == .follower && net.status(2)?.lead == 1)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// The election restriction (§5.4.1): a voter refuses a candidate whose log is less up to
    /// date than its own — an older last term, or the same last term and a shorter log.
    @Test func voterRejectsCandidatesWithLessUpToDateLogs() throws {
        // Voter logs after the snapshot at (1, 1).
        let onlySnapshot: [Entry] = []
        let t1 = entries(from: 2, terms: [1])  // last (2, 1)
        let t2 = entries(from: 2, terms: [2])  // last (2, 2)
        let t22 = entries(from: 2, terms: [2, 2])  // last (3, 2)
        let cases: [(log: [Entry], logTerm: UInt64, index: UInt64, reject: Bool)] = [
            // Same last term: the longer (or equal) log wins.
            (onlySnapshot, 1, 1, false),
            (onlySnapshot, 1, 2, false),
            (t1, 1, 1, true),
            (t1, 1, 2, false),
            (t1, 1, 3, false),
            (t22, 2, 2, true),
            (t22, 2, 3, false),
            (t22, 2, 4, false),
            // The candidate's last term is later: it wins whatever the lengths.
            (onlySnapshot, 2, 2, false),
            (t1, 2, 2, false),
            (t1, 2, 1, false),
            (t22, 3, 2, false),
            // The voter's last term is later: the candidate loses whatever the lengths.
            (t2, 1, 1, true),
            (t2, 1, 2, true),
            (t2, 1, 5, true),
            (t22, 1, 9, true),
        ]
        for (i, c) in cases.enumerated() {
            let n = try TestNode(id: 1, voters: [1, 2, 3], entries: c.log, hardState: HardState(term: 2, commit: 1))
            let sent = try n.stepAndRead(Message(type: .vote, to: 1, from: 2, term: 3, logTerm: c.logTerm, index: c.index))
            #expect(sent.count == 1, "case \(i)")
            #expect(sent.first?.type == .voteResponse, "case \(i)")
            #expect(sent.first?.reject == c.reject, "case \(i): \(c)")
            #expect(sent.first?.term == 3, "case \(i)")
            // The higher term is adopted either way; the vote only when granted.
            #expect(n.term == 3, "case \(i)")
            #expect(n.core.vote == (c.reject ? 0 : 2), "case \(i)")
        }
    }

    /// In a cluster: a node that missed committed entries cannot become leader; the nodes that
    /// have them refuse it and one of them is elected instead.
    @Test func nodeMissingCommittedEntriesCannotWin() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        net.isolate(3)
        for i in 0..<5 { try net.with(1) { try $0.propose([UInt8(i)]) } }
        net.deliverAll()
        #expect(net.commit(1) == 7 && net.commit(2) == 7 && net.commit(3) == 2)
        // Leader 1 crashes; 3 comes back and campaigns first.
        net.remove(id: 1)
        net.heal()
        try net.with(3) { try $0.campaign() }
        net.deliverAll()
        #expect(net.state(3) == .candidate, "node 2 refused the out-of-date candidate; 1 cannot answer")
        #expect(net.leaders.isEmpty)
        #expect(net.term(3) == 2 && net.term(2) == 2)
        #expect(net.status(2)?.hardState.vote == 0)
        try net.with(2) { try $0.campaign() }
        net.deliverAll()
        #expect(net.leader?.id == 2)
        #expect(net.term(2) == 3)
        #expect(net.appliedData(3) == (0..<5).map { [UInt8($0)] }, "the new leader brought 3 up to date")
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - Stepping down (§5.1, §5.2)

    /// A candidate that receives an append (or heartbeat) from a leader whose term is at least
    /// its own recognises that leader and returns to follower; an older leader is ignored.
    @Test func candidateStepsDownForLeaderOfSameOrHigherTerm() throws {
        let cases: [(type: MessageType, term: UInt64, wantState: StateType, wantTerm: UInt64, wantLead: UInt64)] = [
            (.append, 2, .follower, 2, 2),
            (.append, 3, .follower, 3, 2),
            (.heartbeat, 2, .follower, 2, 2),
            (.heartbeat, 4, .follower, 4, 2),
            (.append, 1, .candidate, 2, 0),
            (.heartbeat, 1, .candidate, 2, 0),
        ]
        for (i, c) in cases.enumerated() {
            let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 1, commit: 1))
            try n.node.campaign()
            n.readMessages()
            #expect(n.state == .candidate && n.term == 2)
            let sent = try n.stepAndRead(Message(type: c.type, to: 1, from: 2, term: c.term, logTerm: 1, index: 1, commit: 1))
            #expect(n.state == c.wantState, "case \(i)")
            #expect(n.term == c.wantTerm, "case \(i)")
            #expect(n.core.lead == c.wantLead, "case \(i)")
            if c.wantState == .follower {
                let response: MessageType = c.type == .append ? .appendResponse : .heartbeatResponse
                #expect(sent.map(\.type) == [response], "case \(i)")
                #expect(sent.first?.term == c.term, "case \(i)")
                #expect(sent.first?.reject == false, "case \(i)")
            } else {
                #expect(sent.isEmpty, "case \(i): \(sent)")
            }
        }
    }

    /// A message of a higher term makes any node a follower of that term (§5.1). Appends and
    /// heartbeats name the new leader; anything else leaves the leader unknown.
    @Test func higherTermMessageMakesAnyNodeAFollower() throws {
        let types: [MessageType] = [.append, .heartbeat, .vote, .appendResponse, .heartbeatResponse, .voteResponse]
        for start in [StateType.follower, .candidate, .leader, .preCandidate] {
            for type in types {
                let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 1, commit: 1)) {
                    $0.preVote = start == .preCandidate
                }
                switch start {
                case .follower: break
                case .candidate, .preCandidate: try n.node.campaign()
                case .leader: try n.becomeLeader()
                }
                n.readMessages()
                #expect(n.state == start)
                let sent = try n.stepAndRead(
                    Message(type: type, to: 1, from: 2, term: 9, logTerm: 9, index: 9, reject: type == .voteResponse))
                let what = "\(start) receiving \(type)"
                #expect(n.state == .follower, "\(what)")
                #expect(n.term == 9, "\(what)")
                let namesLeader = type == .append || type == .heartbeat
                #expect(n.core.lead == (namesLeader ? 2 : 0), "\(what)")
                // Only the vote request gets a vote: the candidate's log (9, 9) is up to date.
                #expect(n.core.vote == (type == .vote ? 2 : 0), "\(what)")
                #expect(n.storage.hardState.term == 9, "\(what): the new term is persisted")
                if type == .vote {
                    #expect(sent.contains(Message(type: .voteResponse, to: 2, from: 1, term: 9)), "\(what)")
                }
            }
        }
    }

    /// Messages of an older term are dropped (§5.1): no state changes and no answer — except a
    /// pre-vote, which is refused with the current term so that the pre-candidate learns it.
    @Test func staleTermMessagesAreIgnored() throws {
        let stale: [Message] = [
            Message(type: .append, to: 1, from: 3, term: 2, logTerm: 1, index: 1, entries: [Entry(term: 2, index: 2)], commit: 2),
            Message(type: .heartbeat, to: 1, from: 3, term: 2, commit: 2),
            Message(type: .snapshot, to: 1, from: 3, term: 2,
                    snapshot: snap(5, 2, confState: ConfState(voters: [1, 2, 3]))),
            Message(type: .vote, to: 1, from: 3, term: 2, logTerm: 9, index: 9),
            Message(type: .appendResponse, to: 1, from: 3, term: 2, index: 1),
            Message(type: .voteResponse, to: 1, from: 3, term: 2),
            Message(type: .timeoutNow, to: 1, from: 3, term: 2),
        ]
        for m in stale {
            let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 3, commit: 1))
            _ = try n.stepAndRead(Message(type: .heartbeat, to: 1, from: 2, term: 3, commit: 1))
            n.tick(3)
            let before = n.node.status
            let sent = try n.stepAndRead(m)
            #expect(sent.isEmpty, "\(m.type): \(sent)")
            #expect(n.node.status == before, "\(m.type)")
            #expect(n.core.log.lastIndex == 1, "\(m.type)")
            #expect(n.core.electionElapsed == 3, "\(m.type): a stale leader does not reset the election timer")
        }
        // A stale pre-vote is refused, carrying the current term.
        let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 3, commit: 1))
        let sent = try n.stepAndRead(Message(type: .preVote, to: 1, from: 3, term: 2, logTerm: 9, index: 9))
        #expect(sent == [Message(type: .preVoteResponse, to: 3, from: 1, term: 3, reject: true)])
        #expect(n.term == 3 && n.core.vote == 0)
    }

    /// A leader ignores messages of older terms too: a stale vote, a stale append response.
    @Test func leaderIgnoresStaleTermMessages() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 3, commit: 1))
        try n.becomeLeader()
        #expect(n.term == 4)
        let progress = n.node.status.progress
        let sent = try n.stepAndRead(Message(type: .vote, to: 1, from: 2, term: 3, logTerm: 9, index: 9))
            + n.stepAndRead(Message(type: .appendResponse, to: 1, from: 2, term: 3, index: 2))
        #expect(sent.isEmpty)
        #expect(n.state == .leader && n.term == 4)
        #expect(n.node.status.progress == progress)
        #expect(n.core.log.committed == 1)
    }

    // MARK: - Split votes and randomized timeouts (§5.2)

    /// Two candidates split the votes of a four-node cluster: neither wins, and after a timeout
    /// a new election with a higher term elects a single leader. Driven by ticks only.
    @Test func splitVoteLeadsToNewElectionWithHigherTerm() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3, 4])
        // 3 only hears 1, 4 only hears 2.
        net.cut(1, 4)
        net.cut(2, 3)
        try net.with(1) { try $0.campaign() }
        try net.with(2) { try $0.campaign() }
        net.deliverAll()
        #expect(net.leaders.isEmpty)
        #expect(net.state(1) == .candidate && net.state(2) == .candidate)
        for id: UInt64 in 1...4 { #expect(net.term(id) == 1, "node \(id)") }
        #expect(net.status(3)?.hardState.vote == 1)
        #expect(net.status(4)?.hardState.vote == 2)

        net.heal()
        var rounds = 0
        while net.leaders.isEmpty && rounds < 40 {
            net.run(rounds: 1)
            rounds += 1
        }
        let leader = try #require(net.leader)
        #expect(leader.term >= 2)
        #expect(rounds >= 1 && rounds < 20, "a new election within two election timeouts (\(rounds) ticks)")
        for id: UInt64 in 1...4 {
            #expect(net.term(id) == leader.term, "node \(id)")
            #expect(net.status(id)?.lead == leader.id, "node \(id)")
        }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Every randomized election timeout lies in [electionTick, 2 × electionTick), and over many
    /// resets every value of that range comes up.
    @Test(arguments: [2, 10, 25])
    func randomizedElectionTimeoutCoversTheRange(electionTick: Int) throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3]) { $0.electionTick = electionTick }
        var core = n.core
        var seen = Set<Int>()
        for _ in 0..<2000 {
            core.resetRandomizedElectionTimeout()
            let t = core.randomizedElectionTimeout
            #expect(t >= electionTick && t < 2 * electionTick, "\(t)")
            seen.insert(t)
        }
        #expect(seen == Set(electionTick..<(2 * electionTick)))
        // Becoming follower or candidate re-draws it too.
        var drawn = Set<Int>()
        for i in 0..<200 {
            if i % 2 == 0 { core.becomeFollower(term: core.term + 1, lead: 0) } else { core.becomeCandidate() }
            drawn.insert(core.randomizedElectionTimeout)
        }
        #expect(drawn.count > 1)
    }

    /// Different nodes draw different timeouts: their sequences differ, and two followers rarely
    /// share the earliest timeout (etcd's TestFollowersElectionTimeoutNonconflict).
    @Test func differentNodesGetDifferentTimeouts() throws {
        let ids: [UInt64] = [1, 2, 3, 4, 5]
        var cores = try ids.map { id in try TestNode(id: id, voters: ids).core }
        let rounds = 1000
        var sequences = Array(repeating: [Int](), count: ids.count)
        var conflicts = 0
        for _ in 0..<rounds {
            for i in cores.indices {
                cores[i].resetRandomizedElectionTimeout()
                sequences[i].append(cores[i].randomizedElectionTimeout)
            }
            let timeouts = cores.map(\.randomizedElectionTimeout)
            let earliest = timeouts.min()!
            if timeouts.filter({ $0 == earliest }).count > 1 { conflicts += 1 }
        }
        for i in sequences.indices {
            for j in sequences.indices where j > i {
                #expect(sequences[i] != sequences[j], "nodes \(ids[i]) and \(ids[j]) draw the same timeouts")
                let same = zip(sequences[i], sequences[j]).filter { $0 == $1 }.count
                #expect(Double(same) / Double(rounds) < 0.2, "nodes \(ids[i]) and \(ids[j]) agree \(same) times")
            }
        }
        #expect(Double(conflicts) / Double(rounds) < 0.4, "\(conflicts) conflicts in \(rounds) rounds")
        // The same configuration and seed draw the same sequence: the core is deterministic.
        var again = try TestNode(id: 1, voters: ids).core
        var replay: [Int] = []
        for _ in 0..<rounds {
            again.resetRandomizedElectionTimeout()
            replay.append(again.randomizedElectionTimeout)
        }
        #expect(replay == sequences[0])
    }

    /// A whole cluster left to its timers elects exactly one leader, and keeps it while the
    /// leader's heartbeats arrive.
    @Test(arguments: [UInt64(1), 7, 42])
    func clusterElectsOneLeaderByTicksAndKeepsIt(seed: UInt64) throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3, 4, 5], seed: seed) { $0.randomSeed = seed }
        var rounds = 0
        while net.leaders.isEmpty && rounds < 100 {
            net.run(rounds: 1)
            rounds += 1
        }
        let leader = try #require(net.leader)
        net.run(rounds: 100)
        #expect(net.leader?.id == leader.id)
        #expect(net.leader?.term == leader.term)
        for id: UInt64 in 1...5 { #expect(net.status(id)?.lead == leader.id) }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }
}
