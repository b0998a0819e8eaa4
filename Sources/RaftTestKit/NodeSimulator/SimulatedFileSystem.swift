import Glibc
import RaftWAL
import Synchronization

/// An in-memory `WALFileSystem` that models what survives a crash, and injects faults.
///
/// Each file keeps its current bytes, the bytes that were durable at its last fsync/fdatasync,
/// and the writes since. Each file name is durable once its directory was synced. `crash(_:)`
/// puts everything back to what a power failure could leave: the durable names, the durable
/// bytes, and some or all of the unsynced writes (a prefix of the last one when tearing); or
/// the names as they are with only the durable bytes (a journal that committed the metadata).
/// Directories themselves (mkdir, renaming a directory) are modelled as durable at once.
public final class SimulatedFileSystem: WALFileSystem {
    public enum Operation: Sendable, Equatable {
        case open, write, read, fsync, fdatasync, truncate, preallocate, rename, remove, syncDirectory, makeDirectory
    }

    /// What a crash keeps of the writes that were not synced.
    public enum CrashMode: Sendable {
        /// None of them (a power failure right after the last sync).
        case dropUnsynced
        /// None of the unsynced bytes, but every change of names (creates, renames, removes):
        /// the file system's journal committed its metadata and not the data (XFS, ext4 with
        /// data=writeback), so a file removed without a directory sync stays removed.
        case dropUnsyncedData
        /// All of them (a process crash: the page cache survives).
        case keepUnsynced
        /// All but the last write, and the first `bytes` bytes of that one.
        case tearLastWrite(bytes: Int)
    }

    struct File {
        var data: [UInt8] = []
        var durable: [UInt8] = []
        var pending: [(offset: Int, bytes: [UInt8])] = []
    }

    struct Fault {
        var operation: Operation
        var pathContains: String
        var errno: Int32
        /// Matching calls to let through before failing.
        var skip: Int
    }

    struct State {
        var files: [Int: File] = [:]
        var names: [String: Int] = [:]
        var durableNames: [String: Int] = [:]
        var directories: Set<String> = ["/"]
        var handles: [Int32: Int] = [:]
        var nextInode = 1
        var nextDescriptor: Int32 = 3
        var faults: [Fault] = []
        var counts: [Operation: Int] = [:]
        /// (inode, size) of the most recent write.
        var lastWrite: (inode: Int, size: Int)?
        /// Locked files: inode → the descriptor holding the lock.
        var locks: [Int: Int32] = [:]
    }

    let state = Mutex(State())

    public init() {}

    // MARK: Test controls

    /// Makes the `skip+1`-th next call of `operation` on a path containing `pathContains` fail.
    public func failNext(_ operation: Operation, pathContains: String = "", errno: Int32 = EIO, skip: Int = 0) {
        state.withLock { $0.faults.append(Fault(operation: operation, pathContains: pathContains, errno: errno, skip: skip)) }
    }

    /// An independent copy (no open files): to run many fault cases from one prepared state.
    public func clone() -> SimulatedFileSystem {
        let copy = SimulatedFileSystem()
        var snapshot = state.withLock { $0 }
        snapshot.handles = [:]
        snapshot.locks = [:]
        snapshot.faults = []
        // The last write stays known: a crash of the copy can tear it.
        copy.state.withLock { $0 = snapshot }
        return copy
    }

    public func count(_ operation: Operation) -> Int { state.withLock { $0.counts[operation, default: 0] } }

    public var lastWriteSize: Int { state.withLock { $0.lastWrite?.size ?? 0 } }

    public func crash(_ mode: CrashMode) {
        state.withLock { s in
            for (inode, file) in s.files {
                var result = file.durable
                switch mode {
                case .dropUnsynced, .dropUnsyncedData: break
                case .keepUnsynced: result = file.data
                case .tearLastWrite(let bytes):
                    for (i, write) in file.pending.enumerated() {
                        var chunk = write.bytes
                        if i == file.pending.count - 1, s.lastWrite?.inode == inode {
                            chunk = Array(chunk.prefix(bytes))
                        }
                        if result.count < write.offset + chunk.count {
                            result += [UInt8](repeating: 0, count: write.offset + chunk.count - result.count)
                        }
                        result.replaceSubrange(write.offset..<write.offset + chunk.count, with: chunk)
                    }
                }
                s.files[inode] = File(data: result, durable: result, pending: [])
            }
            switch mode {
            case .keepUnsynced, .dropUnsyncedData: break
            case .dropUnsynced, .tearLastWrite: s.names = s.durableNames
            }
            s.durableNames = s.names
            s.handles = [:]
            s.locks = [:]
            s.lastWrite = nil
            s.faults = []
        }
    }

    public func contents(_ path: String) -> [UInt8]? {
        state.withLock { s in s.names[path].map { s.files[$0]!.data } }
    }

    /// Replaces a file's bytes, durably (damage on the disk itself).
    public func setContents(_ path: String, _ bytes: [UInt8]) {
        state.withLock { s in
            let inode = s.names[path]!
            s.files[inode] = File(data: bytes, durable: bytes, pending: [])
        }
    }

    public func flipBit(_ path: String, at offset: Int, bit: Int) {
        var bytes = contents(path)!
        bytes[offset] ^= UInt8(1 << bit)
        setContents(path, bytes)
    }

    public func names(in directory: String) -> [String] { (try? listDirectory(directory))?.sorted() ?? [] }

    // MARK: WALFileSystem

    private func check(_ s: inout State, _ operation: Operation, _ path: String) throws(WALError) {
        s.counts[operation, default: 0] += 1
        if let i = s.faults.firstIndex(where: { $0.operation == operation && ($0.pathContains.isEmpty || path.contains($0.pathContains)) }) {
            if s.faults[i].skip > 0 {
                s.faults[i].skip -= 1
                return
            }
            let fault = s.faults.remove(at: i)
            throw WALError.io(operation: "\(operation)", path: path, errno: fault.errno)
        }
    }

    public func open(_ path: String, _ mode: WALOpenMode) throws(WALError) -> WALFileHandle {
        try state.withLock { (s: inout State) throws(WALError) -> WALFileHandle in
            try check(&s, .open, path)
            let parent = Self.parent(path)
            guard s.directories.contains(parent) else { throw WALError.io(operation: "open", path: path, errno: ENOENT) }
            var inode = s.names[path]
            switch mode {
            case .read, .readWrite:
                if inode == nil { throw WALError.io(operation: "open", path: path, errno: ENOENT) }
            case .createNew:
                if inode != nil { throw WALError.io(operation: "open", path: path, errno: EEXIST) }
            case .createOrTruncate:
                if let existing = inode { s.files[existing]!.data = [] }
            }
            if inode == nil {
                inode = s.nextInode
                s.nextInode += 1
                s.files[inode!] = File()
                s.names[path] = inode
            }
            let fd = s.nextDescriptor
            s.nextDescriptor += 1
            s.handles[fd] = inode
            return WALFileHandle(descriptor: fd, path: path)
        }
    }

    public func close(_ file: WALFileHandle) {
        state.withLock { s in
            if let inode = s.handles.removeValue(forKey: file.descriptor), s.locks[inode] == file.descriptor {
                s.locks[inode] = nil
            }
        }
    }

    public func lock(_ file: WALFileHandle) throws(WALError) {
        try state.withLock { (s: inout State) throws(WALError) in
            let inode = try inode(s, file)
            if let holder = s.locks[inode], holder != file.descriptor { throw WALError.locked(path: file.path) }
            s.locks[inode] = file.descriptor
        }
    }

    private func inode(_ s: State, _ file: WALFileHandle) throws(WALError) -> Int {
        guard let inode = s.handles[file.descriptor] else { throw WALError.io(operation: "use", path: file.path, errno: EBADF) }
        return inode
    }

    public func write(_ file: WALFileHandle, _ bytes: [UInt8], at offset: Int64) throws(WALError) {
        try state.withLock { (s: inout State) throws(WALError) in
            try check(&s, .write, file.path)
            let inode = try inode(s, file)
            let end = Int(offset) + bytes.count
            if s.files[inode]!.data.count < end {
                s.files[inode]!.data += [UInt8](repeating: 0, count: end - s.files[inode]!.data.count)
            }
            s.files[inode]!.data.replaceSubrange(Int(offset)..<end, with: bytes)
            s.files[inode]!.pending.append((Int(offset), bytes))
            s.lastWrite = (inode, bytes.count)
        }
    }

    public func read(_ file: WALFileHandle, count: Int, at offset: Int64) throws(WALError) -> [UInt8] {
        try state.withLock { (s: inout State) throws(WALError) -> [UInt8] in
            try check(&s, .read, file.path)
            let data = s.files[try inode(s, file)]!.data
            let start = min(Int(offset), data.count)
            return Array(data[start..<min(data.count, start + count)])
        }
    }

    private func sync(_ file: WALFileHandle, _ operation: Operation) throws(WALError) {
        try state.withLock { (s: inout State) throws(WALError) in
            try check(&s, operation, file.path)
            let inode = try inode(s, file)
            s.files[inode]!.durable = s.files[inode]!.data
            s.files[inode]!.pending = []
        }
    }

    public func fsync(_ file: WALFileHandle) throws(WALError) { try sync(file, .fsync) }
    public func fdatasync(_ file: WALFileHandle) throws(WALError) { try sync(file, .fdatasync) }

    public func truncate(_ file: WALFileHandle, to size: Int64) throws(WALError) {
        try state.withLock { (s: inout State) throws(WALError) in
            try check(&s, .truncate, file.path)
            let inode = try inode(s, file)
            var data = s.files[inode]!.data
            if data.count > Int(size) { data.removeSubrange(Int(size)...) } else { data += [UInt8](repeating: 0, count: Int(size) - data.count) }
            s.files[inode]!.data = data
        }
    }

    public func preallocate(_ file: WALFileHandle, size: Int64) throws(WALError) {
        try state.withLock { (s: inout State) throws(WALError) in
            try check(&s, .preallocate, file.path)
            let inode = try inode(s, file)
            let count = s.files[inode]!.data.count
            if count < Int(size) { s.files[inode]!.data += [UInt8](repeating: 0, count: Int(size) - count) }
        }
    }

    public func size(_ file: WALFileHandle) throws(WALError) -> Int64 {
        try state.withLock { (s: inout State) throws(WALError) -> Int64 in Int64(s.files[try inode(s, file)]!.data.count) }
    }

    public func rename(_ from: String, to: String) throws(WALError) {
        try state.withLock { (s: inout State) throws(WALError) in
            try check(&s, .rename, from)
            if s.directories.contains(from) {
                // Directories: moved at once, durably (see the type's documentation).
                if s.directories.contains(to) {
                    if s.names.keys.contains(where: { Self.parent($0) == to }) {
                        throw WALError.io(operation: "rename", path: from, errno: ENOTEMPTY)
                    }
                    s.directories.remove(to)
                }
                s.directories.remove(from)
                s.directories.insert(to)
                for table in [\State.names, \State.durableNames] {
                    var moved: [String: Int] = [:]
                    for (path, inode) in s[keyPath: table] {
                        moved[Self.parent(path) == from ? to + "/" + Self.base(path) : path] = inode
                    }
                    s[keyPath: table] = moved
                }
                return
            }
            guard let inode = s.names.removeValue(forKey: from) else { throw WALError.io(operation: "rename", path: from, errno: ENOENT) }
            s.names[to] = inode
        }
    }

    public func remove(_ path: String) throws(WALError) {
        try state.withLock { (s: inout State) throws(WALError) in
            try check(&s, .remove, path)
            if s.names.removeValue(forKey: path) == nil { throw WALError.io(operation: "remove", path: path, errno: ENOENT) }
        }
    }

    public func removeDirectory(_ path: String) throws(WALError) {
        try state.withLock { (s: inout State) throws(WALError) in
            if s.names.keys.contains(where: { Self.parent($0) == path }) { throw WALError.io(operation: "rmdir", path: path, errno: ENOTEMPTY) }
            s.directories.remove(path)
        }
    }

    public func listDirectory(_ path: String) throws(WALError) -> [String] {
        try state.withLock { (s: inout State) throws(WALError) -> [String] in
            guard s.directories.contains(path) else { throw WALError.io(operation: "list directory", path: path, errno: ENOENT) }
            return s.names.keys.filter { Self.parent($0) == path }.map { Self.base($0) }
                + s.directories.filter { $0 != path && Self.parent($0) == path }.map { Self.base($0) }
        }
    }

    public func makeDirectory(_ path: String) throws(WALError) {
        try state.withLock { (s: inout State) throws(WALError) in
            try check(&s, .makeDirectory, path)
            guard s.directories.contains(Self.parent(path)) else { throw WALError.io(operation: "mkdir", path: path, errno: ENOENT) }
            if !s.directories.insert(path).inserted { throw WALError.io(operation: "mkdir", path: path, errno: EEXIST) }
        }
    }

    public func syncDirectory(_ path: String) throws(WALError) {
        try state.withLock { (s: inout State) throws(WALError) in
            try check(&s, .syncDirectory, path)
            for key in s.durableNames.keys where Self.parent(key) == path { s.durableNames[key] = nil }
            for (key, inode) in s.names where Self.parent(key) == path { s.durableNames[key] = inode }
        }
    }

    public func exists(_ path: String) -> Bool {
        state.withLock { $0.directories.contains(path) || $0.names[path] != nil }
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func base(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
