import Foundation
import Raft
import RaftTestKit
import RaftWAL
import Testing

/// Snapshot files are written from the snapshot's data between a framing head and tail (never
/// assembled in memory): the file must still be `snappb.snapshot{crc, raftpb.Snapshot}` exactly.
@Suite struct SnapshotFileTests {
    /// The file etcd would write: field 1 the CRC-32C of the raftpb encoding, field 2 that
    /// encoding.
    static func expectedFile(_ snapshot: Snapshot) -> [UInt8] {
        let encoded = snapshot.serializedBytes()
        var file: [UInt8] = [0x08]
        Varint.append(UInt64(CRC32C.checksum(encoded)), to: &file)
        file.append(0x12)
        Varint.append(UInt64(encoded.count), to: &file)
        return file + encoded
    }

    static func snapshot(dataCount: Int) -> Snapshot {
        let data = (0..<dataCount).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let confState = ConfState(voters: [1, 2, 3], learners: [4])
        return Snapshot(data: data, metadata: SnapshotMetadata(confState: confState, index: 9_000, term: 7))
    }

    /// Sizes around the framing's varint widths and the 1 MiB write slices: empty data (no data
    /// field), one byte, 127/128 (one- and two-byte lengths), a slice exactly, and several
    /// slices with a remainder.
    static let sizes = [0, 1, 127, 128, 1 << 20, (5 << 19) + 3]

    @Test(arguments: sizes) func onDiskMatchesEtcdsEncoding(dataCount: Int) throws {
        let directory = makeTemporaryDirectory("snapfile")
        defer { removeDirectory(directory) }
        let snapshot = Self.snapshot(dataCount: dataCount)
        let files = SnapshotFiles(directory: directory)
        try files.save(snapshot)

        let name = SnapshotFiles.fileName(term: 7, index: 9_000)
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
        #expect(written == Self.expectedFile(snapshot))
        #expect(try files.load(name) == snapshot)
        // No temporary file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == [name])
    }

    /// A file system that only writes arrays (the protocol's default for the buffer write)
    /// writes the same file.
    @Test func fileSystemWithoutBufferWritesTheSameFile() throws {
        let snapshot = Self.snapshot(dataCount: (3 << 19) + 5)
        let fs = SimulatedFileSystem()
        try fs.makeDirectory("/snap")
        try SnapshotFiles(directory: "/snap", fileSystem: fs).save(snapshot)
        #expect(fs.contents("/snap/" + SnapshotFiles.fileName(term: 7, index: 9_000)) == Self.expectedFile(snapshot))
    }
}
