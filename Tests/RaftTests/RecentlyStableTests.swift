import Testing
@testable import Raft

/// `RaftLog.recentlyStable`: the last batch the application persisted, answered from memory
/// instead of storage. It must only ever say what storage says.
@Suite struct RecentlyStableTests {
    /// A log over `storage` whose unstable entries `ents` the application then persists, as a
    /// driver does: append to storage, then `stableTo`.
    func persist(_ ents: [Entry], into log: inout RaftLog, _ storage: MemoryStorage) throws {
        log.append(ents)
        try storage.append(log.unstableEntries)
        let last = try #require(log.unstableEntries.last)
        log.stableTo(index: last.index, term: last.term)
    }

    @Test func aPersistedTailIsKeptAndAnswersLikeStorage() throws {
        let storage = MemoryStorage()
        var log = try RaftLog(storage: storage)
        try persist([ent(1, 1), ent(2, 1), ent(3, 2)], into: &log, storage)
        #expect(log.recentlyStable.map(\.index) == [1, 2, 3])
        log.commitTo(3)
        #expect(log.nextCommittedEntries() == (try storage.entries(1, 4, maxSize: .max)))
        for i: UInt64 in 1...3 { #expect(try log.term(i) == storage.term(i)) }
        // A part of the batch, and the size limit (one entry at least).
        #expect(try log.slice(2, 4, maxSize: .max) == storage.entries(2, 4, maxSize: .max))
        #expect(try log.slice(1, 4, maxSize: 0).map(\.index) == [1])
    }

    @Test func aTailPersistedInPartsKeepsNothing() throws {
        let storage = MemoryStorage()
        var log = try RaftLog(storage: storage)
        log.append([ent(1, 1), ent(2, 1)])
        try storage.append([ent(1, 1)])
        log.stableTo(index: 1, term: 1)
        #expect(log.recentlyStable.isEmpty)
    }

    /// A new leader overwrites entries this node persisted: once the replacements are
    /// persisted, storage holds them, and so must every answer.
    @Test func overwrittenEntriesAreForgotten() throws {
        let storage = MemoryStorage()
        var log = try RaftLog(storage: storage)
        try persist([ent(1, 1), ent(2, 1), ent(3, 1)], into: &log, storage)
        // Entries 2 and 3 of term 1 are replaced by entry 2 of term 3.
        log.append([ent(2, 3)])
        #expect(log.recentlyStable.isEmpty)
        #expect(try log.term(2) == 3)
        #expect(try log.term(3) == 0, "beyond the last index now")
        try storage.append([ent(2, 3)])
        log.stableTo(index: 2, term: 3)
        log.commitTo(2)
        #expect(log.nextCommittedEntries().map(\.term) == [1, 3])
        #expect(try log.term(2) == 3)
    }

    /// An append after the batch (the common case) keeps it.
    @Test func appendingAfterTheBatchKeepsIt() throws {
        let storage = MemoryStorage()
        var log = try RaftLog(storage: storage)
        try persist([ent(1, 1), ent(2, 1)], into: &log, storage)
        log.append([ent(3, 1)])
        #expect(log.recentlyStable.map(\.index) == [1, 2])
    }

    @Test func aSnapshotReplacesTheBatch() throws {
        let storage = MemoryStorage()
        var log = try RaftLog(storage: storage)
        try persist([ent(1, 1), ent(2, 1)], into: &log, storage)
        log.restore(snap(10, 2))
        #expect(log.recentlyStable.isEmpty)
        try storage.applySnapshot(snap(10, 2))
        log.stableSnapTo(10)
        #expect(try log.term(10) == 2)
        #expect(try log.term(2) == 0, "compacted by the snapshot")
    }

    /// The application compacts storage past the batch: the bounds still come from storage,
    /// as etcd's do, so a compacted index gives no term.
    @Test func compactionIsStillSeen() throws {
        let storage = MemoryStorage()
        var log = try RaftLog(storage: storage)
        try persist([ent(1, 1), ent(2, 1), ent(3, 1)], into: &log, storage)
        log.commitTo(3)
        log.appliedTo(3)
        try storage.compact(2)
        #expect(try log.term(1) == 0)
        #expect(try log.term(2) == 1, "the dummy entry keeps its term")
        #expect(throws: RaftError.compacted) { try log.slice(1, 3, maxSize: .max) }
    }
}
