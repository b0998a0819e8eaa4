import Logging
import Raft
import Synchronization

/// Options of `DiskStorage`.
public struct DiskStorageOptions: Sendable {
    /// WAL segments are cut past this size (etcd: 64 MiB).
    public var segmentSize: Int64
    /// Snapshot files kept (etcd's `--max-snapshots`, 5).
    public var snapshotsToKeep: Int
    /// WAL segments kept at least, even when a snapshot covers them (etcd's `--max-wals`, 5).
    public var segmentsToKeep: Int

    public init(segmentSize: Int64 = WAL.defaultSegmentSize, snapshotsToKeep: Int = 5, segmentsToKeep: Int = 5) {
        self.segmentSize = segmentSize
        self.snapshotsToKeep = snapshotsToKeep
        self.segmentsToKeep = segmentsToKeep
    }
}

/// A `Storage` that survives restarts: the WAL and the snapshot files of a data directory
/// (`<directory>/wal`, `<directory>/snap`, etcd's layout), with the log also kept in memory
/// (a `MemoryStorage`) for raft's reads. Thread-safe like `MemoryStorage`: raft reads while
/// the application writes; writes are serialised among themselves.
///
/// Opening locks the directory (`<directory>/LOCK`, with `flock`: a second process, or a
/// second `DiskStorage` in this one, gets `WALError.locked` instead of writing the same WAL);
/// `close()`, the storage's end or the process's releases it.
///
/// Opening recovers the newest snapshot the WAL recorded (a damaged snapshot file is renamed
/// `.broken` and an older one used), then the HardState and the entries after the snapshot.
/// `isNew` says whether there was nothing to recover (then bootstrap the node).
///
/// The order a driver follows for each `Ready` (etcd's raftexample):
///
///  1. `try storage.save(ready)`: a snapshot first (its file, then its WAL record, synced),
///     then the HardState and the entries in one WAL write with one fdatasync when
///     `ready.mustSync`, then the in-memory log. When it returns, they are durable.
///  2. Send `ready.messages` (a leader may send before step 1, thesis §10.2.1; a follower
///     must not: its acknowledgements promise what step 1 made durable).
///  3. If `ready.snapshot` is set, restore the state machine from it.
///  4. Apply `ready.committedEntries`.
///  5. `advance(ready)`.
///
/// Now and then, after applying: `createSnapshot(index: applied, confState:, data:)` (writes the
/// snapshot file and its WAL record, then purges old snapshot files and the WAL segments no
/// kept snapshot needs), then `compact(_:)` at or below `applied` (etcd keeps 5000 entries for
/// slow followers). Any error thrown by a write is fatal: stop the node and restart it; it
/// recovers from what reached the disk.
public final class DiskStorage: Storage, Sendable {
    public let directory: String
    /// The metadata the WAL was created with (the application's: cluster and node ids…).
    public let metadata: [UInt8]
    /// True when the directory held no WAL: a new node, to bootstrap.
    public let isNew: Bool
    public let options: DiskStorageOptions

    private let memory: MemoryStorage
    private let writer: Mutex<Writer>
    /// The snapshot directory's: held while a file is written or old ones purged (a purge
    /// removes temporary files, which must not be one being written). Taken after `writer`
    /// when both are needed.
    private let snapshotFiles: Mutex<SnapshotFiles>
    private let logger: Logger
    /// The locked `LOCK` file, until `close()`.
    private let lockFile: Mutex<WALFileHandle?>
    private let fileSystem: any WALFileSystem

    /// The lock file's name in the data directory.
    public static let lockFileName = "LOCK"

    struct Writer: ~Copyable {
        var wal: WAL
    }

    /// Opens the data directory (creating it, and a WAL with `metadata`, when absent).
    public init(
        directory: String, metadata: [UInt8] = [], options: DiskStorageOptions = DiskStorageOptions(),
        fileSystem: any WALFileSystem = POSIXFileSystem(),
        logger: Logger = Logger(label: "raft.storage", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws {
        self.directory = directory
        self.options = options
        self.logger = logger
        self.fileSystem = fileSystem
        if !fileSystem.exists(directory) {
            try fileSystem.makeDirectory(directory)
            try fileSystem.syncDirectory(parentDirectory(of: directory))
        }
        let lock = try Self.lockDirectory(directory, fileSystem)
        lockFile = Mutex(lock)
        do {
            let (memory, wal, snapshots, recovered, isNew) = try Self.open(
                directory: directory, metadata: metadata, options: options, fileSystem: fileSystem, logger: logger)
            self.memory = memory
            snapshotFiles = Mutex(snapshots)
            self.metadata = recovered
            self.isNew = isNew
            writer = Mutex(Writer(wal: wal))
        } catch {
            fileSystem.close(lock)
            throw error
        }
    }

    deinit {
        releaseLock()
    }

    /// Closes the lock file (once), which releases the lock.
    private func releaseLock() {
        if let lock = lockFile.withLock({ $0.take() }) { fileSystem.close(lock) }
    }

    /// Opens (creating it if absent) and locks the directory's lock file.
    private static func lockDirectory(_ directory: String, _ fileSystem: any WALFileSystem) throws(WALError) -> WALFileHandle {
        let path = joinPath(directory, lockFileName)
        let file = try fileSystem.open(path, fileSystem.exists(path) ? .readWrite : .createOrTruncate)
        do {
            try fileSystem.lock(file)
        } catch {
            fileSystem.close(file)
            throw error
        }
        return file
    }

    /// Creates the WAL, or recovers the snapshot and the log.
    private static func open(
        directory: String, metadata: [UInt8], options: DiskStorageOptions, fileSystem: any WALFileSystem,
        logger: Logger
    ) throws -> sending (memory: MemoryStorage, wal: WAL, snapshotFiles: SnapshotFiles, metadata: [UInt8], isNew: Bool) {
        let snapDirectory = joinPath(directory, "snap")
        if !fileSystem.exists(snapDirectory) {
            try fileSystem.makeDirectory(snapDirectory)
            try fileSystem.syncDirectory(directory)
        }
        let walDirectory = joinPath(directory, "wal")
        let snapshots = SnapshotFiles(directory: snapDirectory, fileSystem: fileSystem, logger: logger)
        let memory = MemoryStorage()
        if !WAL.exists(directory: walDirectory, fileSystem: fileSystem) {
            let wal = try WAL.create(
                directory: walDirectory, metadata: metadata, fileSystem: fileSystem,
                segmentSize: options.segmentSize, logger: logger)
            return (memory, wal, snapshots, metadata, true)
        } else {
            // The newest snapshot that the WAL recorded (and that was committed): a snapshot
            // file without its WAL record is one whose save did not finish.
            let recorded = try WAL.validSnapshots(directory: walDirectory, fileSystem: fileSystem)
            let snapshot = try snapshots.loadNewest(available: recorded)
            let start = snapshot.map { WALSnapshot(index: $0.metadata.index, term: $0.metadata.term) } ?? WALSnapshot()
            let wal = try WAL.open(
                directory: walDirectory, at: start, fileSystem: fileSystem,
                segmentSize: options.segmentSize, logger: logger)
            let (recoveredMetadata, hardState, entries) = try wal.readAll()
            if let snapshot { try memory.applySnapshot(snapshot) }
            try memory.setHardState(hardState)
            try memory.append(entries)
            logger.info("recovered raft storage", metadata: [
                "snapshot": "\(start)", "entries": "\(entries.count)", "hardState": "\(hardState)",
            ])
            return (memory, wal, snapshots, recoveredMetadata, false)
        }
    }

    // MARK: Writing (the Ready loop)

    /// Persists what a `Ready` asks to persist, in etcd's order (see the type's documentation):
    /// its snapshot, then its HardState and entries. Returns once they are durable.
    ///
    /// With a snapshot from the leader, the order is etcd's fix of its issue #10219: the
    /// snapshot file, its WAL record, then the HardState and entries synced whatever the MustSync
    /// rule says, and only then the in-memory log and the purge of older snapshots and segments.
    /// Recovery trusts a snapshot record only at or below the recovered commit index; a
    /// HardState left unsynced (the leader's snapshot in a term this node already knew needs
    /// none by the rule) would, after a power loss, drop the snapshot this node acknowledged
    /// and fall back to one the purge had removed.
    public func save(_ ready: Ready) throws {
        guard let snapshot = ready.snapshot, !snapshot.isEmpty else {
            try append(hardState: ready.hardState, entries: ready.entries)
            return
        }
        try writer.withLock { (w: inout Writer) throws in
            if snapshot.metadata.index <= (try memory.snapshot()).metadata.index { throw RaftError.snapshotOutOfDate }
            try persist(snapshot, &w)
            var hardState = ready.hardState ?? memory.hardState
            // A HardState that commits below the snapshot cannot be: raft raises the commit
            // index to the snapshot's when it restores one.
            hardState.commit = max(hardState.commit, snapshot.metadata.index)
            try w.wal.save(hardState: hardState, entries: ready.entries, forceSync: true)
            try memory.applySnapshot(snapshot)
            try memory.append(ready.entries)
            try memory.setHardState(hardState)
            try purge(&w)
        }
    }

    /// Appends `entries` and sets `hardState` (nil: unchanged): the WAL first — one write, one
    /// fdatasync unless etcd's MustSync rule says none is needed — then the in-memory log.
    public func append(hardState: HardState?, entries: [Entry]) throws {
        try writer.withLock { (w: inout Writer) throws in
            var hardState = hardState
            // The commit index never goes back: a snapshot recorded it (see `recordSnapshot`),
            // and a HardState raft handed out before that snapshot may be written after it.
            if let commit = hardState?.commit, commit < memory.hardState.commit { hardState?.commit = memory.hardState.commit }
            try w.wal.save(hardState: hardState ?? HardState(), entries: entries)
            try memory.append(entries)
            if let hardState, !hardState.isEmpty { try memory.setHardState(hardState) }
        }
    }

    /// A snapshot received from the leader, without a Ready: `save` with one that carries only
    /// it (the HardState's commit raised to the snapshot's index, synced before the purge).
    /// Throws `RaftError.snapshotOutOfDate`, writing nothing, if it is not newer than the
    /// snapshot held.
    public func saveSnapshot(_ snapshot: Snapshot) throws {
        try save(Ready(snapshot: snapshot))
    }

    /// Makes a snapshot of the state machine at `index` (applied, and in the log), writes its
    /// file and WAL record, and purges old snapshot files and WAL segments; `confState` nil
    /// keeps the current snapshot's. The in-memory log is not compacted: call `compact(_:)`
    /// next. Throws `RaftError.snapshotOutOfDate` if the storage holds a snapshot at or after
    /// `index`, `RaftError.unavailable` if `index` is past the log. `writeSnapshotFile` and
    /// `recordSnapshot` in one call.
    @discardableResult
    public func createSnapshot(index: UInt64, confState: ConfState?, data: [UInt8]) throws -> Snapshot {
        let confState = try confState ?? memory.snapshot().metadata.confState
        guard let snapshot = try writeSnapshotFile(index: index, confState: confState, data: data),
              try recordSnapshot(snapshot)
        else { throw RaftError.snapshotOutOfDate }
        return snapshot
    }

    /// `createSnapshot` in two steps, so that the WAL is not held up while a big snapshot file
    /// is written and synced. Step 1, on any thread, beside WAL writes: the snapshot of the
    /// state machine at `index` (applied, and in the log), written to its file. Returns nil,
    /// writing nothing, when the storage already holds a snapshot at or after `index` (one
    /// from the leader arrived meanwhile). Then call `recordSnapshot`.
    public func writeSnapshotFile(index: UInt64, confState: ConfState, data: [UInt8]) throws -> Snapshot? {
        guard index > (try memory.snapshot()).metadata.index else { return nil }
        let term: UInt64
        do {
            term = try memory.term(index)
        } catch .compacted {
            return nil
        }
        let snapshot = Snapshot(data: data, metadata: SnapshotMetadata(confState: confState, index: index, term: term))
        try snapshotFiles.withLock { files throws in try files.save(snapshot) }
        return snapshot
    }

    /// Step 2 of a snapshot, in order with the other writes: the WAL record of a snapshot
    /// whose file `writeSnapshotFile` wrote, then it becomes the storage's snapshot, and old
    /// snapshot files and WAL segments are purged. False, recording nothing, when the storage
    /// holds a newer snapshot by now. The in-memory log is not compacted: call `compact(_:)`.
    @discardableResult
    public func recordSnapshot(_ snapshot: Snapshot) throws -> Bool {
        try writer.withLock { (w: inout Writer) throws -> Bool in
            let index = snapshot.metadata.index
            guard index > (try memory.snapshot()).metadata.index else { return false }
            try w.wal.saveSnapshot(WALSnapshot(index: index, term: snapshot.metadata.term))
            // Recovery trusts a snapshot record only at or below the recovered commit index. The
            // state machine may have applied beyond the commit index on disk (the HardState that
            // committed it was written without a sync, or not yet, with asynchronous writes):
            // record the commit the snapshot proves, synced, before anything is purged.
            if memory.hardState.commit < index {
                var hardState = memory.hardState
                hardState.commit = index
                try w.wal.save(hardState: hardState, entries: [], forceSync: true)
                try memory.setHardState(hardState)
            }
            _ = try memory.createSnapshot(index, confState: snapshot.metadata.confState, data: snapshot.data)
            try purge(&w)
            return true
        }
    }

    /// Drops the in-memory entries up to and including `index` (which a snapshot must cover).
    public func compact(_ index: UInt64) throws {
        try memory.compact(index)
    }

    /// Syncs and closes the WAL, then releases the directory's lock. Later writes throw.
    public func close() throws {
        defer { releaseLock() }
        try writer.withLock { (w: inout Writer) throws in try w.wal.close() }
    }

    /// The snapshot file first, then the WAL record: a WAL record always has its file (a file
    /// without a record is ignored at recovery).
    private func persist(_ snapshot: Snapshot, _ w: inout Writer) throws {
        try snapshotFiles.withLock { files throws in try files.save(snapshot) }
        try w.wal.saveSnapshot(WALSnapshot(index: snapshot.metadata.index, term: snapshot.metadata.term))
    }

    /// Keeps `snapshotsToKeep` snapshot files, and the WAL segments that the oldest of them
    /// still needs: if the newest file turns out damaged, recovery falls back to an older one
    /// and finds its entries.
    private func purge(_ w: inout Writer) throws {
        let keep = options.snapshotsToKeep
        let names = try snapshotFiles.withLock { files throws in
            try files.purge(keep: keep)
            return try files.names()
        }
        guard let oldest = names.last,
              let (_, index) = parseHexPair(oldest, suffix: ".snap")
        else { return }
        let removed = try w.wal.purgeSegments(snapshotIndex: index, keep: options.segmentsToKeep)
        if !removed.isEmpty {
            logger.debug("purged WAL segments", metadata: ["segments": "\(removed.map(\.description))"])
        }
    }

    // MARK: Storage (what raft reads)

    public func initialState() throws -> (HardState, ConfState) { try memory.initialState() }
    public func entries(_ lo: UInt64, _ hi: UInt64, maxSize: UInt64) throws -> [Entry] {
        try memory.entries(lo, hi, maxSize: maxSize)
    }
    public func term(_ index: UInt64) throws -> UInt64 { try memory.term(index) }
    public func lastIndex() throws -> UInt64 { try memory.lastIndex() }
    public func firstIndex() throws -> UInt64 { try memory.firstIndex() }
    public func snapshot() throws -> Snapshot { try memory.snapshot() }
    /// The saved HardState.
    public var hardState: HardState { memory.hardState }
}
