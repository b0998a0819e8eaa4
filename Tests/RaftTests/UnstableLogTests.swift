import Testing
@testable import Raft

/// Ports of etcd's log_unstable_test.go.
@Suite struct UnstableLogTests {
    @Test func maybeFirstIndex() {
        let cases: [(entries: [Entry], offset: UInt64, snapshot: Snapshot?, want: UInt64?)] = [
            // No snapshot.
            ([ent(5, 1)], 5, nil, nil),
            ([], 0, nil, nil),
            // Has a snapshot.
            ([ent(5, 1)], 5, snap(4, 1), 5),
            ([], 5, snap(4, 1), 5),
        ]
        for (i, c) in cases.enumerated() {
            let u = UnstableLog(snapshot: c.snapshot, entries: c.entries, offset: c.offset)
            #expect(u.maybeFirstIndex() == c.want, "case \(i)")
        }
    }

    @Test func maybeLastIndex() {
        let cases: [(entries: [Entry], offset: UInt64, snapshot: Snapshot?, want: UInt64?)] = [
            // Last in entries.
            ([ent(5, 1)], 5, nil, 5),
            ([ent(5, 1)], 5, snap(4, 1), 5),
            // Last in the snapshot.
            ([], 5, snap(4, 1), 4),
            // Empty unstable log.
            ([], 0, nil, nil),
        ]
        for (i, c) in cases.enumerated() {
            let u = UnstableLog(snapshot: c.snapshot, entries: c.entries, offset: c.offset)
            #expect(u.maybeLastIndex() == c.want, "case \(i)")
        }
    }

    @Test func maybeTerm() {
        let cases: [(entries: [Entry], offset: UInt64, snapshot: Snapshot?, index: UInt64, want: UInt64?)] = [
            // Term from entries.
            ([ent(5, 1)], 5, nil, 5, 1),
            ([ent(5, 1)], 5, nil, 6, nil),
            ([ent(5, 1)], 5, nil, 4, nil),
            ([ent(5, 1)], 5, snap(4, 1), 5, 1),
            ([ent(5, 1)], 5, snap(4, 1), 6, nil),
            // Term from the snapshot.
            ([ent(5, 1)], 5, snap(4, 1), 4, 1),
            ([ent(5, 1)], 5, snap(4, 1), 3, nil),
            ([], 5, snap(4, 1), 5, nil),
            ([], 5, snap(4, 1), 4, 1),
            ([], 0, nil, 5, nil),
        ]
        for (i, c) in cases.enumerated() {
            let u = UnstableLog(snapshot: c.snapshot, entries: c.entries, offset: c.offset)
            #expect(u.maybeTerm(c.index) == c.want, "case \(i): maybeTerm(\(c.index))")
        }
    }

    @Test func restore() {
        var u = UnstableLog(snapshot: snap(4, 1), entries: [ent(5, 1)], offset: 5)
        let s = snap(6, 2)
        u.restore(s)
        #expect(u.offset == s.metadata.index + 1)
        #expect(u.entries.isEmpty)
        #expect(u.snapshot == s)
    }

    @Test func stableTo() {
        let cases: [(entries: [Entry], offset: UInt64, snapshot: Snapshot?, index: UInt64, term: UInt64, wantOffset: UInt64, wantCount: Int)] = [
            ([], 0, nil, 5, 1, 0, 0),
            // Stable to the first entry.
            ([ent(5, 1)], 5, nil, 5, 1, 6, 0),
            ([ent(5, 1), ent(6, 1)], 5, nil, 5, 1, 6, 1),
            // Stable to the first entry, but the term mismatches.
            ([ent(6, 2)], 6, nil, 6, 1, 6, 1),
            // Stable to an old entry.
            ([ent(5, 1)], 5, nil, 4, 1, 5, 1),
            ([ent(5, 1)], 5, nil, 4, 2, 5, 1),
            // With a snapshot: stable to the first entry.
            ([ent(5, 1)], 5, snap(4, 1), 5, 1, 6, 0),
            ([ent(5, 1), ent(6, 1)], 5, snap(4, 1), 5, 1, 6, 1),
            // Stable to the first entry, but the term mismatches.
            ([ent(6, 2)], 6, snap(5, 1), 6, 1, 6, 1),
            // Stable to the snapshot: the entries are untouched.
            ([ent(5, 1)], 5, snap(4, 1), 4, 1, 5, 1),
            // Stable to an old entry.
            ([ent(5, 2)], 5, snap(4, 2), 4, 1, 5, 1),
        ]
        for (i, c) in cases.enumerated() {
            var u = UnstableLog(snapshot: c.snapshot, entries: c.entries, offset: c.offset)
            u.stableTo(index: c.index, term: c.term)
            #expect(u.offset == c.wantOffset, "case \(i): offset")
            #expect(u.entries.count == c.wantCount, "case \(i): entry count")
        }
    }

    @Test func stableToLetsGoOfTheBufferTheReadyShares() {
        var u = UnstableLog(offset: 1)
        u.truncateAndAppend([ent(1, 1), ent(2, 1)])
        let handedOut = u.entries  // what a Ready carries
        u.stableTo(index: 2, term: 1)
        #expect(u.entries.isEmpty)
        #expect(u.offset == 3)
        #expect(handedOut == [ent(1, 1), ent(2, 1)], "the Ready's entries are untouched")
        u.truncateAndAppend([ent(3, 1)])
        #expect(u.entries == [ent(3, 1)])
        #expect(handedOut == [ent(1, 1), ent(2, 1)])
    }

    @Test func appendingToAnEmptyTailAdoptsTheCallersArray() {
        var u = UnstableLog(offset: 5)
        let proposal = [ent(5, 2), ent(6, 2)]
        u.truncateAndAppend(proposal)
        let shared = u.entries.withUnsafeBufferPointer { $0.baseAddress } == proposal.withUnsafeBufferPointer { $0.baseAddress }
        #expect(shared, "no copy of a proposal into an empty tail")
        // Writing to the tail later must not change the caller's array.
        u.truncateAndAppend([ent(6, 3)])
        #expect(u.entries == [ent(5, 2), ent(6, 3)])
        #expect(proposal == [ent(5, 2), ent(6, 2)])
    }

    @Test func stableSnapTo() {
        var u = UnstableLog(snapshot: snap(4, 1), entries: [ent(5, 1)], offset: 5)
        u.stableSnapTo(3)
        #expect(u.snapshot == snap(4, 1), "another index leaves the snapshot")
        u.stableSnapTo(4)
        #expect(u.snapshot == nil)
        #expect(u.entries == [ent(5, 1)])
    }

    @Test func truncateAndAppend() {
        let cases: [(entries: [Entry], offset: UInt64, snapshot: Snapshot?, toAppend: [Entry], wantOffset: UInt64, want: [Entry])] = [
            // Append to the end.
            ([ent(5, 1)], 5, nil, [ent(6, 1), ent(7, 1)], 5, [ent(5, 1), ent(6, 1), ent(7, 1)]),
            // Replace the unstable entries.
            ([ent(5, 1)], 5, nil, [ent(5, 2), ent(6, 2)], 5, [ent(5, 2), ent(6, 2)]),
            ([ent(5, 1)], 5, nil, [ent(4, 2), ent(5, 2), ent(6, 2)], 4, [ent(4, 2), ent(5, 2), ent(6, 2)]),
            // Truncate the existing entries and append.
            ([ent(5, 1), ent(6, 1), ent(7, 1)], 5, nil, [ent(6, 2)], 5, [ent(5, 1), ent(6, 2)]),
            ([ent(5, 1), ent(6, 1), ent(7, 1)], 5, nil, [ent(7, 2), ent(8, 2)], 5, [ent(5, 1), ent(6, 1), ent(7, 2), ent(8, 2)]),
        ]
        for (i, c) in cases.enumerated() {
            var u = UnstableLog(snapshot: c.snapshot, entries: c.entries, offset: c.offset)
            u.truncateAndAppend(c.toAppend)
            #expect(u.offset == c.wantOffset, "case \(i): offset")
            #expect(u.entries == c.want, "case \(i): entries")
        }
    }

    @Test func slice() {
        let u = UnstableLog(entries: [ent(5, 1), ent(6, 1), ent(7, 2)], offset: 5)
        #expect(Array(u.slice(5, 8)) == [ent(5, 1), ent(6, 1), ent(7, 2)])
        #expect(Array(u.slice(6, 7)) == [ent(6, 1)])
        #expect(u.slice(8, 8).isEmpty)
        #expect(u.slice(5, 5).isEmpty)
    }
}
