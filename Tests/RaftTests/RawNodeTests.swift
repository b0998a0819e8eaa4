import Testing
@testable import Raft
import RaftTestKit

/// The Ready/advance contract of `RawNode` (etcd's rawnode_test.go): what a Ready holds and
/// when, what must be synced, restarting from storage, and `status`.
@Suite struct RawNodeTests {
    /// Handles `rd` as an application would (persist, then advance) and returns it.
    @discardableResult
    private func handle(_ rd: Ready, _ node: RawNode, _ storage: MemoryStorage) throws -> Ready {
        if let snapshot = rd.snapshot { try storage.applySnapshot(snapshot) }
        if let hs = rd.hardState { try storage.setHardState(hs) }
        try storage.append(rd.entries)
        node.advance(rd)
        return rd
    }

    /// `hasReady` is false while there is nothing to persist, send or apply, and true as soon as
    /// there is; handling the Ready makes it false again.
    @Test func hasReadyOnlyWhenThereIsWork() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        #expect(!n.node.hasReady)
        n.tick(5)
        #expect(!n.node.hasReady, "ticks below the election timeout change nothing visible")
        try n.step(Message(type: .heartbeat, to: 1, from: 2, term: 1))
        #expect(n.node.hasReady)
        let rd = n.node.ready()
        #expect(rd.softState == SoftState(lead: 2, raftState: .follower))
        #expect(rd.hardState == HardState(term: 1, vote: 0, commit: 1))
        #expect(rd.messages == [Message(type: .heartbeatResponse, to: 2, from: 1, term: 1)])
        try handle(rd, n.node, n.storage)
        #expect(!n.node.hasReady)
        // The same heartbeat again: only a message to send, nothing else changed.
        try n.step(Message(type: .heartbeat, to: 1, from: 2, term: 1))
        let again = n.node.ready()
        #expect(again.softState == nil && again.hardState == nil)
        #expect(again.entries.isEmpty && again.committedEntries.isEmpty && again.snapshot == nil)
        #expect(again.messages.count == 1)
        #expect(!again.mustSync)
        try handle(again, n.node, n.storage)
        #expect(!n.node.hasReady)
        let empty = n.node.ready()
        #expect(empty.isEmpty)
    }

    /// `mustSync` is true when the Ready holds entries or changes the term or the vote (what a
    /// crash must not lose), and false when only the commit index changes (which the cluster
    /// can tell the node again).
    @Test func mustSyncWhenEntriesTermOrVoteChange() throws {
        // Term and vote (campaign), then entries and commit (the leader's empty entry).
        let single = try TestNode(id: 1, voters: [1])
        try single.node.campaign()
        var rd = single.node.ready()
        #expect(rd.hardState == HardState(term: 1, vote: 1, commit: 2))
        #expect(rd.softState == SoftState(lead: 1, raftState: .leader))
        #expect(rd.entries == [Entry(term: 1, index: 2)])
        #expect(rd.committedEntries == [Entry(term: 1, index: 2)])
        #expect(rd.mustSync)
        try handle(rd, single.node, single.storage)

        // Entries, without a hard state change.
        let leader = try TestNode(id: 1, voters: [1, 2, 3])
        try leader.becomeLeader()
        _ = try leader.ack(from: 2, index: 2)
        try leader.propose([1])
        rd = leader.node.ready()
        #expect(rd.hardState == nil)
        #expect(rd.entries.map(\.index) == [3])
        #expect(rd.mustSync)
        try handle(rd, leader.node, leader.storage)
        // Only the commit index: no sync.
        try leader.step(Message(type: .appendResponse, to: 1, from: 2, term: 1, index: 3))
        rd = leader.node.ready()
        #expect(rd.hardState == HardState(term: 1, vote: 1, commit: 3))
        #expect(rd.entries.isEmpty)
        #expect(rd.committedEntries.map(\.index) == [3])
        #expect(!rd.messages.isEmpty)
        #expect(!rd.mustSync)
        try handle(rd, leader.node, leader.storage)

        // A follower: the commit index from a heartbeat (no sync), a vote (sync), a new term (sync).
        let follower = try TestNode(id: 1, voters: [1, 2, 3])
        try follower.step(Message(type: .append, to: 1, from: 2, term: 1, logTerm: 1, index: 1, entries: entries(from: 2, terms: [1, 1])))
        rd = follower.node.ready()
        #expect(rd.mustSync)
        try handle(rd, follower.node, follower.storage)
        try follower.step(Message(type: .heartbeat, to: 1, from: 2, term: 1, commit: 3))
        rd = follower.node.ready()
        #expect(rd.hardState == HardState(term: 1, vote: 0, commit: 3))
        #expect(!rd.mustSync)
        try handle(rd, follower.node, follower.storage)

        let voter = try TestNode(id: 1, voters: [1, 2, 3], hardState: HardState(term: 2, commit: 1))
        try voter.step(Message(type: .vote, to: 1, from: 3, term: 2, logTerm: 1, index: 1))
        rd = voter.node.ready()
        #expect(rd.hardState == HardState(term: 2, vote: 3, commit: 1))
        #expect(rd.entries.isEmpty)
        #expect(rd.mustSync)
        try handle(rd, voter.node, voter.storage)
        try voter.step(Message(type: .heartbeat, to: 1, from: 2, term: 3))
        rd = voter.node.ready()
        #expect(rd.hardState == HardState(term: 3, vote: 0, commit: 1))
        #expect(rd.mustSync)
    }

    /// A Ready whose state did not change carries neither soft nor hard state: a leader's
    /// heartbeat tick yields messages only.
    @Test func unchangedStateIsNil() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        try n.becomeLeader()
        _ = try n.ack(from: 2, index: 2)
        n.tick()
        let rd = n.node.ready()
        #expect(rd.softState == nil)
        #expect(rd.hardState == nil)
        #expect(rd.entries.isEmpty && rd.committedEntries.isEmpty)
        #expect(rd.messages.map(\.type) == [.heartbeat, .heartbeat])
        #expect(!rd.mustSync)
        // Losing leadership is a soft state change, and a term change a hard one.
        try handle(rd, n.node, n.storage)
        try n.step(Message(type: .appendResponse, to: 1, from: 3, term: 2))
        let after = n.node.ready()
        #expect(after.softState == SoftState(lead: 0, raftState: .follower))
        #expect(after.hardState == HardState(term: 2, vote: 0, commit: 2))
    }

    /// Committed entries are handed out once: after `advance`, later Readies hold only newer ones.
    @Test func committedEntriesAreReturnedOnce() throws {
        let n = try TestNode(id: 1, voters: [1])
        try n.node.campaign()
        var rd = try handle(n.node.ready(), n.node, n.storage)
        #expect(rd.committedEntries.map(\.index) == [2])
        try n.propose([1])
        try n.propose([2])
        rd = try handle(n.node.ready(), n.node, n.storage)
        #expect(rd.committedEntries.map(\.data) == [[1], [2]])
        #expect(!n.node.hasReady)
        try n.propose([3])
        rd = try handle(n.node.ready(), n.node, n.storage)
        #expect(rd.committedEntries.map(\.data) == [[3]])
        #expect(rd.entries.map(\.data) == [[3]])
        #expect(n.node.status.applied == 5)
    }

    /// maxCommittedSizePerReady spreads a long run of committed entries over several Readies,
    /// each within the limit (but at least one entry), in order.
    @Test(arguments: [UInt64(1), 40, 100, 1 << 20])
    func committedEntriesArePaginated(limit: UInt64) throws {
        let n = try TestNode(id: 1, voters: [1]) { $0.maxCommittedSizePerReady = limit }
        try n.node.campaign()
        n.readMessages()
        let payloads = (0..<10).map { Array(repeating: UInt8($0), count: 10) }
        for p in payloads { try n.propose(p) }
        var pages: [[Entry]] = []
        var readies = 0
        while n.node.hasReady && readies < 20 {
            let rd = try handle(n.node.ready(), n.node, n.storage)
            if !rd.committedEntries.isEmpty { pages.append(rd.committedEntries) }
            readies += 1
        }
        #expect(!n.node.hasReady)
        let size = Entry(term: 1, index: 3, data: payloads[0]).byteSize
        let perPage = max(1, Int(limit / size))
        #expect(pages.count == (10 + perPage - 1) / perPage, "limit \(limit): \(pages.map(\.count))")
        for page in pages {
            let bytes = page.reduce(0) { $0 + $1.byteSize }
            #expect(page.count == 1 || bytes <= limit, "\(page.count) entries, \(bytes) bytes")
        }
        #expect(pages.flatMap { $0 }.map(\.data) == payloads)
        #expect(n.node.status.applied == 12)
    }

    /// A node restarted on storage that holds a hard state and entries keeps its term and vote,
    /// and hands out only the committed entries after `applied` — without re-announcing state.
    @Test(arguments: [UInt64(0), 1, 5, 8])
    func restartFromStorageResumesAfterApplied(applied: UInt64) throws {
        let log = (2...10).map { dataEntry($0, 2, [UInt8($0)]) }
        let storage = try bootstrappedStorage(voters: [1, 2, 3], entries: log, hardState: HardState(term: 3, vote: 2, commit: 8))
        var config = Config(id: 1, storage: storage)
        config.applied = applied
        let node = try RawNode(config: config)
        let status = node.status
        #expect(status.hardState == HardState(term: 3, vote: 2, commit: 8))
        #expect(status.raftState == .follower && status.lead == 0)
        #expect(status.applied == max(applied, 1))
        let wanted = log.filter { $0.index > applied && $0.index <= 8 }
        #expect(node.hasReady == !wanted.isEmpty)
        let rd = try handle(node.ready(), node, storage)
        #expect(rd.committedEntries == wanted)
        #expect(rd.hardState == nil && rd.softState == nil)
        #expect(rd.entries.isEmpty && rd.messages.isEmpty && rd.snapshot == nil)
        #expect(!rd.mustSync)
        #expect(!node.hasReady)
        #expect(node.status.applied == 8)
        // It takes part as before: its vote of term 3 stands.
        try node.step(Message(type: .vote, to: 1, from: 3, term: 3, logTerm: 2, index: 10))
        #expect(node.ready().messages == [Message(type: .voteResponse, to: 3, from: 1, term: 3, reject: true)])
    }

    /// Restarting after a snapshot: entries after it, committed and not applied, come back.
    @Test func restartFromSnapshotResumesAfterIt() throws {
        let storage = MemoryStorage()
        try storage.applySnapshot(snap(5, 2, confState: ConfState(voters: [1, 2]), data: [9]))
        try storage.append([dataEntry(6, 2, [6]), dataEntry(7, 3, [7]), dataEntry(8, 3, [8])])
        try storage.setHardState(HardState(term: 3, vote: 1, commit: 7))
        let node = try RawNode(config: Config(id: 1, storage: storage))
        #expect(node.status.applied == 5)
        let rd = try handle(node.ready(), node, storage)
        #expect(rd.committedEntries.map(\.index) == [6, 7])
        #expect(rd.snapshot == nil)
        #expect(node.status.config == ConfState(voters: [1, 2]))
    }

    /// A snapshot from the leader comes out in a Ready, with the commit index it implies; entries
    /// that arrive after it before the application handled that Ready ride along, to be applied
    /// after the snapshot. Advancing moves `applied` past both.
    @Test func snapshotComesOutInAReadyWithTheEntriesAfterIt() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        let image = snap(10, 2, confState: ConfState(voters: [1, 2, 3]), data: [7])
        try n.step(Message(type: .snapshot, to: 1, from: 2, term: 2, snapshot: image))
        try n.step(Message(type: .append, to: 1, from: 2, term: 2, logTerm: 2, index: 10,
                           entries: [dataEntry(11, 2, [11]), dataEntry(12, 2, [12])], commit: 11))
        #expect(n.node.hasReady)
        let rd = try handle(n.node.ready(), n.node, n.storage)
        #expect(rd.snapshot == image)
        #expect(rd.hardState == HardState(term: 2, vote: 0, commit: 11))
        #expect(rd.softState == SoftState(lead: 2, raftState: .follower))
        #expect(rd.entries.map(\.index) == [11, 12])
        #expect(rd.committedEntries.map(\.index) == [11])
        #expect(rd.mustSync)
        #expect(rd.messages == [
            Message(type: .appendResponse, to: 2, from: 1, term: 2, index: 10),
            Message(type: .appendResponse, to: 2, from: 1, term: 2, index: 12),
        ])
        #expect(n.node.status.applied == 11)
        #expect(!n.node.hasReady)
        #expect(try n.storage.snapshot() == image)
        #expect(try n.storage.firstIndex() == 11 && n.storage.lastIndex() == 12)
        // A snapshot the follower is already past is answered with its commit index, and ignored.
        let old = snap(8, 2, confState: ConfState(voters: [1, 2, 3]))
        let sent = try n.stepAndRead(Message(type: .snapshot, to: 1, from: 2, term: 2, snapshot: old))
        #expect(sent == [Message(type: .appendResponse, to: 2, from: 1, term: 2, index: 11)])
        #expect(try n.storage.snapshot() == image)
    }

    /// `applied` beyond the committed index is a configuration error.
    @Test func appliedBeyondCommitIsRefused() throws {
        let storage = try bootstrappedStorage(voters: [1], entries: entries(from: 2, terms: [1, 1]), hardState: HardState(term: 1, commit: 2))
        var config = Config(id: 1, storage: storage)
        config.applied = 3
        #expect(throws: RaftError.self) { try RawNode(config: config) }
    }

    /// So is `applied` below the storage's snapshot (the snapshot already covers those entries,
    /// which the log no longer has): it is refused the same way, with an error, rather than
    /// tripping `RaftLog.appliedTo`'s invariant. Runs in a child process, which must survive.
    @Test func appliedBelowTheSnapshotIsRefused() async {
        await #expect(processExitsWith: .success) {
            let storage = MemoryStorage()
            try storage.applySnapshot(
                Snapshot(metadata: SnapshotMetadata(confState: ConfState(voters: [1]), index: 5, term: 1)))
            try storage.setHardState(HardState(term: 1, commit: 5))
            var config = Config(id: 1, storage: storage)
            config.applied = 3
            do {
                _ = try RawNode(config: config)
                fatalError("applied 3 below the snapshot at 5 was accepted")
            } catch RaftError.invalidConfig {
                // Refused, as it should be.
            }
        }
    }

    /// `status` reports the node's own state everywhere, and every member's progress on the
    /// leader only.
    @Test func statusHasProgressOnlyOnTheLeader() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        for id: UInt64 in 1...3 { #expect(net.status(id)?.progress.isEmpty == true) }
        try net.elect(1)
        try net.with(1) { try $0.propose([1]) }
        net.deliverAll()
        let leader = try #require(net.status(1))
        #expect(leader.id == 1 && leader.raftState == .leader && leader.lead == 1)
        #expect(leader.hardState == HardState(term: 1, vote: 1, commit: 3))
        #expect(leader.applied == 3)
        #expect(leader.progress.keys.sorted() == [1, 2, 3])
        for id: UInt64 in 1...3 {
            #expect(leader.progress[id]?.match == 3, "node \(id)")
            #expect(leader.progress[id]?.next == 4, "node \(id)")
            #expect(leader.progress[id]?.state == .replicate, "node \(id)")
        }
        for id: UInt64 in [2, 3] {
            let s = try #require(net.status(id))
            #expect(s.progress.isEmpty, "node \(id)")
            #expect(s.raftState == .follower && s.lead == 1 && s.hardState.term == 1, "node \(id)")
            #expect(s.config == ConfState(voters: [1, 2, 3]), "node \(id)")
        }
        // A leader that steps down drops the progress.
        net.isolate(1)
        net.run(rounds: 30)
        let deposed = try #require(net.status(1))
        #expect(deposed.raftState == .leader, "without CheckQuorum an isolated leader leads on")
        net.heal()
        net.run(rounds: 3)
        #expect(net.state(1) == .follower)
        #expect(net.status(1)?.progress.isEmpty == true)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }
}
