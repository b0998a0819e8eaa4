import Testing
@testable import Raft

@Suite struct MemoryStorageTests {
    // etcd storage_test.go: the storage holds a dummy at (3,3) then entries 4 and 5.
    let ents = [ent(3, 3), ent(4, 4), ent(5, 5)]

    @Test func term() {
        let cases: [(i: UInt64, want: Result<UInt64, RaftError>)] = [
            (2, .failure(.compacted)),
            (3, .success(3)),
            (4, .success(4)),
            (5, .success(5)),
            (6, .failure(.unavailable)),
        ]
        for c in cases {
            let s = MemoryStorage(entries: ents)
            #expect(outcome { () throws(RaftError) in try s.term(c.i) } == c.want, "term(\(c.i))")
        }
    }

    @Test func entries() {
        let ents = [ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 6)]
        let size = { (i: Int) in ents[i].byteSize }
        let cases: [(lo: UInt64, hi: UInt64, maxSize: UInt64, want: Result<[Entry], RaftError>)] = [
            (2, 6, .max, .failure(.compacted)),
            (3, 4, .max, .failure(.compacted)),
            (4, 5, .max, .success([ent(4, 4)])),
            (4, 6, .max, .success([ent(4, 4), ent(5, 5)])),
            (4, 7, .max, .success([ent(4, 4), ent(5, 5), ent(6, 6)])),
            // Even with maxSize 0 the first entry is returned.
            (4, 7, 0, .success([ent(4, 4)])),
            // Limit to 2.
            (4, 7, size(1) + size(2), .success([ent(4, 4), ent(5, 5)])),
            (4, 7, size(1) + size(2) + size(3) / 2, .success([ent(4, 4), ent(5, 5)])),
            (4, 7, size(1) + size(2) + size(3) - 1, .success([ent(4, 4), ent(5, 5)])),
            // All.
            (4, 7, size(1) + size(2) + size(3), .success([ent(4, 4), ent(5, 5), ent(6, 6)])),
            // Empty range.
            (4, 4, .max, .success([])),
            // Beyond lastIndex+1 (etcd panics).
            (4, 8, .max, .failure(.unavailable)),
        ]
        for c in cases {
            let s = MemoryStorage(entries: ents)
            let got = outcome { () throws(RaftError) in try s.entries(c.lo, c.hi, maxSize: c.maxSize) }
            #expect(got == c.want, "entries(\(c.lo), \(c.hi), maxSize: \(c.maxSize))")
        }
    }

    @Test func entriesOfAnEmptyStorageAreUnavailable() {
        let s = MemoryStorage()
        #expect(throws: RaftError.unavailable) { try s.entries(1, 1, maxSize: .max) }
        #expect(throws: RaftError.compacted) { try s.entries(0, 1, maxSize: .max) }
    }

    @Test func entriesAreCopies() throws {
        let s = MemoryStorage(entries: ents)
        let before = try s.entries(4, 6, maxSize: .max)
        try s.append([ent(4, 9)])
        #expect(before == [ent(4, 4), ent(5, 5)], "a returned array must not see later writes")
        #expect(try s.entries(4, 5, maxSize: .max) == [ent(4, 9)])
    }

    @Test func lastIndex() throws {
        let s = MemoryStorage(entries: ents)
        #expect(try s.lastIndex() == 5)
        try s.append([ent(6, 5)])
        #expect(try s.lastIndex() == 6)
    }

    @Test func firstIndex() throws {
        let s = MemoryStorage(entries: ents)
        #expect(try s.firstIndex() == 4)
        try s.compact(4)
        #expect(try s.firstIndex() == 5)
    }

    @Test func freshStorage() throws {
        let s = MemoryStorage()
        #expect(try s.firstIndex() == 1)
        #expect(try s.lastIndex() == 0)
        #expect(try s.term(0) == 0)
        #expect(try s.snapshot() == Snapshot())
        let (hs, cs) = try s.initialState()
        #expect(hs == HardState())
        #expect(cs == ConfState())
    }

    @Test func compact() {
        let cases: [(i: UInt64, err: RaftError?, index: UInt64, term: UInt64, count: Int)] = [
            (2, .compacted, 3, 3, 3),
            (3, .compacted, 3, 3, 3),
            (4, nil, 4, 4, 2),
            (5, nil, 5, 5, 1),
            // Beyond lastIndex (etcd panics).
            (6, .unavailable, 3, 3, 3),
        ]
        for c in cases {
            let s = MemoryStorage(entries: ents)
            let got = outcome { () throws(RaftError) in try s.compact(c.i) }
            #expect(got.failure == c.err, "compact(\(c.i))")
            let raw = s.rawEntries
            #expect(raw[0].index == c.index, "compact(\(c.i)): dummy index")
            #expect(raw[0].term == c.term, "compact(\(c.i)): dummy term")
            #expect(raw.count == c.count, "compact(\(c.i)): entry count")
        }
    }

    @Test func compactDropsTheNewDummysPayload() throws {
        let s = MemoryStorage()
        try s.append([Entry(term: 1, index: 1, data: [1]), Entry(term: 1, index: 2, data: [2]), Entry(term: 2, index: 3, data: [3])])
        try s.compact(2)
        #expect(try s.firstIndex() == 3)
        #expect(try s.term(2) == 1)
        #expect(try s.entries(3, 4, maxSize: .max) == [Entry(term: 2, index: 3, data: [3])])
    }

    @Test func createSnapshot() throws {
        let cs = ConfState(voters: [1, 2, 3])
        let data = Array("data".utf8)
        let cases: [(i: UInt64, want: Result<Snapshot, RaftError>)] = [
            (4, .success(snap(4, 4, confState: cs, data: data))),
            (5, .success(snap(5, 5, confState: cs, data: data))),
            // Beyond lastIndex (etcd panics).
            (6, .failure(.unavailable)),
        ]
        for c in cases {
            let s = MemoryStorage(entries: ents)
            let got = outcome { () throws(RaftError) in try s.createSnapshot(c.i, confState: cs, data: data) }
            #expect(got == c.want, "createSnapshot(\(c.i))")
            if case .success(let made) = got {
                #expect(try s.snapshot() == made, "createSnapshot(\(c.i)) is remembered")
            }
        }
    }

    @Test func createSnapshotOutOfDate() throws {
        let s = MemoryStorage(entries: ents)
        _ = try s.createSnapshot(4, confState: ConfState(voters: [1]), data: [])
        #expect(throws: RaftError.snapshotOutOfDate) { try s.createSnapshot(4, confState: nil, data: []) }
        #expect(throws: RaftError.snapshotOutOfDate) { try s.createSnapshot(3, confState: nil, data: []) }
        // Without a conf state, the recorded one is kept.
        let next = try s.createSnapshot(5, confState: nil, data: [7])
        #expect(next == snap(5, 5, confState: ConfState(voters: [1]), data: [7]))
        #expect(try s.initialState().1 == ConfState(voters: [1]))
        // Creating a snapshot does not compact.
        #expect(try s.firstIndex() == 4)
    }

    @Test func append() {
        let cases: [(entries: [Entry], err: RaftError?, want: [Entry])] = [
            ([ent(3, 3), ent(4, 4), ent(5, 5)], nil, [ent(3, 3), ent(4, 4), ent(5, 5)]),
            ([ent(3, 3), ent(4, 6), ent(5, 6)], nil, [ent(3, 3), ent(4, 6), ent(5, 6)]),
            ([ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)], nil, [ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)]),
            // Truncate incoming entries, truncate the existing entries and append.
            ([ent(2, 3), ent(3, 3), ent(4, 5)], nil, [ent(3, 3), ent(4, 5)]),
            // Truncate the existing entries and append.
            ([ent(4, 5)], nil, [ent(3, 3), ent(4, 5)]),
            // Direct append.
            ([ent(6, 5)], nil, [ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)]),
            // Everything already compacted: ignored.
            ([ent(1, 1), ent(2, 2)], nil, [ent(3, 3), ent(4, 4), ent(5, 5)]),
            // Nothing to append.
            ([], nil, [ent(3, 3), ent(4, 4), ent(5, 5)]),
            // A gap after the last index (etcd panics "missing log entry").
            ([ent(7, 5)], .logGap(lastIndex: 5, appendedFirst: 7), [ent(3, 3), ent(4, 4), ent(5, 5)]),
        ]
        for c in cases {
            let s = MemoryStorage(entries: ents)
            let got = outcome { () throws(RaftError) in try s.append(c.entries) }
            #expect(got.failure == c.err, "append(\(c.entries))")
            #expect(s.rawEntries == c.want, "append(\(c.entries))")
        }
    }

    @Test func applySnapshot() throws {
        let cs = ConfState(voters: [1, 2, 3])
        let data = Array("data".utf8)
        let s = MemoryStorage()
        try s.append([ent(1, 1), ent(2, 1)])
        try s.applySnapshot(snap(4, 4, confState: cs, data: data))
        #expect(try s.snapshot() == snap(4, 4, confState: cs, data: data))
        #expect(try s.firstIndex() == 5)
        #expect(try s.lastIndex() == 4)
        #expect(try s.term(4) == 4)
        #expect(try s.initialState().1 == cs)
        // An older snapshot, or the same one again, is out of date.
        #expect(throws: RaftError.snapshotOutOfDate) { try s.applySnapshot(snap(3, 3, confState: cs, data: data)) }
        #expect(throws: RaftError.snapshotOutOfDate) { try s.applySnapshot(snap(4, 4, confState: cs, data: data)) }
        // The log continues after the snapshot.
        try s.append([ent(5, 4)])
        #expect(try s.entries(5, 6, maxSize: .max) == [ent(5, 4)])
    }

    @Test func hardState() throws {
        let s = MemoryStorage()
        try s.setHardState(HardState(term: 3, vote: 2, commit: 1))
        #expect(s.hardState == HardState(term: 3, vote: 2, commit: 1))
        #expect(try s.initialState().0 == HardState(term: 3, vote: 2, commit: 1))
    }

    @Test func limitSizeKeepsAtLeastOneEntry() {
        let ents = [Entry(term: 1, index: 1, data: [UInt8](repeating: 0, count: 100)), ent(2, 1)]
        #expect(limitSize(ents[...], maxSize: 0).count == 1)
        #expect(limitSize(ents[...], maxSize: ents[0].byteSize).count == 1)
        #expect(limitSize(ents[...], maxSize: ents[0].byteSize + ents[1].byteSize).count == 2)
        #expect(limitSize(ents[...], maxSize: .max).count == 2)
        #expect(limitSize(ents[1...], maxSize: 0).map(\.index) == [2])
        #expect(limitSize([Entry]()[...], maxSize: 0).isEmpty)
        var array = ents
        limitSize(&array, maxSize: 1)
        #expect(array == [ents[0]])
    }

    /// One task appends (and compacts) while others read: MemoryStorage is Sendable and its
    /// lock keeps every read consistent.
    @Test func concurrentAppendAndRead() async throws {
        let s = MemoryStorage()
        let total: UInt64 = 5_000
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for i in 1...total {
                    try s.append([Entry(term: i / 100 + 1, index: i, data: [UInt8(truncatingIfNeeded: i)])])
                    try s.setHardState(HardState(term: i / 100 + 1, commit: i))
                    if i % 1_000 == 0 { try s.compact(i - 500) }
                }
            }
            for _ in 0..<2 {
                group.addTask {
                    var seen: UInt64 = 0
                    while seen < total {
                        let first = try s.firstIndex()
                        let last = try s.lastIndex()
                        #expect(last >= seen, "lastIndex never goes back")
                        seen = last
                        guard last >= first else { continue }
                        do {
                            let got = try s.entries(first, last + 1, maxSize: .max)
                            // Contiguous, and each entry is the one appended at its index.
                            for (k, e) in got.enumerated() {
                                #expect(e.index == got[0].index + UInt64(k))
                                #expect(e.term == e.index / 100 + 1)
                                #expect(e.data == [UInt8(truncatingIfNeeded: e.index)])
                            }
                            _ = try s.term(last)
                        } catch RaftError.compacted {
                            // A compaction ran between the reads: fine.
                        }
                        await Task.yield()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try s.lastIndex() == total)
        #expect(try s.firstIndex() == total - 500 + 1)
        #expect(s.hardState.commit == total)
    }
}
