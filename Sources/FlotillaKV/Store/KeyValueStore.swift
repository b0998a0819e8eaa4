#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Flotilla

/// The key-value state machine that `flotilla` replicates: a map from byte-string keys to
/// byte-string values, changed only by applying committed commands in log order.
///
/// Everything here is deterministic: the same commands applied in the same order give the same
/// state and the same snapshot bytes on every replica. Nothing in it depends on the server's
/// flags (the key and value limits are enforced by the HTTP API before a command is proposed), so
/// a committed command applies the same way whatever configuration a replica runs with.
///
/// ## Command format (version 1)
///
/// A command is what `FlotillaNode.apply` replicates: the payload of one normal raft entry,
/// inside the runtime's proposal envelope.
///
/// | bytes | meaning |
/// | --- | --- |
/// | 1 | format version, `0x01` |
/// | 1 | operation: `0x01` put, `0x02` delete |
/// | varint | key length K (unsigned LEB128, at most 10 bytes), K ≥ 1 |
/// | K | key |
/// | rest | put: the value (all remaining bytes, possibly none); delete: nothing |
///
/// `put("foo", "bar")` is `01 01 03 66 6f 6f 62 61 72`; `delete("foo")` is `01 02 03 66 6f 6f`.
///
/// ## Snapshot format (version 1)
///
/// | bytes | meaning |
/// | --- | --- |
/// | 4 | magic `FKVS` (`46 4b 56 53`) |
/// | 1 | format version, `0x01` |
/// | varint | number of pairs N |
/// | N × | varint key length K ≥ 1, K key bytes, varint value length V, V value bytes |
/// | 4 | CRC-32C (Castagnoli) of every byte before it, little-endian |
///
/// Pairs are sorted by key (bytewise, strictly ascending), so a state has exactly one snapshot.
/// `restore` checks all of it — magic, version, checksum, lengths, order, trailing bytes — and
/// leaves the store untouched when anything is wrong.
public struct KeyValueStore: Sendable, Equatable {
    private var pairs: [[UInt8]: [UInt8]] = [:]
    /// What changed since the last `captureSnapshot`, and where that capture's snapshot will
    /// be: together they splice the next snapshot instead of encoding the whole store again
    /// (see `SnapshotSplicing.swift`). Neither is part of the state.
    private var changes = ChangeLog()
    private var lastCapture: EncodedSnapshotBox? = nil

    public init() {}

    /// A store holding exactly these pairs (for tests and tools).
    public init(_ pairs: [[UInt8]: [UInt8]]) {
        self.pairs = pairs
    }

    /// Stores are equal when they hold the same pairs.
    public static func == (a: KeyValueStore, b: KeyValueStore) -> Bool {
        a.pairs == b.pairs
    }

    /// The number of keys.
    public var count: Int { pairs.count }

    /// The value stored under `key`, or nil.
    public func value(forKey key: [UInt8]) -> [UInt8]? {
        pairs[key]
    }

    /// Applies a decoded command.
    @discardableResult
    public mutating func apply(_ command: Command) -> Outcome {
        switch command {
        case .put(let key, let value):
            let previous = pairs.updateValue(value, forKey: key)
            changes.record(key: key, value: value, storeCount: pairs.count)
            return .stored(replaced: previous != nil)
        case .delete(let key):
            let previous = pairs.removeValue(forKey: key)
            if previous != nil { changes.record(key: key, value: nil, storeCount: pairs.count) }
            return .deleted(existed: previous != nil)
        }
    }

    /// Decodes and applies an encoded command; a malformed one changes nothing and throws.
    @discardableResult
    public mutating func apply(encoded bytes: [UInt8]) throws(KeyValueStoreError) -> Outcome {
        apply(try Command(decoding: bytes))
    }

    /// What applying a command did.
    public enum Outcome: Sendable, Hashable {
        /// A put; `replaced` says whether the key held a value before.
        case stored(replaced: Bool)
        /// A delete; `existed` says whether the key held a value before.
        case deleted(existed: Bool)
    }
}

// MARK: - Commands

extension KeyValueStore {
    /// A change to the store: the payload of a normal raft entry.
    public enum Command: Sendable, Hashable {
        case put(key: [UInt8], value: [UInt8])
        case delete(key: [UInt8])

        static let version: UInt8 = 1
        static let putOperation: UInt8 = 1
        static let deleteOperation: UInt8 = 2

        public var key: [UInt8] {
            switch self {
            case .put(let key, _), .delete(let key): return key
            }
        }

        /// The command in the version-1 binary format (see `KeyValueStore`).
        public func encoded() -> [UInt8] {
            switch self {
            case .put(let key, let value):
                var out = ByteWriter(capacity: Self.maxEncodedSize(keyBytes: key.count, valueBytes: value.count))
                out.byte(Self.version)
                out.byte(Self.putOperation)
                out.lengthPrefixed(key)
                out.bytes(value)
                return out.bytes
            case .delete(let key):
                var out = ByteWriter(capacity: Self.maxEncodedSize(keyBytes: key.count, valueBytes: 0))
                out.byte(Self.version)
                out.byte(Self.deleteOperation)
                out.lengthPrefixed(key)
                return out.bytes
            }
        }

        /// The most bytes a command with a key and a value of these sizes encodes to: what a
        /// server gives `FlotillaConfiguration.maxProposalSize` for its largest key and value.
        public static func maxEncodedSize(keyBytes: Int, valueBytes: Int) -> Int {
            2 + Varint.maxLength + keyBytes + valueBytes
        }

        /// What `flotilla wal dump` shows of an encoded command: `put key=K (N bytes)` or
        /// `delete key=K`; nil if the bytes are not a command.
        package static func dumpDescription(ofEncoded bytes: [UInt8]) -> String? {
            switch try? Command(decoding: bytes) {
            case .put(let key, let value): return "put key=\(printableBytes(key)) (\(value.count) bytes)"
            case .delete(let key): return "delete key=\(printableBytes(key))"
            case nil: return nil
            }
        }

        /// Decodes a command; throws a `KeyValueStoreError` saying what is wrong and where.
        public init(decoding bytes: [UInt8]) throws(KeyValueStoreError) {
            var reader = StoreReader(bytes[...], what: "command")
            let version = try reader.byte("version")
            guard version == Self.version else {
                throw .unsupportedVersion(what: "command", version: version, supported: Self.version)
            }
            let operation = try reader.byte("operation")
            guard operation == Self.putOperation || operation == Self.deleteOperation else {
                throw .unknownOperation(operation)
            }
            let key = try reader.key()
            if operation == Self.putOperation {
                self = .put(key: key, value: reader.rest())
            } else {
                guard reader.remaining == 0 else {
                    throw .trailingBytes(what: "delete command", count: reader.remaining)
                }
                self = .delete(key: key)
            }
        }
    }
}

// MARK: - Snapshots

extension KeyValueStore {
    static let snapshotMagic: [UInt8] = Array("FKVS".utf8)
    static let snapshotVersion: UInt8 = 1

    /// The whole store in the version-1 snapshot format (see `KeyValueStore`).
    public func snapshot() -> [UInt8] {
        Self.encodeWhole(pairs).bytes
    }

    /// The store now, for `snapshot()`'s bytes later, on another thread (`StateMachine`'s
    /// `captureSnapshot`). Usually the changes since the last capture, whose snapshot is encoded
    /// by now; otherwise the pairs (O(1), but the next write then copies the dictionary).
    mutating func captureForSnapshot() -> SnapshotCapture {
        let source: SnapshotCapture.Source
        if changes.isComplete, let previous = lastCapture?.value {
            source = .splice(previous, changes.changes)
        } else {
            source = .whole(pairs)
        }
        let capture = SnapshotCapture(source: source, box: EncodedSnapshotBox())
        lastCapture = capture.box
        changes.restart()
        return capture
    }

    /// `pairs` in the snapshot format, with where each pair starts.
    static func encodeWhole(_ pairs: [[UInt8]: [UInt8]]) -> EncodedSnapshot {
        let unsorted = Array(pairs)
        let (order, prefixes) = sortedOrder(count: unsorted.count) { unsorted[$0].key }
        var bodySize = 0
        for (key, value) in unsorted { bodySize += recordSize(key: key, value: value) }
        let total = snapshotMagic.count + 1 + Varint.size(UInt64(unsorted.count)) + bodySize + 4
        var offsets: [Int] = []
        offsets.reserveCapacity(unsorted.count + 1)
        let bytes = [UInt8](unsafeUninitializedCapacity: total) { out, initialized in
            var writer = FixedBufferWriter(UnsafeMutableBufferPointer(rebasing: out[..<total]))
            writer.snapshotHeader(count: unsorted.count)
            for index in order {
                offsets.append(writer.position)
                writer.record(key: unsorted[index].key, value: unsorted[index].value)
            }
            offsets.append(writer.position)
            writer.seal()
            initialized = total
        }
        return EncodedSnapshot(bytes: bytes, offsets: offsets, prefixes: prefixes)
    }

    /// Replaces the whole store with the snapshot's contents. A snapshot that is corrupt or of an
    /// unknown version throws and leaves the store as it was.
    public mutating func restore(from bytes: [UInt8]) throws(KeyValueStoreError) {
        self = try KeyValueStore(snapshot: bytes)
    }

    /// A store decoded from a snapshot; throws when the snapshot is corrupt.
    public init(snapshot bytes: [UInt8]) throws(KeyValueStoreError) {
        let headerSize = Self.snapshotMagic.count + 1
        // magic, version, at least one varint byte, checksum.
        guard bytes.count >= headerSize + 1 + 4 else {
            throw .truncated(what: "snapshot", field: "header", offset: 0)
        }
        guard bytes.starts(with: Self.snapshotMagic) else {
            throw .badMagic(found: Array(bytes.prefix(Self.snapshotMagic.count)))
        }
        let version = bytes[Self.snapshotMagic.count]
        guard version == Self.snapshotVersion else {
            throw .unsupportedVersion(what: "snapshot", version: version, supported: Self.snapshotVersion)
        }
        let bodyEnd = bytes.count - 4
        let stored = UInt32(bytes[bodyEnd]) | UInt32(bytes[bodyEnd + 1]) << 8
            | UInt32(bytes[bodyEnd + 2]) << 16 | UInt32(bytes[bodyEnd + 3]) << 24
        let computed = CRC32C.checksum(bytes[..<bodyEnd])
        guard stored == computed else {
            throw .checksumMismatch(stored: stored, computed: computed)
        }

        var reader = StoreReader(bytes[headerSize..<bodyEnd], what: "snapshot")
        let count = try reader.varint("pair count")
        // Every pair takes at least 3 bytes (two lengths and a one-byte key): a larger count is a
        // lie, and must not make us reserve memory for it.
        guard count <= UInt64(reader.remaining / 3) else {
            throw .implausibleCount(count, remainingBytes: reader.remaining)
        }
        var pairs: [[UInt8]: [UInt8]] = [:]
        pairs.reserveCapacity(Int(count))
        var previousKey: [UInt8]? = nil
        var offsets: [Int] = []
        offsets.reserveCapacity(Int(count) + 1)
        var prefixes: [UInt64] = []
        prefixes.reserveCapacity(Int(count))
        // Whether every record is as this build writes it (shortest varints): then the next
        // snapshot can be spliced from these bytes.
        var canonical = true
        for index in 0..<Int(count) {
            let start = reader.offset
            let key = try reader.key()
            if let previousKey, !bytewiseLess(previousKey, key) {
                throw .keysOutOfOrder(pairIndex: index)
            }
            let value = try reader.lengthPrefixed("value", lengthField: "value length")
            pairs[key] = value
            previousKey = key
            offsets.append(start)
            prefixes.append(keyPrefix(key))
            canonical = canonical && reader.offset - start == recordSize(key: key, value: value)
        }
        guard reader.remaining == 0 else {
            throw .trailingBytes(what: "snapshot", count: reader.remaining)
        }
        offsets.append(bodyEnd)
        self.pairs = pairs
        if canonical {
            lastCapture = EncodedSnapshotBox(EncodedSnapshot(bytes: bytes, offsets: offsets, prefixes: prefixes))
            changes.restart()
        }
    }
}

// MARK: - Errors

/// A malformed command or snapshot. Each case says what was wrong and where; none of them is
/// recoverable by retrying the same bytes.
public enum KeyValueStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The input ended in the middle of `field`.
    case truncated(what: String, field: String, offset: Int)
    /// A varint ran past 10 bytes or past 64 bits.
    case malformedVarint(what: String, field: String, offset: Int)
    /// The format version byte is not one this build reads.
    case unsupportedVersion(what: String, version: UInt8, supported: UInt8)
    /// The operation byte of a command is neither put (1) nor delete (2).
    case unknownOperation(UInt8)
    /// A key of length zero.
    case emptyKey(what: String, offset: Int)
    /// Bytes follow the end of a delete command or of a snapshot's pairs.
    case trailingBytes(what: String, count: Int)
    /// A snapshot that does not begin with `FKVS`.
    case badMagic(found: [UInt8])
    /// A snapshot whose CRC-32C does not match its contents.
    case checksumMismatch(stored: UInt32, computed: UInt32)
    /// A snapshot's pair count cannot fit in the bytes that follow it.
    case implausibleCount(UInt64, remainingBytes: Int)
    /// A snapshot's keys are not strictly ascending (a duplicate or a reordering).
    case keysOutOfOrder(pairIndex: Int)

    public var description: String {
        switch self {
        case .truncated(let what, let field, let offset):
            return "malformed \(what): input ends inside the \(field) at offset \(offset)"
        case .malformedVarint(let what, let field, let offset):
            return "malformed \(what): the \(field) varint at offset \(offset) is longer than 10 bytes or overflows 64 bits"
        case .unsupportedVersion(let what, let version, let supported):
            return "\(what) format version \(version) is not supported (this build reads version \(supported)); was it written by a newer flotilla?"
        case .unknownOperation(let op):
            return "malformed command: unknown operation \(op) (1 = put, 2 = delete)"
        case .emptyKey(let what, let offset):
            return "malformed \(what): empty key at offset \(offset) (keys are at least 1 byte)"
        case .trailingBytes(let what, let count):
            return "malformed \(what): \(count) unexpected bytes after its end"
        case .badMagic(let found):
            return "not a flotilla key-value snapshot: it starts with \(found) instead of \"FKVS\""
        case .checksumMismatch(let stored, let computed):
            return "key-value snapshot is corrupt: stored CRC-32C \(stored) but the contents give \(computed); restore from another replica's snapshot"
        case .implausibleCount(let count, let remaining):
            return "key-value snapshot is corrupt: it claims \(count) pairs but only \(remaining) bytes follow"
        case .keysOutOfOrder(let index):
            return "key-value snapshot is corrupt: key of pair \(index) is not greater than the one before it"
        }
    }
}

// MARK: - Encoding helpers

/// Reads the fields of a command or snapshot (`ByteReader`), with its errors as the store's,
/// naming what was being read.
struct StoreReader {
    private var reader: ByteReader
    private let what: String

    init(_ bytes: ArraySlice<UInt8>, what: String) {
        self.reader = ByteReader(bytes)
        self.what = what
    }

    var remaining: Int { reader.remaining }

    /// Where the next field starts, as an index of the bytes read.
    var offset: Int { reader.offset }

    private func failure(_ error: ByteReadError) -> KeyValueStoreError {
        switch error.kind {
        case .truncated: return .truncated(what: what, field: error.field, offset: error.offset)
        case .malformedVarint: return .malformedVarint(what: what, field: error.field, offset: error.offset)
        }
    }

    mutating func byte(_ field: StaticString) throws(KeyValueStoreError) -> UInt8 {
        do { return try reader.byte(field) } catch { throw failure(error) }
    }

    mutating func varint(_ field: StaticString) throws(KeyValueStoreError) -> UInt64 {
        do { return try reader.varint(field) } catch { throw failure(error) }
    }

    /// A varint length followed by that many bytes.
    mutating func lengthPrefixed(
        _ field: StaticString, lengthField: StaticString
    ) throws(KeyValueStoreError) -> [UInt8] {
        do { return try reader.lengthPrefixed(field, lengthField: lengthField) } catch { throw failure(error) }
    }

    /// A length-prefixed key of at least one byte.
    mutating func key() throws(KeyValueStoreError) -> [UInt8] {
        let offset = reader.offset
        let key = try lengthPrefixed("key", lengthField: "key length")
        guard !key.isEmpty else { throw .emptyKey(what: what, offset: offset) }
        return key
    }

    mutating func rest() -> [UInt8] { reader.rest() }
}

/// `a.lexicographicallyPrecedes(b)` for byte strings, with `memcmp`: the generic one compares
/// element by element, and sorting a big store's keys for a snapshot spends its time there.
@inline(__always)
func bytewiseLess(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    let common = min(a.count, b.count)
    let order = a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in common == 0 ? 0 : memcmp(pa.baseAddress!, pb.baseAddress!, common) }
    }
    return order != 0 ? order < 0 : a.count < b.count
}
