import Testing
@testable import Raft
import RaftTestKit

/// Proposals and what may refuse them (forwarding, no leader, the uncommitted-size limit), the
/// checks `RawNode.step` makes, bootstrapping, and single-node membership changes.
@Suite struct ProposalTests {
    // MARK: - Forwarding and refusals

    /// A follower forwards a proposal to its leader, as a proposal without a term; the leader
    /// appends it at its term and the cluster commits it.
    @Test func followerForwardsProposalsToTheLeader() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        try net.with(2) { try $0.propose([7]) }
        #expect(net.queue == [Message(type: .proposal, to: 1, from: 2, entries: [Entry(data: [7])])])
        net.deliverAll()
        for id: UInt64 in 1...3 {
            #expect(net.appliedData(id) == [[7]], "node \(id)")
            #expect(net.log(id).last == dataEntry(3, 1, [7]), "node \(id)")
        }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// With forwarding disabled a follower refuses proposals (`proposalDropped`) and sends
    /// nothing; the leader still takes its own.
    @Test func disabledForwardingDropsProposalsOnFollowers() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.disableProposalForwarding = true }
        try net.elect(1)
        #expect(throws: RaftError.proposalDropped) { try net.with(2) { try $0.propose([7]) } }
        #expect(net.queue.isEmpty)
        try net.with(1) { try $0.propose([8]) }
        net.deliverAll()
        for id: UInt64 in 1...3 { #expect(net.appliedData(id) == [[8]], "node \(id)") }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Without a known leader a proposal is refused: on a fresh follower, a candidate, a
    /// pre-candidate, and a follower whose leader stepped down.
    @Test func proposalsWithoutALeaderAreDropped() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        #expect(throws: RaftError.proposalDropped) { try net.with(1) { try $0.propose([1]) } }

        net.isolate(1)
        try net.with(1) { try $0.campaign() }
        #expect(net.state(1) == .candidate)
        #expect(throws: RaftError.proposalDropped) { try net.with(1) { try $0.propose([1]) } }

        let pre = try TestNode(id: 1, voters: [1, 2, 3]) { $0.preVote = true }
        try pre.node.campaign()
        #expect(pre.state == .preCandidate)
        #expect(throws: RaftError.proposalDropped) { try pre.propose([1]) }

        // A follower that learned of a higher term from a vote request knows no leader.
        let follower = try TestNode(id: 1, voters: [1, 2, 3])
        _ = try follower.stepAndRead(Message(type: .heartbeat, to: 1, from: 2, term: 1))
        try follower.propose([1])
        #expect(follower.readMessages().map(\.type) == [.proposal])
        _ = try follower.stepAndRead(Message(type: .vote, to: 1, from: 3, term: 2, logTerm: 1, index: 1))
        #expect(follower.core.lead == 0)
        #expect(throws: RaftError.proposalDropped) { try follower.propose([1]) }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A leader transferring its leadership refuses proposals until the transfer ends.
    @Test func leaderRefusesProposalsDuringATransfer() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        net.isolate(2)
        net.with(1) { $0.transferLeader(to: 2) }
        #expect(net.status(1)?.leadTransferee == 2)
        #expect(throws: RaftError.proposalDropped) { try net.with(1) { try $0.propose([1]) } }
        // The transfer is abandoned after an election timeout: proposals are welcome again.
        for _ in 0..<20 { net.tick(1) }
        net.deliverAll()
        #expect(net.status(1)?.leadTransferee == 0)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        #expect(net.appliedData(3) == [[1]])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - The uncommitted tail (maxUncommittedEntriesSize)

    /// The leader refuses proposals that would take its uncommitted tail beyond the limit
    /// (payload bytes); once entries commit and are applied, it accepts again. Its empty entry
    /// counts for nothing.
    @Test func leaderLimitsTheUncommittedTail() throws {
        let data = Array("testdata".utf8)
        let limit: UInt64 = 1024
        let n = try TestNode(id: 1, voters: [1, 2, 3]) { $0.maxUncommittedEntriesSize = limit }
        try n.becomeLeader()
        #expect(n.core.uncommittedSize == 0, "the leader's empty entry is free")
        let fit = Int(limit) / data.count
        for _ in 0..<fit { try n.propose(data) }
        #expect(n.core.uncommittedSize == limit)
        #expect(throws: RaftError.proposalDropped) { try n.propose(data) }
        #expect(throws: RaftError.proposalDropped) { try n.node.propose(batch: [[1], [2]]) }
        #expect(n.core.log.lastIndex == UInt64(2 + fit))
        // An entry without payload adds nothing, so it always fits.
        try n.propose([])
        n.readMessages()

        // Node 2 acknowledges everything: it commits, the application applies, the tail empties.
        _ = try n.ack(from: 2, index: n.core.log.lastIndex)
        #expect(n.core.log.committed == n.core.log.lastIndex)
        #expect(n.takeCommitted().filter { !$0.data.isEmpty }.count == fit)
        #expect(n.core.uncommittedSize == 0)
        for _ in 0..<fit { try n.propose(data) }
        #expect(throws: RaftError.proposalDropped) { try n.propose(data) }
    }

    /// A proposal larger than the limit is accepted into an empty tail (or it could never be
    /// proposed), and then nothing else is until it commits.
    @Test func oversizedProposalIsAcceptedIntoAnEmptyTail() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3]) { $0.maxUncommittedEntriesSize = 100 }
        try n.becomeLeader()
        try n.propose(Array(repeating: 1, count: 500))
        #expect(n.core.uncommittedSize == 500)
        #expect(throws: RaftError.proposalDropped) { try n.propose([1]) }
        n.readMessages()
        _ = try n.ack(from: 3, index: n.core.log.lastIndex)
        _ = n.takeCommitted()
        #expect(n.core.uncommittedSize == 0)
        // A batch over the limit, into the empty tail: accepted whole.
        try n.node.propose(batch: [Array(repeating: 2, count: 60), Array(repeating: 3, count: 60)])
        #expect(n.core.uncommittedSize == 120)
        #expect(throws: RaftError.proposalDropped) { try n.propose([1]) }
    }

    /// Through a cluster: a leader cut off from its followers fills its tail and refuses more;
    /// when the partition heals the entries commit and it accepts proposals again. Followers
    /// forward without checking: the leader decides.
    @Test func uncommittedLimitRecoversOnceEntriesCommit() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.maxUncommittedEntriesSize = 64 }
        try net.elect(1)
        net.isolate(1)
        var accepted = 0
        while (try? net.with(1, { try $0.propose(Array(repeating: 9, count: 16)) })) != nil { accepted += 1 }
        #expect(accepted == 4)
        net.heal()
        net.tick(1)
        net.deliverAll()
        #expect(net.commit(1) == 6)
        for id: UInt64 in 1...3 { #expect(net.appliedData(id).count == 4, "node \(id)") }
        try net.with(2) { try $0.propose(Array(repeating: 8, count: 16)) }
        net.deliverAll()
        #expect(net.appliedData(3).count == 5)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - RawNode.step

    /// `step` is for messages from peers: local message types are refused, and so are responses
    /// from nodes outside the configuration. Other messages from strangers are handled.
    @Test func stepRefusesLocalMessagesAndStrangersResponses() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        try n.becomeLeader()
        for type in MessageType.allCases {
            let fromPeer = Message(type: type, to: 1, from: 2, term: 1)
            let fromStranger = Message(type: type, to: 1, from: 9, term: 1)
            switch type {
            case .hup, .beat, .unreachable, .snapshotStatus, .checkQuorum:
                #expect(throws: RaftError.stepLocalMessage, "\(type)") { try n.step(fromPeer) }
                #expect(throws: RaftError.stepLocalMessage, "\(type)") { try n.step(fromStranger) }
            case .appendResponse, .voteResponse, .heartbeatResponse, .readIndexResponse, .preVoteResponse:
                #expect(throws: RaftError.stepPeerNotFound, "\(type)") { try n.step(fromStranger) }
            default:
                break
            }
        }
        // Nothing of that reached the state machine.
        #expect(n.state == .leader && n.term == 1)
        #expect(n.readMessages().isEmpty)
        // A stranger's vote request of a higher term is not a response: it is handled.
        try n.step(Message(type: .vote, to: 1, from: 9, term: 2, logTerm: 9, index: 9))
        #expect(n.state == .follower && n.term == 2)
    }

    /// A message from a peer must carry a term: only proposals and read requests forwarded to a
    /// leader go without one. Were an append without a term stepped in, it would be taken for a
    /// local message, skip the term checks and roll the node's term back to 0, clearing its vote
    /// (a second vote in the same term). `RawNode.step` refuses it with `invalidMessage`.
    @Test func stepRefusesPeerMessagesWithoutATerm() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 4, commit: 1))
        try n.node.campaign()
        n.readMessages()
        #expect(n.state == .candidate && n.term == 5 && n.core.vote == 1)
        #expect(throws: (any Error).self) {
            try n.step(Message(type: .append, to: 1, from: 2, logTerm: 1, index: 1))
        }
        n.readMessages()
        #expect(n.term == 5, "the term never goes back")
        #expect(n.storage.hardState.term == 5)
        let sent = try n.stepAndRead(Message(type: .vote, to: 1, from: 3, term: 5, logTerm: 1, index: 1))
        #expect(sent.first?.reject == true, "voted for itself in term 5 already")
    }

    // MARK: - Bootstrap

    /// `bootstrap` on empty storage writes the members as conf change entries of term 1, already
    /// committed: the first Ready carries them to persist and apply, with the hard state.
    @Test func bootstrapCommitsTheMembersInTheFirstReady() throws {
        let storage = MemoryStorage()
        let node = try RawNode(config: Config(id: 1, storage: storage))
        #expect(!node.hasReady)
        try node.bootstrap([Peer(id: 1), Peer(id: 2, context: [2]), Peer(id: 3)])
        #expect(node.hasReady)
        let rd = node.ready()
        let want = [(UInt64(1), [UInt8]()), (2, [2]), (3, [])].enumerated().map { i, peer in
            Entry(term: 1, index: UInt64(i + 1), type: .confChange,
                  data: ConfChange(type: .addNode, nodeID: peer.0, context: peer.1).serializedBytes())
        }
        #expect(rd.entries == want)
        #expect(rd.committedEntries == want)
        #expect(rd.hardState == HardState(term: 1, vote: 0, commit: 3))
        #expect(rd.mustSync)
        #expect(rd.messages.isEmpty)
        #expect(node.status.config.voters.sorted() == [1, 2, 3])

        try storage.setHardState(rd.hardState!)
        try storage.append(rd.entries)
        for e in rd.committedEntries { node.applyConfChange(try ConfChange(serializedBytes: e.data)) }
        node.advance(rd)
        #expect(!node.hasReady)
        #expect(node.status.applied == 3)
        try node.campaign()
        #expect(node.status.raftState == .candidate && node.status.hardState.term == 2)
        let votes = node.ready().messages
        #expect(votes.map(\.to).sorted() == [2, 3])
        #expect(votes.allSatisfy { $0.type == .vote && $0.logTerm == 1 && $0.index == 3 })
    }

    /// A single bootstrapped node campaigns, leads and commits at once.
    @Test func bootstrappedSingleNodeLeadsAndCommits() throws {
        let n = try bootstrapped(id: 1, peers: [1])
        try n.node.campaign()
        #expect(n.state == .leader && n.term == 2)
        try n.propose([42])
        let committed = n.takeCommitted()
        #expect(committed.map(\.index) == [2, 3])
        #expect(committed.last?.data == [42])
    }

    /// Bootstrapping storage that holds anything (a snapshot, entries) is refused, as is an
    /// empty member list.
    @Test func bootstrapRefusesNonEmptyStorage() throws {
        let withSnapshot = try bootstrappedStorage(voters: [1, 2, 3])
        let node = try RawNode(config: Config(id: 1, storage: withSnapshot))
        #expect(throws: RaftError.alreadyBootstrapped) { try node.bootstrap([Peer(id: 1)]) }

        let n = try bootstrapped(id: 1, peers: [1, 2])
        let again = try RawNode(config: Config(id: 1, storage: n.storage))
        #expect(throws: RaftError.alreadyBootstrapped) { try again.bootstrap([Peer(id: 1), Peer(id: 2)]) }

        let empty = try RawNode(config: Config(id: 1, storage: MemoryStorage()))
        #expect(throws: (any Error).self) { try empty.bootstrap([]) }
    }

    // MARK: - Single-node membership changes

    /// addNode: a fourth node joins with an empty log. Probing finds it has nothing, and the
    /// leader's log starts after the bootstrap snapshot, so the leader sends that snapshot. But
    /// its configuration predates node 4, and node 4 refuses it (as etcd does: restoring it would
    /// leave node 4 outside its own configuration); the transport reports each send finished, the
    /// leader probes again and resends the only snapshot it has. Once the application has taken a
    /// snapshot with the current configuration, node 4 catches up: snapshot, then appends.
    @Test func addedNodeWithEmptyStorageCatchesUpFromASnapshotThatIncludesIt() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        try net.with(1) { try $0.propose([1]) }
        try net.with(1) { try $0.proposeConfChange(ConfChange(type: .addNode, nodeID: 4)) }
        net.deliverAll()
        for id: UInt64 in 1...3 { #expect(net.status(id)?.config.voters.sorted() == [1, 2, 3, 4], "node \(id)") }
        let log = MessageLog()
        net.record(into: log)
        try net.add(id: 4, storage: MemoryStorage())
        try net.with(1) { try $0.propose([2]) }
        net.deliverAll()
        net.run(rounds: 5)
        let snapshots = log.of(.snapshot, to: 4)
        #expect(!snapshots.isEmpty)
        #expect(snapshots.allSatisfy { $0.snapshot?.metadata.index == 1 }, "only the bootstrap snapshot exists")
        #expect(net.log(4).isEmpty && net.commit(4) == 0)
        #expect(net.status(4)?.config.voters.isEmpty == true)
        #expect(net.status(1)?.progress[4]?.match == 0)

        let applied = try #require(net.status(1)?.applied)
        let image = try net.storages[1]!.createSnapshot(applied, confState: net.status(1)!.config, data: [])
        net.run(rounds: 2)
        #expect(log.of(.snapshot, to: 4).last?.snapshot == image)
        try net.with(1) { try $0.propose([3]) }
        net.deliverAll()
        #expect(net.log(4) == net.log(1).filter { $0.index > applied })
        #expect(net.commit(4) == net.commit(1))
        #expect(net.status(4)?.config.voters.sorted() == [1, 2, 3, 4])
        #expect(net.status(1)?.progress[4]?.state == .replicate)
        #expect(net.appliedData(4) == [[3]], "everything before came in the snapshot")
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// addNode of a node that starts from the cluster's bootstrap snapshot (index 1) catches up
    /// through appends alone: the leader's log holds every entry after it. It then counts in the
    /// quorum: with two of four nodes down, nothing commits.
    @Test func addedNodeWithTheBootstrapSnapshotCatchesUpThroughAppends() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        try net.with(1) { try $0.propose([1]) }
        try net.with(1) { try $0.proposeConfChange(ConfChange(type: .addNode, nodeID: 4)) }
        net.deliverAll()
        let log = MessageLog()
        net.record(into: log)
        try net.add(id: 4, storage: bootstrappedStorage(voters: [1, 2, 3]))
        try net.with(1) { try $0.propose([2]) }
        net.deliverAll()
        // The leader probed 4 when it was added, before it existed: the next heartbeat answer
        // lets it probe again.
        net.tick(1)
        net.deliverAll()
        #expect(log.of(.snapshot).isEmpty)
        #expect(net.log(4) == net.log(1))
        #expect(net.appliedData(4) == [[1], [2]])
        #expect(net.status(4)?.config.voters.sorted() == [1, 2, 3, 4])

        net.remove(id: 2)
        net.remove(id: 3)
        let commit = net.commit(1)
        try net.with(1) { try $0.propose([3]) }
        net.deliverAll()
        #expect(net.commit(1) == commit, "two of four is no quorum")
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// removeNode: the quorum shrinks when the change is applied, and entries waiting for the
    /// removed node's acknowledgement commit (etcd's TestCommitAfterRemoveNode).
    @Test func removingANodeShrinksTheQuorum() throws {
        let n = try TestNode(id: 1, voters: [1, 2])
        try n.becomeLeader()
        // A new leader takes membership changes once an entry of its term is committed and applied.
        _ = try n.ack(from: 2, index: n.core.log.lastIndex)
        #expect(n.takeCommitted().map(\.index) == [2])
        let cc = ConfChange(type: .removeNode, nodeID: 2)
        try n.node.proposeConfChange(cc)
        #expect(n.takeCommitted().isEmpty)
        let ccIndex = n.core.log.lastIndex
        try n.propose(Array("hello".utf8))

        // Node 2 acknowledges the change (not the proposal after it).
        _ = try n.ack(from: 2, index: ccIndex)
        let committed = n.takeCommitted()
        #expect(committed.map(\.index) == [3])
        #expect(committed.last?.type == .confChange)
        #expect(n.core.log.committed == 3)

        // Applying it leaves node 1 alone, a quorum of one: "hello" commits.
        let cs = n.node.applyConfChange(cc)
        #expect(cs.voters == [1])
        let next = n.takeCommitted()
        #expect(next.map(\.data) == [Array("hello".utf8)])
        #expect(n.core.log.committed == 4)
        #expect(n.node.status.progress.keys.sorted() == [1])
    }

    /// removeNode in a cluster: once node 3 is removed, nodes 1 and 2 form the whole cluster and
    /// keep committing with 3 gone; 3 learns nothing more.
    @Test func removedNodeIsLeftOut() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        try net.with(1) { try $0.proposeConfChange(ConfChange(type: .removeNode, nodeID: 3)) }
        net.deliverAll()
        #expect(net.status(1)?.config.voters.sorted() == [1, 2])
        #expect(net.status(1)?.progress.keys.sorted() == [1, 2])
        let commit3 = net.commit(3)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        #expect(net.appliedData(2) == [[1]])
        #expect(net.commit(3) == commit3)
        // A quorum of the two remaining nodes is both of them.
        net.isolate(2)
        try net.with(1) { try $0.propose([2]) }
        net.deliverAll()
        #expect(net.appliedData(1) == [[1]])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A leader that removes itself stops taking proposals once the change is applied. With
    /// stepDownOnRemoval it steps down at once (into the next term); without (etcd 3.5's way) it
    /// leads on until it is shut down. Either way the remaining two elect a leader among
    /// themselves and go on committing.
    @Test(arguments: [false, true])
    func leaderRemovingItself(stepDownOnRemoval: Bool) throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.stepDownOnRemoval = stepDownOnRemoval }
        try net.elect(1)
        try net.with(1) { try $0.proposeConfChange(ConfChange(type: .removeNode, nodeID: 1)) }
        net.deliverAll()
        for id: UInt64 in 1...3 { #expect(net.status(id)?.config.voters.sorted() == [2, 3], "node \(id)") }
        #expect(throws: RaftError.proposalDropped) { try net.with(1) { try $0.propose([1]) } }
        if stepDownOnRemoval {
            #expect(net.state(1) == .follower && net.term(1) == 2)
        } else {
            #expect(net.state(1) == .leader && net.term(1) == 1)
            net.run(rounds: 30)
            #expect(net.state(1) == .leader, "its heartbeats keep 2 and 3 following it")
            #expect(net.status(2)?.lead == 1)
        }
        net.remove(id: 1)
        net.run(rounds: 40)
        let leader = try #require(net.leader)
        #expect(leader.id != 1 && leader.term >= 2)
        try net.with(leader.id) { try $0.propose([2]) }
        net.deliverAll()
        #expect(net.appliedData(2) == [[2]] && net.appliedData(3) == [[2]])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A node cut off before it learned of its own removal keeps campaigning with ever higher
    /// terms. With CheckQuorum the remaining members, hearing from their leader, ignore it
    /// (thesis §4.2.3), and the leader is never sent to it: no disruption.
    @Test func removedNodeCannotDisruptWithCheckQuorum() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.checkQuorum = true }
        try net.elect(1)
        net.isolate(3)
        try net.with(1) { try $0.proposeConfChange(ConfChange(type: .removeNode, nodeID: 3)) }
        net.deliverAll()
        #expect(net.status(1)?.config.voters.sorted() == [1, 2])
        #expect(net.status(3)?.config.voters.sorted() == [1, 2, 3], "3 never heard")
        net.heal()
        net.run(rounds: 100)
        #expect(net.term(3) > 1, "3 campaigns on its own")
        #expect(net.leader?.id == 1, "the members do not even notice: \(net.leaders)")
        #expect(net.term(1) == 1 && net.term(2) == 1)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        #expect(net.appliedData(2) == [[1]])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// updateNode changes nothing in the configuration: it commits and applies like any entry.
    @Test func updateNodeIsANoOp() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        let before = try #require(net.status(1)?.progress)
        try net.with(1) { try $0.proposeConfChange(ConfChange(type: .updateNode, nodeID: 2, context: [1])) }
        net.deliverAll()
        for id: UInt64 in 1...3 {
            #expect(net.applied[id]?.last?.type == .confChange, "node \(id)")
            #expect(net.status(id)?.config == ConfState(voters: [1, 2, 3]), "node \(id)")
        }
        #expect(net.status(1)?.progress.keys.sorted() == before.keys.sorted())
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        for id: UInt64 in 1...3 { #expect(net.appliedData(id) == [[1]], "node \(id)") }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Only one configuration change may be pending: a second one proposed before the first is
    /// applied goes into the log as an empty normal entry (so indices still line up). Once the
    /// first is applied, the next is accepted.
    @Test func secondConfChangeWhileOneIsPendingBecomesAnEmptyEntry() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        try n.becomeLeader()
        _ = try n.ack(from: 2, index: 2)
        _ = n.takeCommitted()
        try n.node.proposeConfChange(ConfChange(type: .addNode, nodeID: 4))
        try n.node.proposeConfChange(ConfChange(type: .addNode, nodeID: 5))
        try n.node.proposeConfChange(ConfChangeV2(changes: [ConfChangeSingle(type: .addLearnerNode, nodeID: 6)]))
        let log = n.core.log.allEntries()
        #expect(log.map(\.type) == [.normal, .confChange, .normal, .normal])
        #expect(log[2] == Entry(term: 1, index: 4) && log[3] == Entry(term: 1, index: 5))
        #expect(n.core.pendingConfIndex == 3)

        n.readMessages()
        _ = try n.ack(from: 2, index: 5)
        let committed = n.takeCommitted()
        #expect(committed.map(\.index) == [3, 4, 5])
        // Applied (the application reported it through advance): the next change is accepted.
        #expect(n.node.status.applied == 5)
        try n.node.proposeConfChange(ConfChange(type: .addNode, nodeID: 5))
        #expect(n.core.log.allEntries().last?.type == .confChange)
    }
}

/// A node bootstrapped with `peers` on empty storage, its first Ready handled (conf changes
/// applied), as an application would.
private func bootstrapped(id: UInt64, peers: [UInt64]) throws -> TestNode {
    let n = try TestNode(id: id, storage: MemoryStorage())
    try n.node.bootstrap(peers.map { Peer(id: $0) })
    for e in n.takeCommitted() where e.type == .confChange {
        n.node.applyConfChange(try ConfChange(serializedBytes: e.data))
    }
    return n
}
