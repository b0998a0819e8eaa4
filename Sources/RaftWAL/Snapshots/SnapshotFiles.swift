import Logging
import Raft

/// etcd's snapshot files (`snap`): one file per snapshot, `%016x-%016x.snap` (term, index),
/// holding a `snappb.snapshot` = 1: crc (CRC-32C of data), 2: data (an encoded raftpb
/// Snapshot).
///
/// Saving writes a temporary file, syncs it, renames it into place and syncs the directory:
/// a snapshot file either exists whole or not at all. Loading takes the newest one that
/// checks out and renames damaged ones `*.broken`, so they are skipped next time and left for
/// inspection. A value type over the directory; its methods may be called from any thread, but
/// not concurrently on the same directory.
public struct SnapshotFiles: Sendable {
    public let directory: String
    let fileSystem: any WALFileSystem
    let logger: Logger

    public init(
        directory: String, fileSystem: any WALFileSystem = POSIXFileSystem(),
        logger: Logger = Logger(label: "raft.snap", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.directory = directory
        self.fileSystem = fileSystem
        self.logger = logger
    }

    /// Snapshot files are written and flushed this many bytes at a time.
    static let flushSlice = 1 << 20

    /// `%016x-%016x.snap` for (term, index).
    public static func fileName(term: UInt64, index: UInt64) -> String {
        "\(hex16(term))-\(hex16(index)).snap"
    }

    /// Writes `snapshot` durably. An empty snapshot (index 0) is not written.
    ///
    /// The file is written from the snapshot's own data, framed by a few bytes before and
    /// after: the raftpb encoding and the snappb record around it are never assembled in
    /// memory. A state of several megabytes was copied three times over (encoding, record,
    /// slices), each copy into fresh pages that the kernel had to fault in: most of a
    /// snapshot's cost once its state is encoded.
    public func save(_ snapshot: Snapshot) throws(WALError) {
        if snapshot.isEmpty { return }
        let frame = SnapshotFileFrame(snapshot)
        let name = Self.fileName(term: snapshot.metadata.term, index: snapshot.metadata.index)
        let temporary = joinPath(directory, name + ".tmp")
        let file = try fileSystem.open(temporary, .createOrTruncate)
        do {
            try fileSystem.write(file, frame.head, at: 0)
            var offset = Int64(frame.head.count)
            // In slices, each flushed: one big flush at the end would fill the disk's queue,
            // and the WAL's fdatasync, waiting behind it, would stall every write meanwhile.
            // (withUnsafeBytes rethrows untyped: the error comes out as a value.)
            let written = snapshot.data.withUnsafeBytes { data in
                Result { () throws(WALError) in
                    var start = 0
                    while start < data.count {
                        let end = min(start + Self.flushSlice, data.count)
                        try fileSystem.write(file, UnsafeRawBufferPointer(rebasing: data[start..<end]), at: offset)
                        offset += Int64(end - start)
                        start = end
                        if start < data.count { try fileSystem.fdatasync(file) }
                    }
                }
            }
            try written.get()
            try fileSystem.write(file, frame.tail, at: offset)
            try fileSystem.fsync(file)
        } catch {
            fileSystem.close(file)
            try? fileSystem.remove(temporary)
            throw error
        }
        fileSystem.close(file)
        try fileSystem.rename(temporary, to: joinPath(directory, name))
        try fileSystem.syncDirectory(directory)
    }

    /// The snapshot file names, newest first.
    public func names() throws(WALError) -> [String] {
        try fileSystem.listDirectory(directory)
            .filter { parseHexPair($0, suffix: ".snap") != nil }
            .sorted(by: >)  // fixed-width hex: lexical order is (term, index) order
    }

    /// The newest snapshot that loads and checks out, nil when there is none. With
    /// `available` (the WAL's `validSnapshots`), only snapshots the WAL recorded are
    /// considered: a newer file whose WAL record never made it is skipped, not broken.
    /// A damaged file is renamed `<name>.broken` and the next older one tried.
    public func loadNewest(available: [WALSnapshot]? = nil) throws(WALError) -> Snapshot? {
        let usable = available.map { Set($0) }
        for name in try names() {
            if let usable {
                let (term, index) = parseHexPair(name, suffix: ".snap")!
                if !usable.contains(WALSnapshot(index: index, term: term)) { continue }
            }
            do {
                return try load(name)
            } catch let error where isDamage(error) {
                logger.warning("snapshot file is damaged; renaming it .broken and trying an older one",
                               metadata: ["file": "\(name)", "error": "\(error)"])
                let path = joinPath(directory, name)
                try fileSystem.rename(path, to: path + ".broken")
                try fileSystem.syncDirectory(directory)
            }
        }
        return nil
    }

    /// Reads and checks one snapshot file.
    public func load(_ name: String) throws(WALError) -> Snapshot {
        let content = try fileSystem.readFile(joinPath(directory, name))
        func bad(_ reason: String) -> WALError { .badSnapshotFile(file: name, reason: reason) }
        if content.isEmpty { throw bad("the file is empty") }
        var scanner = ProtoScanner(content)
        var crc: UInt32?
        var dataRange: Range<Int>?
        var malformed = false
        while let (field, wireType) = scanner.tag(malformed: &malformed) {
            switch (field, wireType) {
            case (1, 0):
                guard let v = scanner.varint(), v <= UInt64(UInt32.max) else { throw bad("malformed crc field") }
                crc = UInt32(v)
            case (2, 2):
                guard let r = scanner.lengthDelimited() else { throw bad("the data field runs past the end of the file") }
                dataRange = r
            default:
                guard scanner.skip(wireType: wireType) else { throw bad("malformed protobuf") }
            }
        }
        if malformed { throw bad("malformed protobuf") }
        guard let dataRange, !dataRange.isEmpty else { throw bad("no snapshot data") }
        let data = Array(content[dataRange])
        let computed = CRC32C.checksum(data)
        guard crc == computed else {
            throw bad("CRC mismatch (stored \(crc.map { "0x" + String($0, radix: 16) } ?? "none"), computed 0x\(String(computed, radix: 16)))")
        }
        let snapshot: Snapshot
        do { snapshot = try Snapshot(serializedBytes: data) } catch {
            throw bad("the data is not a raftpb Snapshot (\(error))")
        }
        if let (term, index) = parseHexPair(name, suffix: ".snap"),
           term != snapshot.metadata.term || index != snapshot.metadata.index {
            throw bad("it holds index \(snapshot.metadata.index), term \(snapshot.metadata.term), not what its name says")
        }
        return snapshot
    }

    /// Removes the oldest snapshot files beyond the newest `keep`, and leftover temporary
    /// files. Returns the removed names.
    @discardableResult
    public func purge(keep: Int) throws(WALError) -> [String] {
        var removed: [String] = []
        for name in try names().dropFirst(max(keep, 1)) {
            try fileSystem.remove(joinPath(directory, name))
            removed.append(name)
        }
        for name in try fileSystem.listDirectory(directory) where name.hasSuffix(".snap.tmp") {
            try fileSystem.remove(joinPath(directory, name))
            removed.append(name)
        }
        if !removed.isEmpty { try fileSystem.syncDirectory(directory) }
        return removed
    }

    private func isDamage(_ error: WALError) -> Bool {
        if case .badSnapshotFile = error { return true }
        return false
    }
}

/// The bytes of a snapshot file around the snapshot's data: the file is `head`, then
/// `snapshot.data`, then `tail`, which is `snappb.snapshot{crc, data: raftpb.Snapshot}` byte for
/// byte (raftpb writes `data` (1) before `metadata` (2), and no `data` field when it is empty).
struct SnapshotFileFrame {
    /// snappb's crc and data field headers, then raftpb's data field header.
    let head: [UInt8]
    /// raftpb's metadata field.
    let tail: [UInt8]

    init(_ snapshot: Snapshot) {
        var dataField: [UInt8] = []
        if !snapshot.data.isEmpty {
            dataField.append(0x0A)
            Varint.append(UInt64(snapshot.data.count), to: &dataField)
        }
        let metadata = snapshot.metadata.serializedBytes()
        var tail: [UInt8] = [0x12]
        Varint.append(UInt64(metadata.count), to: &tail)
        tail.append(contentsOf: metadata)

        // The checksum covers the raftpb encoding: the data field's header, the data, the metadata.
        var crc = CRC32C.update(0, with: dataField)
        crc = CRC32C.update(crc, with: snapshot.data)
        crc = CRC32C.update(crc, with: tail)

        var head: [UInt8] = [0x08]
        Varint.append(UInt64(crc), to: &head)
        head.append(0x12)
        Varint.append(UInt64(dataField.count + snapshot.data.count + tail.count), to: &head)
        head.append(contentsOf: dataField)
        self.head = head
        self.tail = tail
    }
}
