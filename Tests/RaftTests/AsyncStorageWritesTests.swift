import Testing
@testable import Raft
import RaftTestKit

/// `Config.asyncStorageWrites`: numbered Readies whose writes run beside the node. What each
/// Ready hands out, what waits for `onPersistReady`, and what a leader counts before its own
/// write is durable.
@Suite struct AsyncStorageWritesTests {
    /// A node with asynchronous writes on a bootstrapped `MemoryStorage` (snapshot at (1, 1)).
    func node(_ id: UInt64, voters: [UInt64]) throws -> (RawNode, MemoryStorage) {
        let storage = try bootstrappedStorage(voters: voters)
        var config = Config(id: id, electionTick: 10, heartbeatTick: 1, storage: storage)
        config.asyncStorageWrites = true
        return (try RawNode(config: config), storage)
    }

    /// What the disk thread does with a Ready: its snapshot, HardState and entries.
    func write(_ rd: Ready, to storage: MemoryStorage) throws {
        if let snapshot = rd.snapshot { try storage.applySnapshot(snapshot) }
        if let hardState = rd.hardState { try storage.setHardState(hardState) }
        try storage.append(rd.entries)
    }

    /// One voter: its own entry commits only once written, and is applied only then.
    @Test func singleVoterCommitsOnlyWhatItPersisted() throws {
        let (raw, storage) = try node(1, voters: [1])
        try raw.campaign()
        let first = raw.ready()
        #expect(first.number == 1)
        #expect(first.softState?.raftState == .leader)
        #expect(first.entries.map(\.index) == [2], "the new leader's empty entry")
        #expect(first.committedEntries.isEmpty && first.mustSync)
        #expect(!raw.hasReady, "everything is handed out; nothing more until the write is durable")
        try raw.propose([7])
        let second = raw.ready()
        #expect(second.number == 2)
        #expect(second.entries.map(\.index) == [3], "only what was not handed out before")
        #expect(second.committedEntries.isEmpty)
        try write(first, to: storage)
        try write(second, to: storage)
        raw.onPersistReady(second.number)  // covers the first
        let third = raw.ready()
        #expect(third.committedEntries.map(\.index) == [2, 3])
        #expect(third.hardState?.commit == 3)
        #expect(third.entries.isEmpty && !third.mustSync)
        raw.advanceApply(to: 3)
        #expect(raw.status.applied == 3)
        #expect(!raw.hasReady)
    }

    /// Three voters: the leader sends its appends at once and commits on two followers'
    /// acknowledgements before its own write is done (thesis §10.2.1), but hands the entry out
    /// to apply only once it is durable here too. Followers' acknowledgements wait for their
    /// writes.
    @Test func followersAcknowledgeOnlyOncePersisted() throws {
        let (leader, leaderStorage) = try node(1, voters: [1, 2, 3])
        let (f2, s2) = try node(2, voters: [1, 2, 3])
        let (f3, s3) = try node(3, voters: [1, 2, 3])
        try leader.campaign()
        var rd = leader.ready()
        #expect(rd.messages.isEmpty, "vote requests wait for the candidate's own vote to be durable")
        #expect(rd.messagesAfterPersist.map(\.type) == [.vote, .vote])
        try write(rd, to: leaderStorage)
        leader.onPersistReady(rd.number)
        for request in rd.messagesAfterPersist {
            let voter = request.to == 2 ? f2 : f3
            let storage = request.to == 2 ? s2 : s3
            try voter.step(request)
            let answer = voter.ready()
            #expect(answer.messages.isEmpty && answer.messagesAfterPersist.map(\.type) == [.voteResponse])
            try write(answer, to: storage)
            voter.onPersistReady(answer.number)
            try leader.step(answer.messagesAfterPersist[0])
        }
        rd = leader.ready()
        #expect(rd.softState?.raftState == .leader)
        #expect(rd.messages.map(\.type) == [.append, .append], "a leader sends before it writes")
        #expect(rd.messagesAfterPersist.isEmpty)
        let emptyEntry = rd.entries
        #expect(emptyEntry.map(\.index) == [2])
        // The followers write and acknowledge; the leader has not written its entry yet.
        for append in rd.messages {
            let follower = append.to == 2 ? f2 : f3
            let storage = append.to == 2 ? s2 : s3
            try follower.step(append)
            let fr = follower.ready()
            #expect(fr.messages.isEmpty, "no acknowledgement before the write")
            #expect(fr.messagesAfterPersist.map(\.type) == [.appendResponse])
            try write(fr, to: storage)
            follower.onPersistReady(fr.number)
            try leader.step(fr.messagesAfterPersist[0])
        }
        #expect(leader.status.hardState.commit == 2, "two followers are a quorum")
        let next = leader.ready()
        #expect(next.committedEntries.isEmpty, "not durable here yet: not applied")
        try write(rd, to: leaderStorage)
        leader.onPersistReady(rd.number)
        let last = leader.ready()
        #expect(last.committedEntries.map(\.index) == [2])
        _ = next
    }

    /// A leader with a slow disk: two followers commit an entry, then the leader's own write
    /// completes; a leader whose followers are gone commits nothing until its own write and a
    /// follower's acknowledgement are both in.
    @Test func leaderCountsItsOwnCopyOnlyWhenDurable() throws {
        let (raw, storage) = try node(1, voters: [1, 2, 3])
        try raw.campaign()
        var rd = raw.ready()
        try write(rd, to: storage)
        raw.onPersistReady(rd.number)
        let term = raw.status.hardState.term
        try raw.step(Message(type: .voteResponse, to: 1, from: 2, term: term))
        rd = raw.ready()
        #expect(rd.softState?.raftState == .leader)
        // Follower 2 acknowledges the empty entry; the leader's copy is still being written.
        try raw.step(Message(type: .appendResponse, to: 1, from: 2, term: term, index: 2))
        #expect(raw.status.hardState.commit == 1, "one durable copy of three is no quorum")
        try write(rd, to: storage)
        raw.onPersistReady(rd.number)
        #expect(raw.status.hardState.commit == 2, "the leader's own copy, now durable, makes two")
        let after = raw.ready()
        #expect(after.committedEntries.map(\.index) == [2])
        #expect(after.messages.contains { $0.type == .append && $0.commit == 2 }, "the new commit index goes out at once")
    }

    /// Entries being written that a new leader replaces: the next Ready carries the
    /// replacements, and the old write's report does not mark them stable.
    @Test func replacedEntriesInProgressAreWrittenAgain() throws {
        let (raw, storage) = try node(2, voters: [1, 2, 3])
        try raw.step(Message(type: .append, to: 2, from: 1, term: 2, logTerm: 1, index: 1,
                             entries: [Entry(term: 2, index: 2), Entry(term: 2, index: 3), Entry(term: 2, index: 4)], commit: 1))
        let first = raw.ready()
        #expect(first.entries.map(\.index) == [2, 3, 4])
        // A leader of term 3 replaces 3 and 4 while they are being written.
        try raw.step(Message(type: .append, to: 2, from: 3, term: 3, logTerm: 2, index: 2,
                             entries: [Entry(term: 3, index: 3), Entry(term: 3, index: 4)], commit: 1))
        let second = raw.ready()
        #expect(second.entries.map(\.term) == [3, 3] && second.entries.map(\.index) == [3, 4])
        #expect(second.messagesAfterPersist.map(\.to) == [3])
        try write(first, to: storage)
        raw.onPersistReady(first.number)
        // Index 2 is durable; 3 and 4 of term 3 are not yet.
        #expect(raw.status.hardState.term == 3)
        try write(second, to: storage)
        raw.onPersistReady(second.number)
        try raw.step(Message(type: .heartbeat, to: 2, from: 3, term: 3, commit: 4))
        let third = raw.ready()
        #expect(third.committedEntries.map(\.term) == [2, 3, 3])
        #expect(try storage.term(4) == 3)
    }

    /// A snapshot from the leader is handed out once, applied, then reported durable.
    @Test func snapshotIsHandedOutOnce() throws {
        let (raw, storage) = try node(2, voters: [1, 2])
        let snapshot = Snapshot(data: [1, 2, 3], metadata: SnapshotMetadata(confState: ConfState(voters: [1, 2]), index: 20, term: 2))
        try raw.step(Message(type: .snapshot, to: 2, from: 1, term: 2, snapshot: snapshot))
        let first = raw.ready()
        #expect(first.snapshot == snapshot)
        #expect(first.messages.isEmpty && first.messagesAfterPersist.map(\.type) == [.appendResponse])
        raw.advanceApply(to: 20)
        #expect(!raw.hasReady, "the snapshot is not handed out twice")
        try write(first, to: storage)
        raw.onPersistReady(first.number)
        #expect(raw.status.applied == 20)
        try raw.step(Message(type: .append, to: 2, from: 1, term: 2, logTerm: 2, index: 20, entries: [Entry(term: 2, index: 21)], commit: 21))
        let second = raw.ready()
        #expect(second.entries.map(\.index) == [21] && second.snapshot == nil)
        try write(second, to: storage)
        raw.onPersistReady(second.number)
        #expect(raw.ready().committedEntries.map(\.index) == [21])
    }
}
