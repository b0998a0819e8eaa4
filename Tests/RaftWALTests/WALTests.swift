import Raft
import RaftTestKit
import RaftWAL
import Testing

@Suite struct WALTests {
    func makeFileSystem() throws -> SimulatedFileSystem {
        let fs = SimulatedFileSystem()
        try fs.makeDirectory("/data")
        return fs
    }

    @Test func roundTripAcrossSegmentsWithOverwrites() throws {
        let fs = try makeFileSystem()
        let wal = try WAL.create(directory: "/data/wal", metadata: Array("node-1".utf8), fileSystem: fs, segmentSize: 2048)
        var workload = Workload(seed: 42)
        var snapshot = WALSnapshot()
        for round in 0..<150 {
            let (state, batch) = workload.next()
            try wal.save(hardState: state, entries: batch)
            if round == 100 {
                let index = workload.model.hardState.commit
                snapshot = WALSnapshot(index: index, term: workload.model.entries[Int(index) - 1].term)
                try wal.saveSnapshot(snapshot)
            }
        }
        try wal.close()
        let segments = fs.names(in: "/data/wal").filter { $0.hasSuffix(".wal") }
        #expect(segments.count >= 4)
        #expect(!fs.names(in: "/data/wal").contains("segment.wal.tmp"), "close removes the prepared segment")

        let reopened = try WAL.open(directory: "/data/wal", at: WALSnapshot(), fileSystem: fs, segmentSize: 2048)
        let (metadata, state, entries) = try reopened.readAll()
        #expect(metadata == Array("node-1".utf8))
        #expect(state == workload.model.hardState)
        #expect(entries == workload.model.entries)

        // Appending continues after the last record, and survives another reopen.
        for _ in 0..<40 {
            let (state, batch) = workload.next()
            try reopened.save(hardState: state, entries: batch)
        }
        try reopened.close()
        let atSnapshot = try WAL.open(directory: "/data/wal", at: snapshot, fileSystem: fs, segmentSize: 2048)
        let (_, state2, entries2) = try atSnapshot.readAll()
        #expect(state2 == workload.model.hardState)
        #expect(entries2 == workload.model.after(snapshot.index))
        #expect(try WAL.validSnapshots(directory: "/data/wal", fileSystem: fs) == [WALSnapshot(), snapshot])
    }

    /// One write and at most one fdatasync per save; none when etcd's MustSync says so.
    @Test func groupCommitAndMustSync() throws {
        let fs = try makeFileSystem()
        let wal = try WAL.create(directory: "/data/wal", metadata: [], fileSystem: fs, segmentSize: 1 << 20)
        func counting(_ body: () throws -> Void) rethrows -> (writes: Int, syncs: Int) {
            let (w, s) = (fs.count(.write), fs.count(.fdatasync))
            try body()
            return (fs.count(.write) - w, fs.count(.fdatasync) - s)
        }
        #expect(try counting { try wal.save(hardState: HardState(term: 1, vote: 1), entries: entries(1...64)) } == (1, 1))
        #expect(try counting { try wal.save(hardState: HardState(term: 1, vote: 1, commit: 64), entries: []) } == (1, 0))
        #expect(try counting { try wal.save(hardState: HardState(), entries: []) } == (0, 0))
        #expect(try counting { try wal.save(hardState: HardState(term: 2, vote: 0, commit: 64), entries: []) } == (1, 1))
        #expect(try counting { try wal.save(hardState: HardState(term: 2, vote: 0, commit: 64), entries: [entry(65, term: 2)]) } == (1, 1))
        #expect(try counting { try wal.saveSnapshot(WALSnapshot(index: 60, term: 1)) } == (1, 1))
    }

    @Test func purgeKeepsWhatTheSnapshotNeeds() throws {
        let fs = try makeFileSystem()
        let wal = try WAL.create(directory: "/data/wal", metadata: [], fileSystem: fs, segmentSize: 1024)
        var workload = Workload(seed: 3)
        for _ in 0..<120 {
            let (state, batch) = workload.next()
            try wal.save(hardState: state, entries: batch)
        }
        let all = try wal.segmentNames()
        #expect(all.count > 6)
        let index = all[all.count - 3].index + 1  // inside the third segment from the end
        let snapshot = WALSnapshot(index: index, term: workload.model.entries[Int(index) - 1].term)
        try wal.saveSnapshot(snapshot)
        #expect(try wal.purgeSegments(snapshotIndex: index, keep: 100).isEmpty, "keep bounds the purge")
        let removed = try wal.purgeSegments(snapshotIndex: index, keep: 1)
        #expect(removed == Array(all[..<(all.count - 3)]))
        #expect(try wal.segmentNames().first == all[all.count - 3])
        try wal.close()
        let reopened = try WAL.open(directory: "/data/wal", at: snapshot, fileSystem: fs, segmentSize: 1024)
        #expect(try reopened.readAll().entries == workload.model.after(index))
        #expect(throws: WALError.noSegment(directory: "/data/wal", snapshotIndex: 1)) {
            try WAL.open(directory: "/data/wal", at: WALSnapshot(index: 1, term: 1), fileSystem: fs)
        }
    }

    @Test func misuseAndMissingPieces() throws {
        let fs = try makeFileSystem()
        #expect(throws: WALError.notFound(directory: "/data/wal")) { try WAL.open(directory: "/data/wal", at: WALSnapshot(), fileSystem: fs) }
        let wal = try WAL.create(directory: "/data/wal", metadata: [], fileSystem: fs, segmentSize: 512)
        #expect(throws: WALError.alreadyExists(directory: "/data/wal")) { try WAL.create(directory: "/data/wal", metadata: [], fileSystem: fs) }
        for i in 1...30 as ClosedRange<UInt64> { try wal.save(hardState: HardState(term: 1, commit: i), entries: [entry(i)]) }
        try wal.close()
        #expect(throws: WALError.misuse("the WAL is closed")) { try wal.save(hardState: HardState(term: 1), entries: [entry(31)]) }
        let opened = try WAL.open(directory: "/data/wal", at: WALSnapshot(), fileSystem: fs, segmentSize: 512)
        #expect(throws: WALError.self) { try opened.save(hardState: HardState(term: 1), entries: [entry(31)]) }
        // A missing middle segment is named.
        let names = fs.names(in: "/data/wal").filter { $0.hasSuffix(".wal") }
        #expect(names.count >= 3)
        try fs.remove("/data/wal/" + names[1])
        #expect(throws: WALError.missingSegment(directory: "/data/wal", after: names[0], next: names[2])) {
            try WAL.open(directory: "/data/wal", at: WALSnapshot(), fileSystem: fs)
        }
    }
}
