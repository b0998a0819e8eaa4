import Testing
@testable import Raft
import RaftTestKit

/// Linearizable reads without writing to the log: ReadIndex (thesis §6.4) with `.safe`, and
/// leases (§6.4.1) with `.leaseBased`. In the manner of etcd's raft_test.go
/// (TestReadOnlyOptionSafe, TestReadOnlyOptionLease, TestReadOnlyForNewLeader, …): a read comes
/// back as a `ReadState` whose index the application must have applied before serving it.
@Suite struct ReadIndexTests {
    /// Handles `n`'s Readies; returns the messages and the ReadStates they carried.
    private func drain(_ n: TestNode) -> (messages: [Message], reads: [ReadState]) {
        let before = n.readies.count
        let messages = n.readMessages()
        return (messages, n.readies[before...].flatMap(\.readStates))
    }

    /// A leader of term 1 over `voters` whose empty entry (index 2) is committed.
    private func committedLeader(voters: [UInt64], configure: (inout Config) -> Void = { _ in }) throws -> TestNode {
        let n = try TestNode(id: 1, voters: voters, configure: configure)
        try n.becomeLeader()
        for peer in voters.dropFirst().prefix(voters.count / 2) { _ = try n.ack(from: peer, index: 2) }
        #expect(n.core.log.committed == 2)
        return n
    }

    private func heartbeatResponse(from: UInt64, term: UInt64 = 1, context: [UInt8]) -> Message {
        Message(type: .heartbeatResponse, to: 1, from: from, term: term, context: context)
    }

    // MARK: - .safe on the leader

    /// With `.safe` the leader records the commit index when the request arrives and sends a
    /// heartbeat round carrying the request's context; the read is answered only once a quorum
    /// (the leader included) acknowledged that context, at the index of its arrival even if the
    /// commit index moved on since. Answers without the context, with another context or from a
    /// voter that already acknowledged do not count.
    @Test func safeReadIsAnsweredOnceAQuorumAcknowledgesItsHeartbeat() throws {
        let n = try committedLeader(voters: [1, 2, 3, 4, 5])
        let ctx = Array("read-1".utf8)
        n.node.readIndex(ctx)
        let sent = drain(n)
        #expect(sent.reads.isEmpty, "no answer before a quorum confirms the leadership")
        #expect(sent.messages.sorted { $0.to < $1.to } == [2, 3, 4, 5].map {
            // Never tell a follower to commit beyond what it is known to have.
            Message(type: .heartbeat, to: $0, from: 1, term: 1, commit: $0 <= 3 ? 2 : 0, context: ctx)
        })
        #expect(n.core.readOnly.pendingCount == 1)

        // The commit index moves on after the request.
        try n.propose([7])
        n.readMessages()
        _ = try n.ack(from: 2, index: 3)
        _ = try n.ack(from: 3, index: 3)
        #expect(n.core.log.committed == 3)

        for m in [
            heartbeatResponse(from: 4, context: Array("other".utf8)),
            heartbeatResponse(from: 4, context: []),
            heartbeatResponse(from: 4, context: ctx),
            heartbeatResponse(from: 4, context: ctx),
        ] {
            try n.step(m)
            #expect(drain(n).reads.isEmpty, "\(m.from) with \(m.context): only two of five acknowledged")
        }
        try n.step(heartbeatResponse(from: 5, context: ctx))
        #expect(drain(n).reads == [ReadState(index: 2, requestContext: ctx)])
        #expect(n.core.readOnly.pendingCount == 0)
        // A late acknowledgement of an answered read is ignored.
        try n.step(heartbeatResponse(from: 2, context: ctx))
        #expect(drain(n).reads.isEmpty)
    }

    /// Through the network, as etcd's TestReadOnlyOptionSafe: reads on the leader and on each
    /// follower come back on the node that asked, at the leader's commit index at the time. A
    /// follower forwards its request to the leader and gets the index back in a readIndexResponse.
    @Test func safeReadsThroughTheLeaderAndItsFollowers() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        let log = MessageLog()
        net.record(into: log)
        for (round, reader) in [1, 2, 3, 1, 2, 3].enumerated() {
            for i in 0..<round { try net.with(1) { try $0.propose([UInt8(round), UInt8(i)]) } }
            net.deliverAll()
            let commit = net.commit(1)
            let ctx = [0xC0, UInt8(round)]
            let before = net.readStates[UInt64(reader)]?.count ?? 0
            log.removeAll()
            net.with(UInt64(reader)) { $0.readIndex(ctx) }
            net.deliverAll()
            #expect(net.readStates[UInt64(reader)]?.dropFirst(before).map { $0 } == [ReadState(index: commit, requestContext: ctx)],
                    "round \(round), node \(reader)")
            if reader != 1 {
                #expect(log.of(.readIndex, from: UInt64(reader), to: 1).map(\.entries) == [[Entry(data: ctx)]])
                #expect(log.of(.readIndexResponse, from: 1, to: UInt64(reader)).map(\.index) == [commit])
            }
            #expect(log.of(.heartbeat, from: 1).allSatisfy { $0.context == ctx }, "the confirming round carries the context")
        }
        for id: UInt64 in [2, 3] { #expect(net.readStates[id]?.count == 2, "answered only on the asking node") }
        #expect(net.nodes[1]!.core.readOnly.pendingCount == 0)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// If the acknowledgements of the confirming round are lost, the leader's next heartbeats
    /// carry the newest pending context, so the read is answered one heartbeat later.
    @Test func lostAcknowledgementsAreMadeUpByTheNextHeartbeat() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        net.ignore(.heartbeatResponse)
        net.with(1) { $0.readIndex([42]) }
        net.deliverAll()
        #expect(net.readStates[1] == nil)
        net.heal()
        net.tick(1)
        net.deliverAll()
        #expect(net.readStates[1] == [ReadState(index: 2, requestContext: [42])])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A learner's acknowledgements do not count towards the quorum, but a learner reads through
    /// the leader like any follower (etcd's TestReadOnlyWithLearner).
    @Test func learnersReadButDoNotConfirmReads() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3], learners: [4])
        try n.becomeLeader()
        _ = try n.ack(from: 2, index: 2)
        n.readMessages()
        n.node.readIndex([1])
        #expect(drain(n).messages.filter { $0.type == .heartbeat }.map(\.to).sorted() == [2, 3, 4])
        try n.step(heartbeatResponse(from: 4, context: [1]))
        #expect(drain(n).reads.isEmpty, "a learner is no part of the quorum")
        try n.step(heartbeatResponse(from: 3, context: [1]))
        #expect(drain(n).reads == [ReadState(index: 2, requestContext: [1])])

        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        try net.with(1) { try $0.proposeConfChange(ConfChange(type: .addLearnerNode, nodeID: 4)) }
        net.deliverAll()
        try net.add(id: 4, storage: bootstrappedStorage(voters: [1, 2, 3], learners: [4]))
        net.run(rounds: 2)
        #expect(net.status(4)?.lead == 1)
        net.with(4) { $0.readIndex([4]) }
        net.deliverAll()
        #expect(net.readStates[4] == [ReadState(index: 3, requestContext: [4])])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - .leaseBased

    /// With `.leaseBased` (which needs CheckQuorum) the leader trusts its lease and answers at
    /// once, without a heartbeat round; a follower's request is answered by return.
    @Test func leaseBasedReadIsAnsweredAtOnce() throws {
        let n = try committedLeader(voters: [1, 2, 3]) {
            $0.checkQuorum = true
            $0.readOnlyOption = .leaseBased
        }
        n.node.readIndex([1])
        let out = drain(n)
        #expect(out.reads == [ReadState(index: 2, requestContext: [1])])
        #expect(out.messages.isEmpty, "no heartbeat round")
        #expect(n.core.readOnly.pendingCount == 0)
        // A follower's request.
        let answer = try n.stepAndRead(Message(type: .readIndex, to: 1, from: 3, entries: [Entry(data: [2])]))
        #expect(answer == [Message(type: .readIndexResponse, to: 3, from: 1, term: 1, index: 2, entries: [Entry(data: [2])])])

        let net = try SimulatedNetwork(ids: [1, 2, 3]) {
            $0.checkQuorum = true
            $0.readOnlyOption = .leaseBased
        }
        try net.elect(1)
        let log = MessageLog()
        net.record(into: log)
        net.with(2) { $0.readIndex([3]) }
        net.deliverAll()
        #expect(net.readStates[2] == [ReadState(index: 2, requestContext: [3])])
        #expect(log.messages.map(\.type) == [.readIndex, .readIndexResponse])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A lease is only sound while the leader checks that it still has a quorum: `.leaseBased`
    /// without CheckQuorum is refused.
    @Test func leaseBasedWithoutCheckQuorumIsRefused() throws {
        var config = Config(id: 1, storage: try bootstrappedStorage(voters: [1, 2, 3]))
        config.readOnlyOption = .leaseBased
        let error = #expect(throws: RaftError.self) { try RawNode(config: config) }
        guard case .invalidConfig = error else {
            Issue.record("expected invalidConfig, got \(String(describing: error))")
            return
        }
        config.checkQuorum = true
        _ = try RawNode(config: config)
    }

    /// A `.leaseBased` leader serves a read from its lease only while a quorum answered within
    /// the current CheckQuorum window; otherwise it confirms leadership with a heartbeat round.
    /// etcd 3.5 trusts the lease until the leader steps down, which with CheckQuorum happens only
    /// at the second check after a partition (up to two election timeouts), while the followers'
    /// leases end one election timeout after they last heard from it: they elect a new leader
    /// that commits writes and the old one still answers at its old commit index (etcd-io/raft#99).
    /// Here an isolated leader never answers a read below what the new leader committed.
    @Test func leaseReadOnAnIsolatedLeaderIsNeverStale() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) {
            $0.checkQuorum = true
            $0.readOnlyOption = .leaseBased
        }
        try net.elect(1)
        net.isolate(1)
        for round in 0..<40 {
            net.run(rounds: 1)
            guard net.state(1) == .leader, let other = net.leaders.first(where: { $0.id != 1 }) else { continue }
            try net.with(other.id) { try $0.propose([UInt8(round)]) }
            net.deliverAll()
            let committed = net.commit(other.id)
            net.with(1) { $0.readIndex([UInt8(round)]) }
            guard let read = net.readStates[1]?.last, read.requestContext == [UInt8(round)] else { continue }
            #expect(read.index >= committed, "round \(round): node 1 read at \(read.index); node \(other.id) committed \(committed)")
        }
    }

    // MARK: - Leader changes

    /// A leader cut off from the others cannot confirm its leadership: its read is never
    /// answered, however long it waits and whatever happens when the partition heals. Meanwhile
    /// the majority elects a new leader, which serves reads.
    @Test(arguments: [false, true])
    func readOnAnIsolatedLeaderNeverReturns(checkQuorum: Bool) throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.checkQuorum = checkQuorum }
        try net.elect(1)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        net.isolate(1)
        net.with(1) { $0.readIndex(Array("stale".utf8)) }
        net.run(rounds: 50)  // five election timeouts and more
        #expect(net.readStates[1] == nil)
        // With CheckQuorum it stepped down (and campaigns in vain); without, it still leads.
        #expect((net.state(1) == .leader) == !checkQuorum)

        let leader = try #require(net.leaders.first { $0.id != 1 })
        #expect(leader.term > 1)
        let commit = net.commit(leader.id)
        #expect(commit == 4, "its empty entry of its term is committed")
        net.with(leader.id) { $0.readIndex(Array("fresh".utf8)) }
        net.deliverAll()
        #expect(net.readStates[leader.id] == [ReadState(index: commit, requestContext: Array("fresh".utf8))])

        net.heal()
        net.run(rounds: 30)
        let now = try #require(net.leader)
        #expect(now.id != 1, "node 1 lacks the new leader's entries")
        #expect(net.state(1) == .follower && net.status(1)?.lead == now.id)
        #expect(net.readStates[1] == nil, "the old leader's read is never answered")
        #expect(net.nodes[1]!.core.readOnly.pendingCount == 0, "stepping down forgot it")
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A follower sends its reads to whoever it follows now: after a leader change, the new one.
    @Test func readThroughAFollowerAfterALeaderChange() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        net.with(3) { $0.readIndex([1]) }
        net.deliverAll()
        #expect(net.readStates[3] == [ReadState(index: 3, requestContext: [1])])

        try net.elect(2)
        #expect(net.leader?.id == 2 && net.leader?.term == 2)
        try net.with(2) { try $0.propose([2]) }
        net.deliverAll()
        #expect(net.commit(2) == 5)
        let log = MessageLog()
        net.record(into: log)
        for reader: UInt64 in [3, 1] {
            net.with(reader) { $0.readIndex([UInt8(reader), 2]) }
            net.deliverAll()
            #expect(net.readStates[reader]?.last == ReadState(index: 5, requestContext: [UInt8(reader), 2]), "node \(reader)")
            #expect(log.of(.readIndex, from: reader).map(\.to) == [2], "node \(reader)")
        }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A new leader does not know the true commit index until it commits an entry of its own
    /// term (thesis §6.4 step 1): reads that arrive before are queued (its own and forwarded
    /// ones), and answered once its empty entry commits, at the new commit index.
    @Test func newLeaderAnswersNoReadUntilItCommitsInItsTerm() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        #expect(net.commit(2) == 3)

        // Node 2 takes over, but the acknowledgements of its empty entry are held back.
        let log = MessageLog()
        net.record(into: log) { !($0.type == .appendResponse && $0.to == 2) }
        try net.elect(2)
        #expect(net.leader?.id == 2 && net.commit(2) == 3)
        net.with(2) { $0.readIndex([2]) }
        net.with(3) { $0.readIndex([3]) }
        net.run(rounds: 3)
        #expect(net.readStates[2] == nil && net.readStates[3] == nil)
        #expect(net.nodes[2]!.core.pendingReadIndexMessages.count == 2)
        #expect(log.of(.heartbeat).allSatisfy { $0.context.isEmpty }, "no confirming round yet")

        net.filter = nil
        net.run(rounds: 2)
        #expect(net.commit(2) == 4)
        #expect(net.readStates[2] == [ReadState(index: 4, requestContext: [2])])
        #expect(net.readStates[3] == [ReadState(index: 4, requestContext: [3])])
        let core = net.nodes[2]!.core
        #expect(core.pendingReadIndexMessages.isEmpty && core.readOnly.pendingCount == 0)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - Bookkeeping

    /// Two requests with the same context are one read, as in etcd: one ReadState comes back.
    /// Answered reads are forgotten; an acknowledgement of a later context answers every read
    /// queued before it, in order.
    @Test func duplicateContextsAreOneReadAndAnsweredReadsAreForgotten() throws {
        let n = try committedLeader(voters: [1, 2, 3])
        let a = Array("a".utf8), b = Array("b".utf8)
        n.node.readIndex(a)
        n.node.readIndex(a)
        n.node.readIndex(b)
        let sent = drain(n)
        #expect(sent.messages.filter { $0.to == 2 }.map(\.context) == [a, a, b])
        #expect(n.core.readOnly.pendingCount == 2)

        try n.step(heartbeatResponse(from: 2, context: a))
        #expect(drain(n).reads == [ReadState(index: 2, requestContext: a)])
        try n.step(heartbeatResponse(from: 3, context: a))
        try n.step(heartbeatResponse(from: 2, context: a))
        #expect(drain(n).reads.isEmpty, "answered once")
        #expect(n.core.readOnly.pendingCount == 1)
        try n.step(heartbeatResponse(from: 3, context: b))
        #expect(drain(n).reads == [ReadState(index: 2, requestContext: b)])
        #expect(n.core.readOnly.pendingCount == 0)

        // c, d, e queued; an ack of d answers c and d; e waits.
        let c = [UInt8(3)], d = [UInt8(4)], e = [UInt8(5)]
        for ctx in [c, d, e] { n.node.readIndex(ctx) }
        n.readMessages()
        try n.step(heartbeatResponse(from: 2, context: d))
        #expect(drain(n).reads == [ReadState(index: 2, requestContext: c), ReadState(index: 2, requestContext: d)])
        #expect(n.core.readOnly.pendingCount == 1)
        try n.step(heartbeatResponse(from: 3, context: e))
        #expect(drain(n).reads == [ReadState(index: 2, requestContext: e)])
        #expect(n.core.readOnly.pendingCount == 0)
        #expect(n.core.pendingReadIndexMessages.isEmpty)
    }

    /// A single voter is its own quorum: it answers at once, without a heartbeat round.
    @Test func singleVoterAnswersImmediately() throws {
        let n = try TestNode(id: 1, voters: [1])
        try n.node.campaign()
        n.readMessages()
        try n.propose([1])
        n.readMessages()
        n.node.readIndex([9])
        let out = drain(n)
        #expect(out.reads == [ReadState(index: 3, requestContext: [9])])
        #expect(out.messages.isEmpty)
        #expect(n.core.readOnly.pendingCount == 0)
    }

    /// Without a leader there is nobody to ask: the read is dropped, silently (the application
    /// times out and retries). A candidate drops it too.
    @Test func readsWithoutALeaderAreDropped() throws {
        let n = try TestNode(id: 2, voters: [1, 2, 3])
        #expect(n.core.lead == 0)
        n.node.readIndex([1])
        var out = drain(n)
        #expect(out.messages.isEmpty && out.reads.isEmpty)
        // A request forwarded by another follower is dropped as well.
        try n.step(Message(type: .readIndex, to: 2, from: 3, entries: [Entry(data: [3])]))
        #expect(drain(n).messages.isEmpty)

        try n.node.campaign()
        n.readMessages()
        #expect(n.state == .candidate)
        n.node.readIndex([2])
        out = drain(n)
        #expect(out.messages.isEmpty && out.reads.isEmpty)
        #expect(n.core.readOnly.pendingCount == 0 && n.core.pendingReadIndexMessages.isEmpty)
    }

    // MARK: - Linearizability

    /// A read issued after a write was acknowledged returns an index at or beyond the write's,
    /// wherever the write and the read go, across a leader change.
    @Test func readAfterAcknowledgedWriteSeesIt() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        for round in 0..<9 {
            if round == 4 { try net.elect(3) }
            let writer = UInt64(round % 3 + 1), reader = UInt64((round + 1) % 3 + 1)
            try net.with(writer) { try $0.propose([UInt8(round)]) }
            net.deliverAll()
            // Acknowledged: the writer applied it.
            let write = try #require(net.applied[writer]?.last { $0.data == [UInt8(round)] }, "round \(round)")
            net.with(reader) { $0.readIndex([UInt8(round)]) }
            net.deliverAll()
            let read = try #require(net.readStates[reader]?.last, "round \(round)")
            #expect(read.requestContext == [UInt8(round)])
            #expect(read.index >= write.index, "round \(round): read at \(read.index) misses write at \(write.index)")
        }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// The hazard the new-leader rule exists for: leader 1 commits a write and acknowledges it,
    /// but node 2 has not heard of that commit when it takes over. Were it to answer a read with
    /// its own commit index, the read would miss the acknowledged write.
    @Test func newLeaderWithAStaleCommitIndexDoesNotServeStaleReads() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        // Node 2 receives and acknowledges the write, but hears of no commit index past 2.
        net.filter = { m in !(m.from == 1 && m.to == 2 && m.entries.isEmpty && (m.type == .append || m.type == .heartbeat)) }
        try net.with(1) { try $0.propose(Array("w".utf8)) }
        net.deliverAll()
        let write = try #require(net.applied[1]?.last)
        #expect(write.data == Array("w".utf8) && write.index == 3)
        #expect(net.commit(2) == 2 && net.log(2).last?.index == 3)

        // Node 2 is elected; its empty entry's acknowledgements are held back for a while.
        net.filter = { m in !(m.type == .appendResponse && m.to == 2) }
        try net.elect(2)
        #expect(net.leader?.id == 2)
        net.with(2) { $0.readIndex([1]) }
        net.run(rounds: 2)
        #expect(net.readStates[2] == nil, "2 cannot know whether index 3 is committed")
        net.filter = nil
        net.run(rounds: 2)
        let read = try #require(net.readStates[2]?.first)
        #expect(read.index >= write.index)
        #expect(read.index == 4)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }
}

/// The lease rule and read bookkeeping on leadership changes.
@Suite struct LeaseAndStepDownReadTests {
    /// A healthy lease answers at once; once a quorum has been silent for the current
    /// CheckQuorum window the lease is not trusted and the read waits for a heartbeat round.
    @Test func leaseReadFallsBackToAHeartbeatRoundWhenTheQuorumWentQuiet() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) {
            $0.checkQuorum = true
            $0.readOnlyOption = .leaseBased
        }
        try net.elect(1)
        net.with(1) { $0.readIndex([1]) }
        #expect(net.readStates[1]?.last?.requestContext == [1], "answered from the lease, no round trip")

        // Let a CheckQuorum window pass with the followers silent (their answers dropped).
        net.drop(from: 2, to: 1)
        net.drop(from: 3, to: 1)
        for _ in 0..<10 { net.tick(1); net.deliverAll() }
        #expect(net.state(1) == .leader, "still leader: it has not yet seen a whole silent window")
        net.with(1) { $0.readIndex([2]) }
        #expect(net.readStates[1]?.last?.requestContext == [1], "no lease: the read waits for a quorum")
        net.heal()
        net.tick(1)
        net.deliverAll()
        #expect(net.readStates[1]?.last?.requestContext == [2], "answered once a quorum acknowledged")
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Reads a new leader holds until its first commit are dropped if it steps down: they would
    /// otherwise stay in memory and be answered, if ever, only when it leads again.
    @Test func heldReadsAreDroppedOnStepDown() throws {
        // Term 1 already has a committed entry (the snapshot's): lead term 2 so the read is held.
        let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 1, commit: 1))
        _ = try n.becomeLeader()
        n.node.readIndex([9])
        #expect(n.core.pendingReadIndexMessages.count == 1, "held until the leader's entry commits")
        _ = try n.stepAndRead(Message(type: .heartbeat, to: 1, from: 2, term: n.term + 1, commit: 0))
        #expect(n.state == .follower)
        #expect(n.core.pendingReadIndexMessages.isEmpty)
    }
}
