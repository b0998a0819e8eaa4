import Foundation
import Raft
import RaftTestKit
@testable import RaftWAL
import Testing

/// etcd v3.4 wrote these files: reading them checks this implementation against the
/// reference one, not against itself.
@Suite struct VectorTests {
    struct ReadAllVector: Decodable {
        struct VEntry: Decodable { var term: UInt64; var index: UInt64; var type: Int; var data_hex: String }
        struct VState: Decodable { var term: UInt64; var vote: UInt64; var commit: UInt64 }
        var entries: [VEntry]
        var hardstate: VState
        var metadata_hex: String
    }

    struct SnapshotVector: Decodable {
        struct VConf: Decodable { var voters: [UInt64]?; var learners: [UInt64]?; var auto_leave: Bool? }
        var conf_state: VConf
        var data_hex: String
        var index: UInt64
        var term: UInt64
    }

    func load<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: URL(fileURLWithPath: vectorsDirectory + "/" + name)))
    }

    func check(at snapshot: WALSnapshot, against name: String) throws {
        let expected = try load(name, as: ReadAllVector.self)
        let (root, directory) = copyVectors("wal")
        defer { removeDirectory(root) }
        let wal = try WAL.open(directory: directory, at: snapshot, segmentSize: 16 * 1024)
        let (metadata, hardState, entries) = try wal.readAll()
        #expect(metadata == hexBytes(expected.metadata_hex))
        #expect(hardState == HardState(term: expected.hardstate.term, vote: expected.hardstate.vote, commit: expected.hardstate.commit))
        #expect(entries.count == expected.entries.count)
        let want = expected.entries.map {
            Entry(term: $0.term, index: $0.index, type: $0.type == 0 ? .normal : $0.type == 1 ? .confChange : .confChangeV2,
                  data: hexBytes($0.data_hex))
        }
        #expect(entries == want)
        try wal.close()
    }

    @Test func readAtZero() throws {
        try check(at: WALSnapshot(index: 0, term: 0), against: "wal-read-at-0-0.json")
    }

    @Test func readAtSnapshot150() throws {
        try check(at: WALSnapshot(index: 150, term: 2), against: "wal-read-at-150-2.json")
    }

    @Test func unknownSnapshotIsRefused() throws {
        let (root, directory) = copyVectors("wal")
        defer { removeDirectory(root) }
        let wal = try WAL.open(directory: directory, at: WALSnapshot(index: 120, term: 2))
        #expect(throws: WALError.snapshotNotFound(WALSnapshot(index: 120, term: 2))) { try wal.readAll() }
        let mismatch = try WAL.open(directory: directory, at: WALSnapshot(index: 150, term: 3))
        #expect(throws: WALError.snapshotMismatch(WALSnapshot(index: 150, term: 3), walTerm: 2)) { try mismatch.readAll() }
    }

    /// Every record of etcd's files passes the framing and chained-CRC checks, read in place.
    @Test func readerChecksEveryRecord() throws {
        var reader = try WALReader(directory: vectorsDirectory + "/wal")
        var count = 0
        var types: [WALRecordType: Int] = [:]
        while let record = try reader.next() {
            count += 1
            types[record.type, default: 0] += 1
            #expect(record.crcChecked || (count == 1 && record.type == .crc))
        }
        #expect(types[.crc] == 2 && types[.metadata] == 2 && types[.snapshot] == 2)
        #expect(types[.entry] == 305)
        guard case .clean(let segment, _) = reader.end else {
            Issue.record("expected a clean end, got \(String(describing: reader.end))")
            return
        }
        #expect(segment == "0000000000000001-00000000000000dc.wal")
        #expect(try WAL.validSnapshots(directory: vectorsDirectory + "/wal") == [WALSnapshot(), WALSnapshot(index: 150, term: 2)])
    }

    /// Writing the same saves through this WAL gives etcd's bytes exactly: same records, same
    /// framing and padding, same chained CRC, same cut point and segment name.
    @Test func writerReproducesEtcdBytes() throws {
        var reader = try WALReader(directory: vectorsDirectory + "/wal")
        let fs = SimulatedFileSystem()
        try fs.makeDirectory("/data")
        var wal: WAL?
        var pending: [Entry] = []
        var segment = ""
        var position = 0
        while let record = try reader.next() {
            if record.segment != segment { segment = record.segment; position = 0 }
            position += 1
            // Segment headers are the WAL's own: crc, metadata, then the empty snapshot (first
            // segment) or the last HardState (a cut one).
            if position <= 3 {
                if wal == nil, case .metadata(let metadata) = record.payload {
                    wal = try WAL.create(directory: "/data/wal", metadata: metadata, fileSystem: fs, segmentSize: 16 * 1024)
                }
                continue
            }
            switch record.payload {
            case .snapshot(let snapshot):
                try wal!.save(hardState: HardState(), entries: pending)
                pending = []
                try wal!.saveSnapshot(snapshot)
            case .entry(let entry):
                pending.append(entry)
            case .state(let state):
                try wal!.save(hardState: state, entries: pending)
                pending = []
            case .metadata, .crc:
                Issue.record("unexpected \(record.type) record at \(record.segment):\(record.offset)")
            }
        }
        #expect(pending.isEmpty)
        for name in ["0000000000000000-0000000000000000.wal", "0000000000000001-00000000000000dc.wal"] {
            let theirs = try [UInt8](Data(contentsOf: URL(fileURLWithPath: vectorsDirectory + "/wal/" + name)))
            let ours = fs.contents("/data/wal/" + name) ?? []
            let firstDifference = (0..<min(ours.count, theirs.count)).first { ours[$0] != theirs[$0] } ?? min(ours.count, theirs.count)
            #expect(ours.count == theirs.count && firstDifference == ours.count, "\(name) differs from byte \(firstDifference): \(ours.count) vs \(theirs.count) bytes; files \(fs.names(in: "/data/wal"))")
        }
    }

    @Test func snapshotFile() throws {
        let expected = try load("snap-newest.json", as: SnapshotVector.self)
        let files = SnapshotFiles(directory: vectorsDirectory + "/snap")
        let snapshot = try #require(try files.loadNewest())
        #expect(snapshot.data == hexBytes(expected.data_hex))
        #expect(snapshot.metadata.index == expected.index && snapshot.metadata.term == expected.term)
        #expect(snapshot.metadata.confState == ConfState(voters: expected.conf_state.voters ?? [], learners: expected.conf_state.learners ?? [],
                                                         autoLeave: expected.conf_state.auto_leave ?? false))
        // And ours is byte for byte etcd's file.
        let fs = SimulatedFileSystem()
        try fs.makeDirectory("/snap")
        try SnapshotFiles(directory: "/snap", fileSystem: fs).save(snapshot)
        let name = "0000000000000002-0000000000000096.snap"
        #expect(fs.contents("/snap/" + name) == (try [UInt8](Data(contentsOf: URL(fileURLWithPath: vectorsDirectory + "/snap/" + name)))))
    }
}

@Suite struct CRC32CTests {
    @Test func checkValues() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum(Array(0..<32)) == 0x46DD_794E)
    }

    /// Slicing-by-8 agrees with the bytewise definition at every length and split.
    @Test func chainingAndSlicing() {
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7) }
        func bytewise(_ data: ArraySlice<UInt8>) -> UInt32 {
            var c: UInt32 = ~0
            for b in data {
                c ^= UInt32(b)
                for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            }
            return ~c
        }
        for length in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 255, 300] {
            let whole = CRC32C.checksum(bytes[..<length])
            #expect(whole == bytewise(bytes[..<length]))
            for split in stride(from: 0, through: length, by: max(1, length / 5)) {
                #expect(CRC32C.update(CRC32C.checksum(bytes[..<split]), with: bytes[split..<length]) == whole)
            }
        }
    }

    /// The CPU's instructions (three interleaved streams of 1 KiB folded together, then 8 bytes
    /// and single bytes) agree with the tables at every length around the block sizes, from
    /// unaligned starts, continuing a running checksum.
    @Test func hardwareAgreesWithTheTables() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<20_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let lengths = [0, 1, 7, 8, 9, 1023, 1024, 3071, 3072, 3073, 3080, 6143, 6144, 6145, 9216, 12_345, 19_990]
        bytes.withUnsafeBytes { all in
            for length in lengths {
                for start in [0, 1, 3, 5] where start + length <= all.count {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<start + length])
                    for seed: UInt32 in [0, 0xDEAD_BEEF] {
                        #expect(CRC32C.update(seed, buffer: slice) == CRC32C.softwareUpdate(seed, buffer: slice), "length \(length) start \(start)")
                    }
                }
            }
        }
        // Where the CPU has them, the instructions are what `update` uses.
        #if arch(x86_64) || arch(arm64)
        #expect(CRC32C.hardwareAvailable)
        #endif
    }
}
