#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors of the WAL, the snapshot files and `DiskStorage`. Each names the file (and offset)
/// involved and, in `description`, says what to do about it.
public indirect enum WALError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed. `operation` is what was being done ("fdatasync", "rename", …).
    case io(operation: String, path: String, errno: Int32)
    /// A record that cannot be a torn write after a crash is damaged: a CRC mismatch, a
    /// malformed length field or record, non-zero padding, or damage before the last segment.
    case corrupt(file: String, offset: Int64, reason: String)
    /// Entries skip an index: a record says index `index` but at most `expectedAtMost` fits.
    case entryGap(file: String, offset: Int64, index: UInt64, expectedAtMost: UInt64)
    /// Two metadata records disagree.
    case metadataConflict(file: String, offset: Int64)
    /// A record has a type the WAL does not know.
    case unknownRecordType(file: String, offset: Int64, type: Int64)
    /// The WAL holds no snapshot record for the snapshot it was opened at (etcd's ErrSnapshotNotFound).
    case snapshotNotFound(WALSnapshot)
    /// The WAL's snapshot record at that index has another term (etcd's ErrSnapshotMismatch).
    case snapshotMismatch(WALSnapshot, walTerm: UInt64)
    /// No segment starts at or before the snapshot's index: the segments it needs were purged.
    case noSegment(directory: String, snapshotIndex: UInt64)
    /// Segment sequence numbers are not contiguous: a segment is missing.
    case missingSegment(directory: String, after: String, next: String)
    /// A file in the WAL directory has a `.wal` name that does not parse.
    case badSegmentName(String)
    /// `create` found an existing WAL.
    case alreadyExists(directory: String)
    /// `open` found no WAL.
    case notFound(directory: String)
    /// An earlier fsync/fdatasync or write failed; the WAL refuses every later call.
    case unusable(cause: WALError)
    /// `save`/`saveSnapshot` before `readAll`, or a call after `close`.
    case misuse(String)
    /// A snapshot file cannot be used (the loader renames it `*.broken`).
    case badSnapshotFile(file: String, reason: String)
    /// A record or snapshot larger than the format's limits.
    case tooLarge(what: String, size: Int)
    /// Another process (or another `DiskStorage` in this one) has the data directory open:
    /// its lock file is locked.
    case locked(path: String)

    public var description: String {
        switch self {
        case .io(let operation, let path, let errno):
            let hint: String
            switch operation {
            case "fsync", "fdatasync", "fsync directory":
                hint = "the data may not be on disk; the WAL is no longer usable — restart the node (it recovers from what reached the disk)"
            case "write", "pwrite", "preallocate":
                hint = errno == ENOSPC ? "the disk is full; free space and restart the node" : "check the disk and restart the node"
            default:
                hint = "check the path, its permissions and the disk"
            }
            return "\(operation) \(path) failed: \(errorName(errno)) — \(hint)"
        case .corrupt(let file, let offset, let reason):
            return "WAL segment \(file): \(reason) at offset \(offset) — the log is corrupt; restore this node from a peer or a backup (the file is left in place for inspection)"
        case .entryGap(let file, let offset, let index, let expectedAtMost):
            return "WAL segment \(file): entry \(index) at offset \(offset) leaves a gap (the next index can be at most \(expectedAtMost)) — the log is corrupt; restore this node from a peer or a backup"
        case .metadataConflict(let file, let offset):
            return "WAL segment \(file): metadata at offset \(offset) differs from the earlier metadata — these segments belong to different WALs; restore this node from a peer or a backup"
        case .unknownRecordType(let file, let offset, let type):
            return "WAL segment \(file): unknown record type \(type) at offset \(offset) — written by a newer or foreign version, or corrupt"
        case .snapshotNotFound(let snapshot):
            return "WAL has no snapshot record at index \(snapshot.index), term \(snapshot.term) — open it at a snapshot it recorded (the newest valid snapshot file), or restore this node from a peer"
        case .snapshotMismatch(let snapshot, let walTerm):
            return "WAL snapshot record at index \(snapshot.index) has term \(walTerm), not \(snapshot.term) — the snapshot file does not belong to this WAL"
        case .noSegment(let directory, let index):
            return "WAL \(directory): no segment starts at or before index \(index) — segments the snapshot needs are missing; restore this node from a peer or a backup"
        case .missingSegment(let directory, let after, let next):
            return "WAL \(directory): a segment is missing between \(after) and \(next) — restore this node from a peer or a backup"
        case .badSegmentName(let name):
            return "WAL segment name \(name) is not <sequence>-<index>.wal in hex — move the stray file out of the WAL directory"
        case .alreadyExists(let directory):
            return "a WAL already exists in \(directory) — open it instead of creating one"
        case .notFound(let directory):
            return "no WAL in \(directory) — create one first"
        case .unusable(let cause):
            return "the WAL is unusable after an earlier failure (\(cause)) — restart the node"
        case .misuse(let what):
            return "WAL misuse: \(what)"
        case .badSnapshotFile(let file, let reason):
            return "snapshot file \(file): \(reason) — it is not used (renamed to .broken); an older snapshot or a peer supplies the state"
        case .tooLarge(let what, let size):
            return "\(what) of \(size) bytes is too large for the WAL"
        case .locked(let path):
            return "the data directory is in use: \(path) is locked by another process — stop that process, or give this one another data directory (two writers would corrupt the WAL)"
        }
    }
}

/// "EIO (Input/output error)".
func errorName(_ code: Int32) -> String {
    let text = strerror(code).map { String(cString: $0) } ?? "error"
    let names: [Int32: String] = [
        EIO: "EIO", ENOSPC: "ENOSPC", EACCES: "EACCES", ENOENT: "ENOENT", EEXIST: "EEXIST",
        EROFS: "EROFS", EDQUOT: "EDQUOT", EBADF: "EBADF", EINVAL: "EINVAL", ENOTDIR: "ENOTDIR",
    ]
    if let name = names[code] { return "\(name) (\(text))" }
    return "errno \(code) (\(text))"
}
