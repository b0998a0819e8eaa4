import Testing
@testable import Raft
import RaftTestKit

/// Snapshots (thesis §5): a leader whose log was compacted sends a follower that needs the
/// compacted entries its latest snapshot instead, pauses replication to it until the snapshot
/// is reported applied or failed, and the follower replaces its log and configuration with the
/// snapshot. In the manner of etcd's raft_snap_test.go and the TestRestore*/TestProvideSnap
/// tests of raft_test.go.
@Suite struct SnapshotTests {
    private static let voters: [UInt64] = [1, 2, 3]

    /// A leader of term 2 whose log was compacted into a snapshot at (10, 1) holding [0xAB].
    /// Node 3 acknowledged its empty entry (index 11, committed); node 2 rejected its probe:
    /// it has nothing past index 1, which is compacted. Returns the leader, the snapshot and what
    /// the leader sent in answer to node 2.
    private func compactedLeader() throws -> (leader: TestNode, image: Snapshot, sent: [Message]) {
        let storage = try bootstrappedStorage(
            voters: Self.voters, entries: (2...10).map { dataEntry($0, 1, [UInt8($0)]) }, hardState: HardState(term: 1, commit: 10))
        let image = try storage.createSnapshot(10, confState: ConfState(voters: Self.voters), data: [0xAB])
        try storage.compact(10)
        let n = try TestNode(id: 1, storage: storage)
        try n.becomeLeader()
        #expect(n.term == 2 && n.core.log.firstIndex == 11 && n.core.log.lastIndex == 11)
        _ = try n.ack(from: 3, index: 11)
        #expect(n.core.log.committed == 11)
        let sent = try n.stepAndRead(
            Message(type: .appendResponse, to: 1, from: 2, term: 2, logTerm: 1, index: 10, reject: true, rejectHint: 1))
        return (n, image, sent)
    }

    /// A follower of term 2 on a log (1, 1) … (5, 1), committed up to 3.
    private func follower() throws -> TestNode {
        try TestNode(id: 2, voters: Self.voters, entries: entries(from: 2, terms: [1, 1, 1, 1]), hardState: HardState(term: 2, commit: 3))
    }

    private func snapshotMessage(_ image: Snapshot, to: UInt64 = 2) -> Message {
        Message(type: .snapshot, to: to, from: 1, term: 2, snapshot: image)
    }

    // MARK: - The leader

    /// The entries a follower needs were compacted: the leader sends its latest snapshot, and
    /// the follower's progress goes to `.snapshot` with the snapshot's index pending.
    @Test func followerBehindTheCompactedLogGetsASnapshot() throws {
        let (n, image, sent) = try compactedLeader()
        #expect(sent == [Message(type: .snapshot, to: 2, from: 1, term: 2, snapshot: image)])
        #expect(sent.first?.snapshot?.data == [0xAB])
        let pr = try #require(n.node.status.progress[2])
        #expect(pr.state == .snapshot && pr.pendingSnapshot == 10)
        #expect(pr.isPaused)
        #expect(pr.match == 0)
    }

    /// While the snapshot is pending nothing else is sent to that follower: no appends for new
    /// proposals, none in answer to its heartbeats, and no second snapshot. Others are served.
    @Test func noAppendsWhileASnapshotIsPending() throws {
        let (n, _, _) = try compactedLeader()
        var sent: [Message] = []
        for i in 0..<3 {
            try n.propose([UInt8(i)])
            sent += n.readMessages()
        }
        n.tick()
        sent += n.readMessages()
        sent += try n.stepAndRead(Message(type: .heartbeatResponse, to: 1, from: 2, term: 2))
        sent += try n.ack(from: 3, index: 14)
        #expect(sent.filter { $0.to == 2 }.map(\.type) == [.heartbeat])
        #expect(sent.filter { $0.to == 3 && $0.type == .append }.flatMap(\.entries).map(\.index) == [12, 13, 14])
        #expect(n.core.log.committed == 14)
        #expect(n.node.status.progress[2]?.state == .snapshot)
    }

    /// Reported applied, the snapshot leaves the follower probing after it, paused until the
    /// follower's own answer arrives; that answer (its last index, the snapshot's) moves it to
    /// replicate, and the rest of the log follows.
    @Test func snapshotFinishThenTheFollowersAnswerResumesReplication() throws {
        let (n, _, _) = try compactedLeader()
        try n.propose([1])
        n.readMessages()
        n.node.reportSnapshot(2, status: .finish)
        var pr = try #require(n.node.status.progress[2])
        #expect(pr.state == .probe && pr.next == 11 && pr.pendingSnapshot == 0)
        #expect(pr.isPaused, "waits for the follower's answer")
        #expect(n.readMessages().isEmpty)

        let sent = try n.ack(from: 2, index: 10)
        pr = try #require(n.node.status.progress[2])
        #expect(pr.state == .replicate && pr.match == 10 && pr.next == 13)
        #expect(sent.filter { $0.to == 2 }.map { [$0.index, $0.logTerm] } == [[10, 1]])
        #expect(sent.filter { $0.to == 2 }.flatMap(\.entries).map(\.index) == [11, 12])
    }

    /// The follower's answer may come before the transport's report: an acknowledgement at or
    /// beyond the pending snapshot ends the snapshot state by itself (etcd's TestSnapshotAbort),
    /// and the report that follows changes nothing.
    @Test func followersAnswerBeforeTheReportEndsTheSnapshotState() throws {
        let (n, _, _) = try compactedLeader()
        let sent = try n.ack(from: 2, index: 10)
        var pr = try #require(n.node.status.progress[2])
        #expect(pr.state == .replicate && pr.match == 10 && pr.pendingSnapshot == 0)
        #expect(sent.filter { $0.to == 2 }.flatMap(\.entries).map(\.index) == [11])
        #expect(pr.inflights.count == 1)
        n.node.reportSnapshot(2, status: .finish)
        n.node.reportSnapshot(2, status: .failure)
        pr = try #require(n.node.status.progress[2])
        #expect(pr.state == .replicate && pr.inflights.count == 1, "reports outside the snapshot state are ignored")
    }

    /// A failed snapshot puts the follower back to probing from its last acknowledged index
    /// (the snapshot was never applied), paused for a heartbeat interval; the next heartbeat
    /// answer makes the leader try again, with the snapshot.
    @Test func snapshotFailureProbesAgainAndRetries() throws {
        let (n, image, _) = try compactedLeader()
        n.node.reportSnapshot(2, status: .failure)
        let pr = try #require(n.node.status.progress[2])
        #expect(pr.state == .probe && pr.pendingSnapshot == 0 && pr.next == 1 && pr.match == 0)
        #expect(pr.isPaused)
        try n.propose([1])
        #expect(!n.readMessages().contains { $0.to == 2 }, "paused")

        n.tick()
        n.readMessages()
        let retry = try n.stepAndRead(Message(type: .heartbeatResponse, to: 1, from: 2, term: 2))
        #expect(retry == [snapshotMessage(image)])
        #expect(n.node.status.progress[2]?.state == .snapshot)
        #expect(n.node.status.progress[2]?.pendingSnapshot == 10)
    }

    // MARK: - The follower

    /// A snapshot is restored only if it is newer than the follower's commit index. An older or
    /// equal one is ignored; one whose last entry the follower already has only moves its commit
    /// index forward (etcd's TestRestoreIgnoreSnapshot). Each is answered with an append
    /// response carrying how far the follower is.
    @Test func followerRestoresOnlySnapshotsNewerThanItsCommit() throws {
        let cs = ConfState(voters: Self.voters)
        let cases: [(image: Snapshot, restored: Bool, commit: UInt64, answer: UInt64)] = [
            (snap(2, 1, confState: cs), false, 3, 3),
            (snap(3, 1, confState: cs), false, 3, 3),
            // Committed entries never change; a snapshot that says otherwise is stale.
            (snap(3, 2, confState: cs), false, 3, 3),
            (snap(4, 1, confState: cs), false, 4, 4),
            (snap(5, 2, confState: cs), true, 5, 5),
            (snap(9, 2, confState: cs), true, 9, 9),
        ]
        for (i, c) in cases.enumerated() {
            let n = try follower()
            let before = n.readies.count
            let sent = try n.stepAndRead(snapshotMessage(c.image))
            #expect(sent == [Message(type: .appendResponse, to: 1, from: 2, term: 2, index: c.answer)], "case \(i)")
            #expect(n.readies[before...].compactMap(\.snapshot) == (c.restored ? [c.image] : []), "case \(i)")
            #expect(n.core.log.committed == c.commit, "case \(i)")
            if c.restored {
                #expect(n.core.log.firstIndex == c.image.metadata.index + 1 && n.core.log.lastIndex == c.image.metadata.index, "case \(i)")
                #expect(try n.storage.snapshot() == c.image, "case \(i)")
            } else {
                #expect(n.core.log.lastIndex == 5 && n.core.log.firstIndex == 2, "case \(i): log untouched")
                #expect(n.takeCommitted().map(\.index) == Array(2...c.commit), "case \(i)")
            }
        }
    }

    /// A follower that compacted its own log ignores a snapshot older than what it has: its
    /// entries there are gone, so only the commit index can tell that it is stale.
    @Test func olderSnapshotThanTheFollowersOwnIsIgnored() throws {
        let storage = MemoryStorage()
        try storage.applySnapshot(snap(5, 1, confState: ConfState(voters: Self.voters)))
        try storage.append([ent(6, 1), ent(7, 1)])
        try storage.setHardState(HardState(term: 2, commit: 7))
        let n = try TestNode(id: 2, storage: storage)
        try n.step(snapshotMessage(snap(4, 1, confState: ConfState(voters: Self.voters))))
        // Handled by hand: the storage would refuse to go back to an older snapshot.
        let rd = n.node.ready()
        #expect(rd.snapshot == nil)
        #expect(rd.messages == [Message(type: .appendResponse, to: 1, from: 2, term: 2, index: 7)])
        #expect(n.core.log.committed == 7 && n.core.log.firstIndex == 6 && n.core.log.lastIndex == 7)
    }

    /// The restored snapshot comes out in `Ready.snapshot` for the application to persist and
    /// load; the follower's log now starts after it, its commit and applied indices are the
    /// snapshot's, and its configuration is the snapshot's. The leader carries on from there.
    @Test func readyHandsTheSnapshotToTheApplication() throws {
        let n = try follower()
        #expect(n.takeCommitted().map(\.index) == [2, 3])
        let image = Snapshot(
            data: [1, 2, 3],
            metadata: SnapshotMetadata(confState: ConfState(voters: [1, 2, 3, 4], learners: [5]), index: 10, term: 2))
        try n.step(snapshotMessage(image))
        let rd = n.node.ready()
        #expect(rd.snapshot == image)
        #expect(rd.hardState == HardState(term: 2, commit: 10))
        #expect(rd.committedEntries.isEmpty && rd.entries.isEmpty)
        try n.storage.applySnapshot(rd.snapshot!)
        try n.storage.setHardState(rd.hardState!)
        n.node.advance(rd)
        #expect(!n.node.hasReady)

        let status = n.node.status
        #expect(status.config.isEquivalent(to: image.metadata.confState))
        #expect(status.applied == 10 && status.hardState.commit == 10)
        #expect(n.core.log.firstIndex == 11 && n.core.log.lastIndex == 10 && n.core.log.lastTerm == 2)
        #expect(n.core.tracker.progress.ids == [1, 2, 3, 4, 5])
        #expect(n.core.tracker.progress[5]?.isLearner == true)

        let sent = try n.stepAndRead(
            Message(type: .append, to: 2, from: 1, term: 2, logTerm: 2, index: 10, entries: [dataEntry(11, 2, [11])], commit: 11))
        #expect(sent == [Message(type: .appendResponse, to: 1, from: 2, term: 2, index: 11)])
        #expect(n.takeCommitted() == [dataEntry(11, 2, [11])])
    }

    /// The configuration comes from the snapshot whatever it was before: a voter can find itself
    /// a learner (and then never campaigns), or in a joint configuration.
    @Test func restoredSnapshotSetsTheConfiguration() throws {
        let learnerImage = snap(10, 2, confState: ConfState(voters: [1, 3], learners: [2]))
        let n = try follower()
        _ = try n.stepAndRead(snapshotMessage(learnerImage))
        #expect(n.node.status.config == learnerImage.metadata.confState)
        #expect(n.core.isLearner && !n.core.promotable)
        n.tick(50)
        try n.node.campaign()
        #expect(n.state == .follower && n.term == 2, "a learner never campaigns")

        let joint = ConfState(voters: [1, 2, 4], learners: [5], votersOutgoing: [1, 2, 3], learnersNext: [], autoLeave: true)
        let m = try follower()
        _ = try m.stepAndRead(snapshotMessage(snap(10, 2, confState: joint)))
        #expect(m.node.status.config.isEquivalent(to: joint))
        #expect(m.core.tracker.progress.ids == [1, 2, 3, 4, 5])

        // A node that is only an outgoing voter is still in the configuration.
        let leaving = ConfState(voters: [1, 3], votersOutgoing: [1, 2, 3])
        let o = try follower()
        _ = try o.stepAndRead(snapshotMessage(snap(10, 2, confState: leaving)))
        #expect(o.node.status.config.isEquivalent(to: leaving))
        #expect(o.core.log.committed == 10)
    }

    /// A snapshot whose configuration does not contain this node is of no use to it (and would
    /// make it unpromotable for the wrong reason): it is ignored.
    @Test func snapshotWithoutThisNodeIsIgnored() throws {
        let n = try follower()
        let sent = try n.stepAndRead(snapshotMessage(snap(10, 2, confState: ConfState(voters: [1, 3, 4]))))
        #expect(sent == [Message(type: .appendResponse, to: 1, from: 2, term: 2, index: 3)])
        #expect(n.readies.allSatisfy { $0.snapshot == nil })
        #expect(n.core.log.lastIndex == 5 && n.core.log.committed == 3)
        #expect(n.node.status.config == ConfState(voters: Self.voters))
    }

    // MARK: - Through the network

    /// A follower cut off while the leader compacted its log catches up by snapshot: the leader
    /// sends exactly one, nothing else while it is pending, then replicates the rest.
    @Test func laggingFollowerCatchesUpBySnapshot() throws {
        let net = try SimulatedNetwork(ids: Self.voters)
        try net.elect(1)
        net.isolate(3)
        for i in 0..<5 { try net.with(1) { try $0.propose([UInt8(i)]) } }
        net.deliverAll()
        #expect(net.commit(1) == 7)
        let image = try net.storages[1]!.createSnapshot(7, confState: ConfState(voters: Self.voters), data: [7])
        try net.storages[1]!.compact(7)
        net.heal()
        let log = MessageLog()
        net.record(into: log)

        // Step by step until the snapshot is on its way.
        net.tick(1)
        while !net.queue.contains(where: { $0.type == .snapshot }) && !net.queue.isEmpty { net.deliverNext() }
        #expect(net.queue.contains { $0.type == .snapshot && $0.to == 3 })
        let pr = try #require(net.status(1)?.progress[3])
        #expect(pr.state == .snapshot && pr.pendingSnapshot == 7)
        try net.with(1) { try $0.propose([5]) }
        let snapshotAt = try #require(log.messages.lastIndex { $0.type == .snapshot })
        #expect(!log.messages[snapshotAt...].contains { $0.type == .append && $0.to == 3 }, "no appends while pending")

        net.deliverAll()
        net.run(rounds: 2)
        #expect(log.of(.snapshot, to: 3).count == 1)
        #expect(log.of(.snapshot, to: 3).first?.snapshot == image)
        #expect(try net.storages[3]!.snapshot() == image)
        #expect(net.log(3) == net.log(1))
        #expect(net.appliedData(3) == [[5]], "the rest came by appends")
        let after = try #require(net.status(1)?.progress[3])
        #expect(after.state == .replicate && after.match == 8)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A follower that crashed and restarts after the leader compacted past its log catches up
    /// by snapshot (etcd's TestSlowNodeRestore).
    @Test func restartedFollowerCatchesUpBySnapshot() throws {
        let net = try SimulatedNetwork(ids: Self.voters)
        try net.elect(1)
        try net.with(1) { try $0.propose([0]) }
        net.deliverAll()
        let storage3 = try #require(net.storages[3])
        #expect(try storage3.lastIndex() == 3)
        net.remove(id: 3)

        for i in 1...6 { try net.with(1) { try $0.propose([UInt8(i)]) } }
        net.deliverAll()
        #expect(net.commit(1) == 9)
        for id: UInt64 in [1, 2] {
            _ = try net.storages[id]!.createSnapshot(9, confState: ConfState(voters: Self.voters), data: [9])
            try net.storages[id]!.compact(9)
        }

        net.checker.nodeRestarted(3, snapshotIndex: try storage3.snapshot().metadata.index)
        try net.add(id: 3, storage: storage3)
        #expect(net.term(3) == 1 && net.commit(3) == 3, "restarted from its own storage")
        let log = MessageLog()
        net.record(into: log)
        net.run(rounds: 3)
        #expect(log.of(.snapshot, to: 3).count == 1)
        #expect(try storage3.snapshot().metadata.index == 9)
        #expect(net.commit(3) == 9)
        try net.with(1) { try $0.propose([7]) }
        net.deliverAll()
        #expect(net.log(3) == net.log(1))
        #expect(net.appliedData(3) == [[7]])
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }
}
