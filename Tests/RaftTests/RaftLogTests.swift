import Testing
@testable import Raft

/// Ports of etcd's log_test.go (v3.5), plus the size limits and the storage/unstable seams.
@Suite struct RaftLogTests {
    func newLog(_ storage: MemoryStorage = MemoryStorage(), maxNextEntriesSize: UInt64 = .max) -> RaftLog {
        try! RaftLog(storage: storage, maxNextEntriesSize: maxNextEntriesSize)
    }

    /// A storage whose snapshot is (`index`, `term`).
    func storage(snapshotAt index: UInt64, term: UInt64 = 0) -> MemoryStorage {
        let s = MemoryStorage()
        try! s.applySnapshot(snap(index, term))
        return s
    }

    @Test func newLogStartsAtStorage() throws {
        let s = storage(snapshotAt: 10, term: 2)
        try s.append([ent(11, 2), ent(12, 3)])
        let log = newLog(s)
        #expect(log.firstIndex == 11)
        #expect(log.lastIndex == 12)
        #expect(log.lastTerm == 3)
        #expect(log.committed == 10)
        #expect(log.applied == 10)
        #expect(log.unstable.offset == 13)
        #expect(log.unstable.entries.isEmpty)
    }

    @Test func findConflict() {
        let previous = [ent(1, 1), ent(2, 2), ent(3, 3)]
        let cases: [(ents: [Entry], want: UInt64)] = [
            // No conflict, empty entries.
            ([], 0),
            // No conflict.
            ([ent(1, 1), ent(2, 2), ent(3, 3)], 0),
            ([ent(2, 2), ent(3, 3)], 0),
            ([ent(3, 3)], 0),
            // No conflict, but new entries.
            ([ent(1, 1), ent(2, 2), ent(3, 3), ent(4, 4), ent(5, 4)], 4),
            ([ent(2, 2), ent(3, 3), ent(4, 4), ent(5, 4)], 4),
            ([ent(3, 3), ent(4, 4), ent(5, 4)], 4),
            ([ent(4, 4), ent(5, 4)], 4),
            // Conflicts with existing entries.
            ([ent(1, 4), ent(2, 4)], 1),
            ([ent(2, 1), ent(3, 4), ent(4, 4)], 2),
            ([ent(3, 1), ent(4, 2), ent(5, 4), ent(6, 4)], 3),
        ]
        for (i, c) in cases.enumerated() {
            var log = newLog()
            log.append(previous)
            #expect(log.findConflict(c.ents[...]) == c.want, "case \(i)")
        }
    }

    @Test func findConflictByTerm() {
        /// Entries from `from` with `terms`; the first is the snapshot's (index, term).
        func ents(_ from: UInt64, _ terms: [UInt64]) -> [Entry] {
            terms.enumerated().map { ent(from + UInt64($0.offset), $0.element) }
        }
        let cases: [(ents: [Entry], index: UInt64, term: UInt64, want: UInt64)] = [
            // The log starts at index 1.
            (ents(0, [0, 2, 2, 5, 5, 5]), 100, 2, 100),  // beyond lastIndex
            (ents(0, [0, 2, 2, 5, 5, 5]), 5, 6, 5),
            (ents(0, [0, 2, 2, 5, 5, 5]), 5, 5, 5),
            (ents(0, [0, 2, 2, 5, 5, 5]), 5, 4, 2),
            (ents(0, [0, 2, 2, 5, 5, 5]), 5, 2, 2),
            (ents(0, [0, 2, 2, 5, 5, 5]), 5, 1, 0),
            (ents(0, [0, 2, 2, 5, 5, 5]), 1, 2, 1),
            (ents(0, [0, 2, 2, 5, 5, 5]), 1, 1, 0),
            (ents(0, [0, 2, 2, 5, 5, 5]), 0, 0, 0),
            // A log with compacted entries.
            (ents(10, [3, 3, 3, 4, 4, 4]), 30, 3, 30),  // beyond lastIndex
            (ents(10, [3, 3, 3, 4, 4, 4]), 14, 9, 14),
            (ents(10, [3, 3, 3, 4, 4, 4]), 14, 4, 14),
            (ents(10, [3, 3, 3, 4, 4, 4]), 14, 3, 12),
            (ents(10, [3, 3, 3, 4, 4, 4]), 14, 2, 9),
            (ents(10, [3, 3, 3, 4, 4, 4]), 11, 5, 11),
            (ents(10, [3, 3, 3, 4, 4, 4]), 10, 5, 10),
            (ents(10, [3, 3, 3, 4, 4, 4]), 10, 3, 10),
            (ents(10, [3, 3, 3, 4, 4, 4]), 10, 2, 9),
            (ents(10, [3, 3, 3, 4, 4, 4]), 9, 2, 9),
            (ents(10, [3, 3, 3, 4, 4, 4]), 4, 2, 4),
            (ents(10, [3, 3, 3, 4, 4, 4]), 0, 0, 0),
        ]
        for (i, c) in cases.enumerated() {
            let s = MemoryStorage()
            // A snapshot at index 0 is out of date for a fresh storage: ignored, as in etcd.
            _ = try? s.applySnapshot(snap(c.ents[0].index, c.ents[0].term))
            var log = newLog(s)
            log.append(Array(c.ents.dropFirst()))
            let got = log.findConflictByTerm(index: c.index, term: c.term)
            #expect(got.index == c.want, "case \(i): findConflictByTerm(index: \(c.index), term: \(c.term))")
            #expect(got.term == log.zeroTermOnOutOfBounds(got.index), "case \(i): the term returned is the term at the index")
        }
    }

    @Test func isUpToDate() {
        var log = newLog()
        log.append([ent(1, 1), ent(2, 2), ent(3, 3)])
        let last = log.lastIndex
        let cases: [(lastIndex: UInt64, term: UInt64, want: Bool)] = [
            // A greater term wins whatever the index.
            (last - 1, 4, true), (last, 4, true), (last + 1, 4, true),
            // A smaller term loses whatever the index.
            (last - 1, 2, false), (last, 2, false), (last + 1, 2, false),
            // An equal term: an equal or larger lastIndex wins.
            (last - 1, 3, false), (last, 3, true), (last + 1, 3, true),
        ]
        for c in cases {
            #expect(log.isUpToDate(lastIndex: c.lastIndex, term: c.term) == c.want, "isUpToDate(lastIndex: \(c.lastIndex), term: \(c.term))")
        }
    }

    @Test func append() throws {
        let previous = [ent(1, 1), ent(2, 2)]
        let cases: [(ents: [Entry], wantIndex: UInt64, want: [Entry], wantOffset: UInt64)] = [
            ([], 2, [ent(1, 1), ent(2, 2)], 3),
            ([ent(3, 2)], 3, [ent(1, 1), ent(2, 2), ent(3, 2)], 3),
            // Conflicts with index 1.
            ([ent(1, 2)], 1, [ent(1, 2)], 1),
            // Conflicts with index 2.
            ([ent(2, 3), ent(3, 3)], 3, [ent(1, 1), ent(2, 3), ent(3, 3)], 2),
        ]
        for (i, c) in cases.enumerated() {
            let s = MemoryStorage()
            try s.append(previous)
            var log = newLog(s)
            #expect(log.append(c.ents) == c.wantIndex, "case \(i): lastIndex")
            #expect(try log.entries(from: 1, maxSize: .max) == c.want, "case \(i): entries")
            #expect(log.unstable.offset == c.wantOffset, "case \(i): unstable offset")
        }
    }

    /// etcd's TestLogMaybeAppend, less its one panicking case (a conflict with a committed
    /// entry traps).
    @Test func maybeAppend() throws {
        let previous = [ent(1, 1), ent(2, 2), ent(3, 3)]
        let lastIndex: UInt64 = 3, lastTerm: UInt64 = 3, commit: UInt64 = 1
        let cases: [(logTerm: UInt64, index: UInt64, committed: UInt64, ents: [Entry], wantLast: UInt64?, wantCommit: UInt64)] = [
            // No match: the term differs.
            (lastTerm - 1, lastIndex, lastIndex, [ent(lastIndex + 1, 4)], nil, commit),
            // No match: the index is out of bounds.
            (lastTerm, lastIndex + 1, lastIndex, [ent(lastIndex + 2, 4)], nil, commit),
            // Match with the last existing entry.
            (lastTerm, lastIndex, lastIndex, [], lastIndex, lastIndex),
            (lastTerm, lastIndex, lastIndex + 1, [], lastIndex, lastIndex),  // no commit beyond lastNewIndex
            (lastTerm, lastIndex, lastIndex - 1, [], lastIndex, lastIndex - 1),  // commit up to the message's commit
            (lastTerm, lastIndex, 0, [], lastIndex, commit),  // commit never decreases
            (0, 0, lastIndex, [], 0, commit),  // commit never decreases
            (lastTerm, lastIndex, lastIndex, [ent(lastIndex + 1, 4)], lastIndex + 1, lastIndex),
            (lastTerm, lastIndex, lastIndex + 1, [ent(lastIndex + 1, 4)], lastIndex + 1, lastIndex + 1),
            (lastTerm, lastIndex, lastIndex + 2, [ent(lastIndex + 1, 4)], lastIndex + 1, lastIndex + 1),  // no commit beyond lastNewIndex
            (lastTerm, lastIndex, lastIndex + 2, [ent(lastIndex + 1, 4), ent(lastIndex + 2, 4)], lastIndex + 2, lastIndex + 2),
            // Match with an entry in the middle.
            (lastTerm - 1, lastIndex - 1, lastIndex, [ent(lastIndex, 4)], lastIndex, lastIndex),
            (lastTerm - 2, lastIndex - 2, lastIndex, [ent(lastIndex - 1, 4)], lastIndex - 1, lastIndex - 1),
            // (lastTerm - 3, lastIndex - 3, lastIndex, [ent(lastIndex - 2, 4)]) conflicts with the
            // committed entry 1: fatal, not tested here.
            (lastTerm - 2, lastIndex - 2, lastIndex, [ent(lastIndex - 1, 4), ent(lastIndex, 4)], lastIndex, lastIndex),
        ]
        for (i, c) in cases.enumerated() {
            var log = newLog()
            log.append(previous)
            log.committed = commit
            let got = log.maybeAppend(index: c.index, logTerm: c.logTerm, committed: c.committed, entries: c.ents)
            #expect(got == c.wantLast, "case \(i): last new index")
            #expect(log.committed == c.wantCommit, "case \(i): committed")
            if got != nil && !c.ents.isEmpty {
                let appended = try log.slice(log.lastIndex - UInt64(c.ents.count) + 1, log.lastIndex + 1, maxSize: .max)
                #expect(appended == c.ents, "case \(i): appended entries")
            }
        }
    }

    @Test func maybeAppendKeepsMatchingEntriesAndTruncatesAfterTheConflict() {
        var log = newLog()
        log.append([ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1)])
        log.commitTo(1)
        // The leader resends 2…4 of term 1, then 5 of term 2: nothing is overwritten.
        let resent = log.maybeAppend(index: 1, logTerm: 1, committed: 1, entries: [ent(2, 1), ent(3, 1), ent(4, 1), ent(5, 2)])
        #expect(resent == 5)
        #expect(log.allEntries() == [ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1), ent(5, 2)])
        // A new leader replaces 3… with its own entries; a stale, shorter message does not
        // truncate what follows (the match only proves the prefix).
        let replaced = log.maybeAppend(index: 2, logTerm: 1, committed: 2, entries: [ent(3, 3)])
        #expect(replaced == 3)
        #expect(log.allEntries() == [ent(1, 1), ent(2, 1), ent(3, 3)])
        #expect(log.committed == 2)
        let stale = log.maybeAppend(index: 1, logTerm: 1, committed: 3, entries: [ent(2, 1)])
        #expect(stale == 2)
        #expect(log.allEntries() == [ent(1, 1), ent(2, 1), ent(3, 3)], "no conflict: nothing truncated")
        #expect(log.committed == 2, "commit stops at the last entry the message proved")
    }

    /// Compacting storage must not change what raft sees of the rest of the log.
    @Test func compactionSideEffects() throws {
        // 1000 entries: 750 in storage, 250 unstable.
        let lastIndex: UInt64 = 1000, unstableIndex: UInt64 = 750, lastTerm = lastIndex
        let s = MemoryStorage()
        for i in UInt64(1)...unstableIndex {
            try s.append([ent(i, i)])
        }
        var log = newLog(s)
        for i in unstableIndex..<lastIndex {
            log.append([ent(i + 1, i + 1)])
        }
        let committedAll = log.maybeCommit(maxIndex: lastIndex, term: lastTerm)
        #expect(committedAll)
        log.appliedTo(log.committed)

        let offset: UInt64 = 500
        try s.compact(offset)
        #expect(log.lastIndex == lastIndex)
        for j in offset...log.lastIndex {
            #expect(try log.term(j) == j, "term(\(j))")
            #expect(log.matchTerm(j, j), "matchTerm(\(j))")
        }
        let unstable = log.unstableEntries
        #expect(unstable.count == 250)
        #expect(unstable.first?.index == 751)

        let prev = log.lastIndex
        log.append([ent(log.lastIndex + 1, log.lastIndex + 1)])
        #expect(log.lastIndex == prev + 1)
        #expect(try log.entries(from: log.lastIndex, maxSize: .max).count == 1)
    }

    @Test func hasNextCommittedEntries() throws {
        let cases: [(applied: UInt64, want: Bool)] = [(0, true), (3, true), (4, true), (5, false)]
        for c in cases {
            let s = storage(snapshotAt: 3, term: 1)
            var log = newLog(s)
            log.append([ent(4, 1), ent(5, 1), ent(6, 1)])
            _ = log.maybeCommit(maxIndex: 5, term: 1)
            log.appliedTo(c.applied)
            #expect(log.hasNextCommittedEntries == c.want, "applied \(c.applied)")
        }
    }

    @Test func nextCommittedEntries() {
        let ents = [ent(4, 1), ent(5, 1), ent(6, 1)]
        let cases: [(applied: UInt64, want: [Entry])] = [
            (0, Array(ents[..<2])),
            (3, Array(ents[..<2])),
            (4, Array(ents[1..<2])),
            (5, []),
        ]
        for c in cases {
            var log = newLog(storage(snapshotAt: 3, term: 1))
            log.append(ents)
            _ = log.maybeCommit(maxIndex: 5, term: 1)
            log.appliedTo(c.applied)
            #expect(log.nextCommittedEntries() == c.want, "applied \(c.applied)")
        }
    }

    /// Committed entries come from storage and the unstable log alike, within the size limit
    /// but never fewer than one.
    @Test func nextCommittedEntriesAcrossStorageAndUnstableWithSizeLimits() throws {
        let ents = (UInt64(1)...6).map { Entry(term: 1, index: $0, data: [UInt8](repeating: 7, count: 10)) }
        let size = ents[0].byteSize  // all the same size
        let cases: [(maxSize: UInt64, applied: UInt64, want: ClosedRange<UInt64>)] = [
            (.max, 0, 1...5),
            (0, 0, 1...1),
            (size - 1, 0, 1...1),
            (size, 0, 1...1),
            (size * 2, 0, 1...2),
            (size * 3, 0, 1...3),  // storage 1…3 exactly: nothing unstable fits
            (size * 4 - 1, 0, 1...3),
            (size * 4, 0, 1...4),  // crosses into the unstable log
            (size * 5, 0, 1...5),
            (size * 100, 0, 1...5),
            (size * 2, 2, 3...4),
            (size * 2, 3, 4...5),  // entirely unstable
            (0, 4, 5...5),
        ]
        for c in cases {
            let s = MemoryStorage()
            try s.append(Array(ents[..<3]))  // 1…3 persisted
            var log = newLog(s, maxNextEntriesSize: c.maxSize)
            log.append(Array(ents[3...]))  // 4…6 unstable
            log.commitTo(5)
            log.appliedTo(c.applied)
            let got = log.nextCommittedEntries()
            #expect(got.map(\.index) == Array(c.want), "maxSize \(c.maxSize), applied \(c.applied)")
            #expect(log.hasNextCommittedEntries)
        }
    }

    /// The application applies batch after batch until everything committed is applied.
    @Test func nextCommittedEntriesDrainInBatches() throws {
        let s = MemoryStorage()
        try s.append((UInt64(1)...10).map { ent($0, 1) })
        var log = newLog(s, maxNextEntriesSize: ent(1, 1).byteSize * 3)
        log.append((UInt64(11)...20).map { ent($0, 1) })
        log.commitTo(17)
        var batches: [[UInt64]] = []
        while log.hasNextCommittedEntries {
            let batch = log.nextCommittedEntries()
            batches.append(batch.map(\.index))
            log.appliedTo(batch.last!.index)
        }
        #expect(batches == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12], [13, 14, 15], [16, 17]])
        #expect(log.nextCommittedEntries().isEmpty)
    }

    @Test func unstableEntries() throws {
        let previous = [ent(1, 1), ent(2, 2)]
        let cases: [(unstable: Int, want: [Entry])] = [
            (3, []),
            (1, previous),
        ]
        for c in cases {
            // Persist the stable entries; append the unstable ones to the log.
            let s = MemoryStorage()
            try s.append(Array(previous[..<(c.unstable - 1)]))
            var log = newLog(s)
            log.append(Array(previous[(c.unstable - 1)...]))
            let ents = log.unstableEntries
            if let last = ents.last {
                log.stableTo(index: last.index, term: last.term)
            }
            #expect(ents == c.want, "unstable from \(c.unstable)")
            #expect(log.unstable.offset == previous.last!.index + 1, "unstable from \(c.unstable)")
        }
    }

    @Test func unstableEntriesIsACopy() {
        var log = newLog()
        log.append([ent(1, 1), ent(2, 1)])
        let ents = log.unstableEntries
        log.append([ent(2, 2)])
        #expect(ents == [ent(1, 1), ent(2, 1)])
        #expect(log.unstableEntries == [ent(1, 1), ent(2, 2)])
    }

    /// etcd's TestCommitTo, less its panicking case (committing beyond lastIndex traps).
    @Test func commitTo() {
        let cases: [(commit: UInt64, want: UInt64)] = [
            (3, 3),
            (1, 2),  // never decreases
        ]
        for c in cases {
            var log = newLog()
            log.append([ent(1, 1), ent(2, 2), ent(3, 3)])
            log.committed = 2
            log.commitTo(c.commit)
            #expect(log.committed == c.want, "commitTo(\(c.commit))")
        }
    }

    @Test func maybeCommit() {
        var log = newLog()
        log.append([ent(1, 1), ent(2, 2), ent(3, 2)])
        let wrongTerm = log.maybeCommit(maxIndex: 1, term: 2)
        #expect(!wrongTerm, "the term at 1 is 1")
        #expect(log.committed == 0)
        let atTwo = log.maybeCommit(maxIndex: 2, term: 2)
        #expect(atTwo)
        #expect(log.committed == 2)
        let again = log.maybeCommit(maxIndex: 2, term: 2)
        #expect(!again, "already committed")
        let backwards = log.maybeCommit(maxIndex: 1, term: 1)
        #expect(!backwards, "never goes back")
        let beyond = log.maybeCommit(maxIndex: 9, term: 2)
        #expect(!beyond, "beyond the log the term is 0")
        let atThree = log.maybeCommit(maxIndex: 3, term: 2)
        #expect(atThree)
        #expect(log.committed == 3)
    }

    @Test func appliedTo() {
        var log = newLog()
        log.append([ent(1, 1), ent(2, 1), ent(3, 1)])
        log.commitTo(2)
        log.appliedTo(1)
        #expect(log.applied == 1)
        log.appliedTo(0)
        #expect(log.applied == 1, "0 is ignored")
        log.appliedTo(2)
        #expect(log.applied == 2)
    }

    @Test func stableTo() {
        let cases: [(index: UInt64, term: UInt64, wantOffset: UInt64)] = [
            (1, 1, 2),
            (2, 2, 3),
            (2, 1, 1),  // bad term
            (3, 1, 1),  // bad index
        ]
        for c in cases {
            var log = newLog()
            log.append([ent(1, 1), ent(2, 2)])
            log.stableTo(index: c.index, term: c.term)
            #expect(log.unstable.offset == c.wantOffset, "stableTo(\(c.index), \(c.term))")
        }
    }

    @Test func stableToWithSnapshot() throws {
        let si: UInt64 = 5, st: UInt64 = 2
        let cases: [(index: UInt64, term: UInt64, newEnts: [Entry], wantOffset: UInt64)] = [
            (si + 1, st, [], si + 1),
            (si, st, [], si + 1),
            (si - 1, st, [], si + 1),
            (si + 1, st + 1, [], si + 1),
            (si, st + 1, [], si + 1),
            (si - 1, st + 1, [], si + 1),
            (si + 1, st, [ent(si + 1, st)], si + 2),
            (si, st, [ent(si + 1, st)], si + 1),
            (si - 1, st, [ent(si + 1, st)], si + 1),
            (si + 1, st + 1, [ent(si + 1, st)], si + 1),
            (si, st + 1, [ent(si + 1, st)], si + 1),
            (si - 1, st + 1, [ent(si + 1, st)], si + 1),
        ]
        for (i, c) in cases.enumerated() {
            var log = newLog(storage(snapshotAt: si, term: st))
            log.append(c.newEnts)
            log.stableTo(index: c.index, term: c.term)
            #expect(log.unstable.offset == c.wantOffset, "case \(i)")
        }
    }

    /// A restored (unstable) snapshot, then persisted: stableSnapTo clears it.
    @Test func stableSnapTo() throws {
        var log = newLog()
        log.restore(snap(5, 2))
        #expect(log.hasPendingSnapshot)
        #expect(try log.snapshot() == snap(5, 2))
        log.stableSnapTo(4)
        #expect(log.hasPendingSnapshot, "another index leaves it")
        log.stableSnapTo(5)
        #expect(!log.hasPendingSnapshot)
    }

    /// Storage compaction, seen through the log: etcd's TestCompaction.
    @Test func compaction() throws {
        let cases: [(compact: [UInt64], wantLeft: [Int?], allowed: Bool)] = [
            // Beyond the upper bound (etcd panics; we throw .unavailable).
            ([1001], [nil], false),
            ([300, 500, 800, 900], [700, 500, 200, 100], true),
            // Below the lower bound.
            ([300, 299], [700, nil], false),
        ]
        for c in cases {
            let s = MemoryStorage()
            for i in UInt64(1)...1000 {
                try s.append([Entry(index: i)])
            }
            var log = newLog(s)
            _ = log.maybeCommit(maxIndex: 1000, term: 0)
            log.appliedTo(log.committed)
            for (j, index) in c.compact.enumerated() {
                do {
                    try s.compact(index)
                } catch {
                    #expect(!c.allowed, "compact(\(index)): \(error)")
                    #expect(c.wantLeft[j] == nil, "compact(\(index)) should have failed")
                    continue
                }
                #expect(log.allEntries().count == c.wantLeft[j], "after compact(\(index))")
            }
        }
    }

    @Test func restore() throws {
        let index: UInt64 = 1000, term: UInt64 = 1000
        let log = newLog(storage(snapshotAt: index, term: term))
        #expect(log.allEntries().isEmpty)
        #expect(log.firstIndex == index + 1)
        #expect(log.committed == index)
        #expect(log.unstable.offset == index + 1)
        #expect(try log.term(index) == term)
    }

    /// restore() replaces an existing log with a newer snapshot.
    @Test func restoreOverEntries() throws {
        var log = newLog()
        log.append([ent(1, 1), ent(2, 1), ent(3, 2)])
        log.commitTo(2)
        log.restore(snap(10, 3, confState: ConfState(voters: [1, 2])))
        #expect(log.committed == 10)
        #expect(log.firstIndex == 11)
        #expect(log.lastIndex == 10)
        #expect(log.lastTerm == 3)
        #expect(log.unstableEntries.isEmpty)
        #expect(log.allEntries().isEmpty)
        #expect(try log.snapshot().metadata.confState.voters == [1, 2])
        #expect(log.hasPendingSnapshot)
        #expect(!log.hasNextCommittedEntries, "a snapshot is applied whole, not as entries")
        // The log continues after the snapshot.
        let lastNew = log.maybeAppend(index: 10, logTerm: 3, committed: 11, entries: [ent(11, 3)])
        #expect(lastNew == 11)
        #expect(log.committed == 11)
        #expect(log.nextCommittedEntries() == [ent(11, 3)])
    }

    /// etcd's TestIsOutOfBounds, less its panicking cases (hi beyond lastIndex+1 traps).
    @Test func checkOutOfBounds() {
        let offset: UInt64 = 100, num: UInt64 = 100
        var log = newLog(storage(snapshotAt: offset))
        for i in UInt64(1)...num {
            log.append([Entry(index: i + offset)])
        }
        let first = offset + 1
        let cases: [(lo: UInt64, hi: UInt64, compacted: Bool)] = [
            (first - 2, first + 1, true),
            (first - 1, first + 1, true),
            (first, first, false),
            (first + num / 2, first + num / 2, false),
            (first + num - 1, first + num - 1, false),
            (first + num, first + num, false),
        ]
        for c in cases {
            let got = outcome { () throws(RaftError) in try log.checkOutOfBounds(c.lo, c.hi) }
            #expect(got.failure == (c.compacted ? .compacted : nil), "checkOutOfBounds(\(c.lo), \(c.hi))")
        }
    }

    @Test func term() {
        let offset: UInt64 = 100, num: UInt64 = 100
        var log = newLog(storage(snapshotAt: offset, term: 1))
        for i in UInt64(1)..<num {
            log.append([ent(offset + i, i)])
        }
        let cases: [(index: UInt64, want: UInt64)] = [
            (offset - 1, 0),
            (offset, 1),
            (offset + num / 2, num / 2),
            (offset + num - 1, num - 1),
            (offset + num, 0),
            (.max, 0),
        ]
        for c in cases {
            #expect(outcome { () throws(RaftError) in try log.term(c.index) } == .success(c.want), "term(\(c.index))")
        }
    }

    /// The same terms once the entries are persisted: answered by storage.
    @Test func termFromStorage() throws {
        let s = storage(snapshotAt: 100, term: 1)
        try s.append((UInt64(101)...110).map { ent($0, $0 - 100) })
        let log = newLog(s)
        #expect(try log.term(99) == 0)
        #expect(try log.term(100) == 1)
        #expect(try log.term(105) == 5)
        #expect(try log.term(110) == 10)
        #expect(try log.term(111) == 0)
        #expect(try log.term(.max) == 0, "a hostile index is simply out of range")
        #expect(!log.matchTerm(.max, 1))
        #expect(log.lastTerm == 10)
        // A compaction racing with raft shows as 0 (out of range) or .compacted, never a trap.
        try s.compact(105)
        #expect(try log.term(104) == 0)
        #expect(log.zeroTermOnOutOfBounds(104) == 0)
        #expect(try log.term(105) == 5)
    }

    @Test func termWithUnstableSnapshot() {
        let storageSnapIndex: UInt64 = 100, unstableSnapIndex = storageSnapIndex + 5
        var log = newLog(storage(snapshotAt: storageSnapIndex, term: 1))
        log.restore(snap(unstableSnapIndex, 1))
        let cases: [(index: UInt64, want: UInt64)] = [
            // Cannot get the term from storage.
            (storageSnapIndex, 0),
            // Cannot get the term from the gap between storage and the unstable snapshot.
            (storageSnapIndex + 1, 0),
            (unstableSnapIndex - 1, 0),
            // Get the term from the unstable snapshot index.
            (unstableSnapIndex, 1),
        ]
        for c in cases {
            #expect(outcome { () throws(RaftError) in try log.term(c.index) } == .success(c.want), "term(\(c.index))")
        }
    }

    /// etcd's TestSlice, less its panicking case (hi beyond lastIndex+1 traps).
    @Test func slice() throws {
        let offset: UInt64 = 100, num: UInt64 = 100
        let last = offset + num, half = offset + num / 2
        let halfe = ent(half, half)
        let s = storage(snapshotAt: offset)
        for i in UInt64(1)..<(num / 2) {
            try s.append([ent(offset + i, offset + i)])
        }
        var log = newLog(s)
        for i in (num / 2)..<num {
            log.append([ent(offset + i, offset + i)])
        }
        #expect(log.unstable.offset == half, "storage holds up to half-1, the unstable log from half")

        let cases: [(from: UInt64, to: UInt64, limit: UInt64, want: [Entry])] = [
            // No limit.
            (offset - 1, offset + 1, .max, []),  // compacted
            (offset, offset + 1, .max, []),  // compacted
            (half - 1, half + 1, .max, [ent(half - 1, half - 1), ent(half, half)]),
            (half, half + 1, .max, [ent(half, half)]),
            (last - 1, last, .max, [ent(last - 1, last - 1)]),
            // With a limit.
            (half - 1, half + 1, 0, [ent(half - 1, half - 1)]),
            (half - 1, half + 1, halfe.byteSize + 1, [ent(half - 1, half - 1)]),
            (half - 2, half + 1, halfe.byteSize + 1, [ent(half - 2, half - 2)]),
            (half - 1, half + 1, halfe.byteSize * 2, [ent(half - 1, half - 1), ent(half, half)]),
            (half - 1, half + 2, halfe.byteSize * 3, [ent(half - 1, half - 1), ent(half, half), ent(half + 1, half + 1)]),
            (half, half + 2, halfe.byteSize, [ent(half, half)]),
            (half, half + 2, halfe.byteSize * 2, [ent(half, half), ent(half + 1, half + 1)]),
        ]
        for c in cases {
            let got = outcome { () throws(RaftError) in try log.slice(c.from, c.to, maxSize: c.limit) }
            let label = "slice(\(c.from), \(c.to), maxSize: \(c.limit))"
            if c.from <= offset {
                #expect(got.failure == .compacted, "\(label)")
            } else {
                #expect(got == .success(c.want), "\(label)")
            }
        }
        #expect(try log.slice(half, half, maxSize: .max).isEmpty)
        #expect(try log.entries(from: last, maxSize: .max).isEmpty, "entries beyond lastIndex are empty")
        #expect(try log.entries(from: half - 2, maxSize: .max).map(\.index) == Array((half - 2)...(last - 1)))
    }

    /// Slices spanning storage and the unstable log with every size limit agree with
    /// limitSize over the whole range.
    @Test func sliceAcrossTheBoundaryMatchesLimitSize() throws {
        // Entries of varying sizes: 1…6 in storage, 7…12 unstable.
        let all = (UInt64(1)...12).map { Entry(term: 1, index: $0, data: [UInt8](repeating: 1, count: Int($0 % 4) * 5)) }
        let s = MemoryStorage()
        try s.append(Array(all[..<6]))
        var log = newLog(s)
        log.append(Array(all[6...]))
        let total = all.reduce(0) { $0 + $1.byteSize }
        for lo in UInt64(1)...12 {
            for hi in lo...13 {
                for maxSize in Array(UInt64(0)...total + 1) + [.max] {
                    let want = Array(limitSize(all[Int(lo - 1)..<Int(hi - 1)], maxSize: maxSize))
                    let got = try log.slice(lo, hi, maxSize: maxSize)
                    if got != want {
                        Issue.record("slice(\(lo), \(hi), maxSize: \(maxSize)) = \(got.map(\.index)), want \(want.map(\.index))")
                        return
                    }
                }
            }
        }
    }

    @Test func snapshotFromStorageWhenNoneIsPending() throws {
        let s = storage(snapshotAt: 7, term: 3)
        var log = newLog(s)
        #expect(!log.hasPendingSnapshot)
        #expect(try log.snapshot() == snap(7, 3))
        log.restore(snap(9, 4))
        #expect(try log.snapshot() == snap(9, 4))
    }

    /// The single-voter hot path: append, read, persist, apply, commit, one entry at a time,
    /// with the buffer of the unstable log reused.
    @Test func singleVoterCycle() throws {
        let s = MemoryStorage()
        var log = newLog(s)
        for i in UInt64(1)...1_000 {
            log.append([Entry(term: 1, index: i, data: [1, 2, 3])])
            let committedIt = log.maybeCommit(maxIndex: i, term: 1)
            #expect(committedIt)
            let toPersist = log.unstableEntries
            let toApply = log.nextCommittedEntries()
            #expect(toPersist.map(\.index) == [i])
            #expect(toApply.map(\.index) == [i])
            try s.append(toPersist)
            log.stableTo(index: i, term: 1)
            log.appliedTo(i)
            #expect(!log.hasNextCommittedEntries)
            if i % 100 == 0 { try s.compact(i - 50) }
        }
        #expect(log.lastIndex == 1_000)
        #expect(log.firstIndex == 951)
        #expect(log.lastTerm == 1)
        #expect(log.unstable.entries.isEmpty)
        #expect(log.description == "committed=1000, applied=1000, unstable.offset=1001, len(unstable.entries)=0")
    }
}
