/// An open file of a `WALFileSystem`: its descriptor and the path it was opened at (for error
/// messages; a rename does not change it).
public struct WALFileHandle: Hashable, Sendable {
    public let descriptor: Int32
    public let path: String

    public init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }
}

public enum WALOpenMode: Sendable {
    /// An existing file, read only.
    case read
    /// An existing file, read and write.
    case readWrite
    /// A new file, read and write; fails if it exists.
    case createNew
    /// A file created if absent and emptied if present, read and write.
    case createOrTruncate
}

/// What the WAL and the snapshot files need of a file system: the POSIX calls, one method each,
/// so that tests can put a file system underneath that tears writes, flips bits and fails
/// fsync. `POSIXFileSystem` is the real one. Every failure throws `WALError.io` naming the
/// operation and the path.
///
/// The durability contract the WAL relies on: data written to a file is durable once `fsync`
/// or `fdatasync` of that file returns; a created, renamed or removed directory entry is
/// durable once `syncDirectory` of its directory returns.
public protocol WALFileSystem: Sendable {
    func open(_ path: String, _ mode: WALOpenMode) throws(WALError) -> WALFileHandle
    func close(_ file: WALFileHandle)
    /// Writes all of `bytes` at `offset` (a short write is retried, then an error).
    func write(_ file: WALFileHandle, _ bytes: [UInt8], at offset: Int64) throws(WALError)
    /// `write` from memory the caller owns, without an array around it (snapshot files are
    /// written from the snapshot's data). The default copies into an array.
    func write(_ file: WALFileHandle, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(WALError)
    /// Up to `count` bytes from `offset`; fewer only at the end of the file.
    func read(_ file: WALFileHandle, count: Int, at offset: Int64) throws(WALError) -> [UInt8]
    func fsync(_ file: WALFileHandle) throws(WALError)
    func fdatasync(_ file: WALFileHandle) throws(WALError)
    func truncate(_ file: WALFileHandle, to size: Int64) throws(WALError)
    /// Makes the file at least `size` bytes long, the new bytes reading as zeros, with the
    /// blocks allocated where the system can (so appends do not change the file size and an
    /// `fdatasync` does not have to write metadata).
    func preallocate(_ file: WALFileHandle, size: Int64) throws(WALError)
    func size(_ file: WALFileHandle) throws(WALError) -> Int64
    func rename(_ from: String, to: String) throws(WALError)
    func remove(_ path: String) throws(WALError)
    func removeDirectory(_ path: String) throws(WALError)
    /// The names in a directory (not `.` and `..`), in no particular order.
    func listDirectory(_ path: String) throws(WALError) -> [String]
    func makeDirectory(_ path: String) throws(WALError)
    /// fsync of a directory: makes the entries created, renamed or removed in it durable.
    func syncDirectory(_ path: String) throws(WALError)
    func exists(_ path: String) -> Bool
    /// Takes an exclusive lock on the open file without waiting (`flock`), or throws
    /// `WALError.locked` when another open file holds it. Closing the file releases it, as
    /// does the end of the process, however it ends.
    func lock(_ file: WALFileHandle) throws(WALError)
}

extension WALFileSystem {
    public func write(_ file: WALFileHandle, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(WALError) {
        try write(file, [UInt8](bytes), at: offset)
    }

    /// The whole content of the file at `path`.
    public func readFile(_ path: String) throws(WALError) -> [UInt8] {
        let file = try open(path, .read)
        defer { close(file) }
        let size = try self.size(file)
        return try read(file, count: Int(size), at: 0)
    }
}

/// `directory/name`.
func joinPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// The directory part of `path` ("." when there is none).
func parentDirectory(of path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    guard let slash = trimmed.lastIndex(of: "/") else { return "." }
    if slash == trimmed.startIndex { return "/" }
    return String(trimmed[..<slash])
}
