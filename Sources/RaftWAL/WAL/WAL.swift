import Logging
import Raft

/// etcd's write-ahead log (v3.4 format, Docs/FORMATS.md): a directory of segment files holding the
/// metadata, HardStates, entries and snapshot markers of a raft node, in order, under a
/// chained CRC-32C.
///
/// Life cycle: `create` a new WAL (ready to append), or `open` an existing one at a snapshot,
/// then `readAll()` (the state to restart from; it also repairs a torn tail) — after that,
/// `save`/`saveSnapshot` append. `close()` when done.
///
/// Ownership: a `WAL` is a reference with one owner and is not thread-safe: call it from one
/// thread or task at a time (`DiskStorage` serialises its calls under a lock). Nothing stops
/// two processes from opening the same directory; the caller must not.
///
/// Failure: an error while writing or syncing is fatal. The WAL keeps the first error and every
/// later call throws `WALError.unusable`; the process should restart and recover from what
/// reached the disk. Retrying an fsync after a failure is not safe: Linux may have dropped the
/// dirty pages and report the next fsync as a success.
public final class WAL {
    public static let defaultSegmentSize: Int64 = 64 * 1024 * 1024

    public let directory: String
    public let segmentSize: Int64
    let fileSystem: any WALFileSystem
    let logger: Logger

    enum Phase {
        /// Opened at a snapshot, waiting for `readAll`.
        case reading(start: WALSnapshot, segments: [SegmentName])
        case appending(Tail)
        case failed(WALError)
        case closed
    }

    struct Tail {
        var file: WALFileHandle
        var name: SegmentName
        /// Where the next record goes.
        var offset: Int64
        /// The offset as of the last sync. The cut decision looks at this one, not `offset`:
        /// etcd buffers its writes until a sync and decides on the file position, so it cuts
        /// one batch after the size is reached — and cutting where etcd cuts keeps the files
        /// byte for byte what etcd writes.
        var syncedOffset: Int64
    }

    var phase: Phase
    /// The metadata given at creation (known after `readAll` for an opened WAL).
    public private(set) var metadata: [UInt8] = []
    /// The running CRC after the last record written.
    var crc: UInt32 = 0
    /// The index of the last entry written (or of a later snapshot); names the next segment.
    public private(set) var lastIndex: UInt64 = 0
    /// The last HardState written: decides `mustSync` and heads every new segment.
    public private(set) var hardState = HardState()
    /// The next segment, created and preallocated under a temporary name ahead of the cut.
    var prepared: WALFileHandle?
    /// Reused encoding buffers: one write per save.
    var buffer: [UInt8] = []
    var scratch: [UInt8] = []

    static let preparedName = "segment.wal.tmp"

    init(directory: String, segmentSize: Int64, fileSystem: any WALFileSystem, logger: Logger, phase: Phase) {
        self.directory = directory
        self.segmentSize = segmentSize
        self.fileSystem = fileSystem
        self.logger = logger
        self.phase = phase
    }

    deinit {
        if case .appending(let tail) = phase { fileSystem.close(tail.file) }
        if let prepared { fileSystem.close(prepared) }
    }

    /// Whether `directory` holds WAL segments.
    public static func exists(directory: String, fileSystem: any WALFileSystem = POSIXFileSystem()) -> Bool {
        guard fileSystem.exists(directory), let names = try? fileSystem.listDirectory(directory) else { return false }
        return names.contains { $0.hasSuffix(".wal") }
    }

    // MARK: Creating

    /// Creates a WAL in `directory` (which must not hold one): the first segment, with the
    /// metadata and an empty snapshot record, is written in `directory.tmp` and renamed into
    /// place, so a crash leaves either no WAL or a complete one.
    public static func create(
        directory: String, metadata: [UInt8], fileSystem: any WALFileSystem = POSIXFileSystem(),
        segmentSize: Int64 = defaultSegmentSize,
        logger: Logger = Logger(label: "raft.wal", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws(WALError) -> WAL {
        precondition(segmentSize > 0, "segmentSize must be positive")
        if exists(directory: directory, fileSystem: fileSystem) { throw WALError.alreadyExists(directory: directory) }
        let temporary = directory + ".tmp"
        if fileSystem.exists(temporary) {
            // Left by a crash during an earlier create: nothing in it was ever used.
            for name in try fileSystem.listDirectory(temporary) { try fileSystem.remove(joinPath(temporary, name)) }
            try fileSystem.removeDirectory(temporary)
        }
        try fileSystem.makeDirectory(temporary)
        let first = SegmentName(sequence: 0, index: 0)
        let file = try fileSystem.open(joinPath(temporary, first.description), .createNew)
        let wal = WAL(
            directory: directory, segmentSize: segmentSize, fileSystem: fileSystem, logger: logger,
            phase: .failed(.misuse("being created")))
        do {
            try fileSystem.preallocate(file, size: segmentSize)
            wal.metadata = metadata
            wal.buffer.removeAll(keepingCapacity: true)
            wal.encodeCRCRecord()
            wal.encode(.metadata, metadata)
            wal.encode(.snapshot, WALSnapshot().serializedBytes())
            try fileSystem.write(file, wal.buffer, at: 0)
            try fileSystem.fdatasync(file)
            try fileSystem.syncDirectory(temporary)
            if fileSystem.exists(directory) { try fileSystem.removeDirectory(directory) }  // empty: no .wal in it
            try fileSystem.rename(temporary, to: directory)
            try fileSystem.syncDirectory(parentDirectory(of: directory))
            let path = joinPath(directory, first.description)
            wal.phase = .appending(Tail(
                file: WALFileHandle(descriptor: file.descriptor, path: path), name: first,
                offset: Int64(wal.buffer.count), syncedOffset: Int64(wal.buffer.count)))
            try wal.prepareNextSegment()
        } catch {
            if case .appending(let tail) = wal.phase { fileSystem.close(tail.file) } else { fileSystem.close(file) }
            wal.phase = .failed(error)
            throw error
        }
        return wal
    }

    // MARK: Opening and reading

    /// Opens the WAL in `directory` for appending, to be read from `snapshot` on: call
    /// `readAll()` next. `snapshot` must be one the WAL recorded (`WALSnapshot()` for a WAL
    /// without snapshots; `validSnapshots` lists them).
    public static func open(
        directory: String, at snapshot: WALSnapshot, fileSystem: any WALFileSystem = POSIXFileSystem(),
        segmentSize: Int64 = defaultSegmentSize,
        logger: Logger = Logger(label: "raft.wal", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws(WALError) -> WAL {
        precondition(segmentSize > 0, "segmentSize must be positive")
        guard exists(directory: directory, fileSystem: fileSystem) else { throw WALError.notFound(directory: directory) }
        let segments = try segmentsToRead(listSegments(directory, fileSystem), snapshotIndex: snapshot.index, directory: directory)
        return WAL(
            directory: directory, segmentSize: segmentSize, fileSystem: fileSystem, logger: logger,
            phase: .reading(start: snapshot, segments: Array(segments)))
    }

    /// What the WAL holds from the snapshot it was opened at: the metadata, the last
    /// HardState, and the entries after the snapshot's index — an entry replacing the one at
    /// its index and everything after it, as a new leader's overwrite does (etcd's `ReadAll`).
    ///
    /// A torn tail in the last segment (a crash during a write) is repaired: the segment is
    /// truncated after the last intact record and zeroed from there. Then appending continues
    /// after that record. Throws `snapshotNotFound` if the WAL has no record of the snapshot,
    /// `corrupt` (with the file and offset) for damage a crash cannot explain.
    public func readAll() throws(WALError) -> (metadata: [UInt8], hardState: HardState, entries: [Entry]) {
        guard case .reading(let start, let segments) = phase else {
            throw error(orMisuse: "readAll is called once, after open")
        }
        do {
            let result = try readAll(from: start, segments: segments)
            phase = .appending(try repairAndOpenTail(segments.last!, end: result.end))
            try prepareNextSegment()
            return (metadata, result.hardState, result.entries)
        } catch {
            phase = .failed(error)
            throw error
        }
    }

    private func readAll(from start: WALSnapshot, segments: [SegmentName]) throws(WALError)
        -> (hardState: HardState, entries: [Entry], end: WALEnd)
    {
        var reader = WALReader(directory: directory, segments: segments, fileSystem: fileSystem)
        var entries: [Entry] = []
        var state = HardState()
        var metadata: [UInt8]?
        var found = false
        while let record = try reader.next() {
            switch record.payload {
            case .entry(let entry):
                if entry.index > start.index {
                    // The entry goes at position index - start - 1; everything from there on
                    // was overwritten by a later leader.
                    let position = entry.index - start.index - 1
                    if position > UInt64(entries.count) {
                        throw WALError.entryGap(
                            file: record.segment, offset: record.offset, index: entry.index,
                            expectedAtMost: start.index + UInt64(entries.count) + 1)
                    }
                    // Raft's logs never go back in term (a new leader's entries carry a higher
                    // term than those they replace): a record that does is damage.
                    // (The first entry after the snapshot is not compared with the snapshot's
                    // term: that term is the caller's claim, checked against the snapshot record.)
                    let previousTerm = position == 0 ? 0 : entries[Int(position) - 1].term
                    if entry.term < previousTerm {
                        throw WALError.corrupt(
                            file: record.segment, offset: record.offset,
                            reason: "entry \(entry.index) has term \(entry.term), below the term \(previousTerm) before it")
                    }
                    if position < UInt64(entries.count) { entries.removeSubrange(Int(position)...) }
                    entries.append(entry)
                }
                lastIndex = entry.index
            case .state(let hardState):
                state = hardState
            case .metadata(let bytes):
                if let metadata, metadata != bytes {
                    throw WALError.metadataConflict(file: record.segment, offset: record.offset)
                }
                metadata = bytes
            case .crc:
                break
            case .snapshot(let snapshot):
                if snapshot.index == start.index {
                    if snapshot.term != start.term { throw WALError.snapshotMismatch(start, walTerm: snapshot.term) }
                    found = true
                }
                lastIndex = max(lastIndex, snapshot.index)
            }
        }
        if !found { throw WALError.snapshotNotFound(start) }
        self.metadata = metadata ?? []
        self.hardState = state
        self.crc = reader.crc ?? 0
        return (state, entries, reader.end!)
    }

    /// Opens the last segment for appending at the end of its records. A torn tail is cut off
    /// and the rest of the segment zeroed, so that stale bytes of the interrupted write can
    /// never be read as records once new ones are written before them.
    private func repairAndOpenTail(_ name: SegmentName, end: WALEnd) throws(WALError) -> Tail {
        let path = joinPath(directory, name.description)
        let file = try fileSystem.open(path, .readWrite)
        do {
            if case .torn(let segment, let offset, let reason) = end {
                logger.warning(
                    "WAL: torn write at the end of the log (a crash while writing); repairing by truncating",
                    metadata: ["segment": "\(segment)", "offset": "\(offset)", "reason": "\(reason)"])
            }
            let size = try fileSystem.size(file)
            // Anything after the end of the records must read as zeros: truncate, then extend
            // again (the new bytes are zeros). A clean end with a zero tail is already so.
            if case .torn = end, size > end.offset {
                try fileSystem.truncate(file, to: end.offset)
                try fileSystem.preallocate(file, size: max(size, segmentSize))
            } else if end.offset == 0 && size == 0 {
                try fileSystem.preallocate(file, size: segmentSize)
            }
            // What was just read must be durable before the node acts on it: the records read
            // may be writes whose fdatasync failed (the process stopped, the page cache kept
            // them), and a node that acknowledges entries it only found in the page cache, or
            // trusts a commit index no sync confirmed, loses them to a later power loss while
            // the leader counts them. So the tail is synced now (`syncedOffset` says so); the
            // directory, and so the tail's name, is synced next by `prepareNextSegment`.
            try fileSystem.fsync(file)
            return Tail(file: file, name: name, offset: end.offset, syncedOffset: end.offset)
        } catch {
            fileSystem.close(file)
            throw error
        }
    }

    // MARK: Appending

    /// Appends `entries` and `hardState` (skipped when empty) in one write, then — when etcd's
    /// MustSync rule says so: entries were given, or the term or vote changed — one fdatasync.
    /// Returns once they are durable (or, without the sync, written). Cuts a new segment when
    /// this one had passed the segment size at the previous sync (as etcd does). `forceSync`
    /// syncs whatever the rule says: a HardState whose commit index a snapshot record relies on
    /// (etcd #10219).
    public func save(hardState: HardState, entries: [Entry], forceSync: Bool = false) throws(WALError) {
        var tail = try appendingTail()
        if hardState.isEmpty && entries.isEmpty { return }
        let mustSync = forceSync || !entries.isEmpty || hardState.term != self.hardState.term
            || hardState.vote != self.hardState.vote
        buffer.removeAll(keepingCapacity: true)
        for entry in entries {
            encodeEntry(entry)
            lastIndex = entry.index
        }
        if !hardState.isEmpty {
            self.hardState = hardState
            encode(.state, hardState.serializedBytes())
        }
        try fatal { () throws(WALError) in
            try fileSystem.write(tail.file, buffer, at: tail.offset)
            tail.offset += Int64(buffer.count)
            phase = .appending(tail)
            if tail.syncedOffset >= segmentSize {
                try cut(tail)  // syncs this save too
            } else if mustSync {
                try fileSystem.fdatasync(tail.file)
                tail.syncedOffset = tail.offset
                phase = .appending(tail)
            }
        }
    }

    /// Records that a snapshot was taken or received at `snapshot`, and syncs. Save the
    /// snapshot file first: the WAL is then opened at a snapshot whose file exists.
    public func saveSnapshot(_ snapshot: WALSnapshot) throws(WALError) {
        var tail = try appendingTail()
        buffer.removeAll(keepingCapacity: true)
        encode(.snapshot, snapshot.serializedBytes())
        // A later cut names its segment after this index, so that reading at this snapshot
        // starts at or before the segment holding its record.
        lastIndex = max(lastIndex, snapshot.index)
        try fatal { () throws(WALError) in
            try fileSystem.write(tail.file, buffer, at: tail.offset)
            tail.offset += Int64(buffer.count)
            try fileSystem.fdatasync(tail.file)
            tail.syncedOffset = tail.offset
            phase = .appending(tail)
        }
    }

    /// Syncs and closes. Later calls throw.
    public func close() throws(WALError) {
        defer {
            if let prepared {
                fileSystem.close(prepared)
                try? fileSystem.remove(joinPath(directory, Self.preparedName))
                self.prepared = nil
            }
        }
        switch phase {
        case .appending(let tail):
            phase = .closed
            defer { fileSystem.close(tail.file) }
            try fileSystem.fdatasync(tail.file)
        case .reading:
            phase = .closed
        case .failed, .closed:
            phase = .closed
        }
    }

    /// The names of the segments, oldest first.
    public func segmentNames() throws(WALError) -> [SegmentName] {
        try listSegments(directory, fileSystem)
    }

    // MARK: Internals

    func appendingTail() throws(WALError) -> Tail {
        if case .appending(let tail) = phase { return tail }
        throw error(orMisuse: "save and saveSnapshot need a WAL that was created, or opened and read with readAll")
    }

    func error(orMisuse what: String) -> WALError {
        switch phase {
        case .failed(let cause): return .unusable(cause: cause)
        case .closed: return .misuse("the WAL is closed")
        default: return .misuse(what)
        }
    }

    /// Runs `body`; any error makes the WAL unusable.
    func fatal(_ body: () throws(WALError) -> Void) throws(WALError) {
        do { try body() } catch {
            logger.error("WAL: write or sync failed; the WAL is unusable until restart", metadata: ["error": "\(error)"])
            if case .appending(let tail) = phase { fileSystem.close(tail.file) }
            phase = .failed(error)
            throw error
        }
    }

    func encode(_ type: WALRecordType, _ data: [UInt8]) {
        crc = CRC32C.update(crc, with: data)
        WALRecord.appendFramed(type: type, crc: crc, data: data, to: &buffer)
    }

    func encodeCRCRecord() {
        WALRecord.appendFramed(type: .crc, crc: crc, data: [], to: &buffer)
    }

    func encodeEntry(_ entry: Entry) {
        scratch.removeAll(keepingCapacity: true)
        entry.appendSerializedBytes(to: &scratch)
        crc = CRC32C.update(crc, with: scratch)
        WALRecord.appendFramed(type: .entry, crc: crc, data: scratch, to: &buffer)
    }
}
