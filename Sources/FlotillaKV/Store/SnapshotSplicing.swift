#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Flotilla
import Synchronization

// Snapshots spliced from the previous one.
//
// A node snapshots every `--snapshot-count` applied entries (10,000 by default), and the store
// is usually much bigger than what changed since the last snapshot. Encoding the whole store
// each time sorts every key and copies every pair, on every node at once. Since the format keeps
// the pairs sorted, the next snapshot is instead the previous one with the changed keys merged
// in: sort only the changed keys, copy the runs of unchanged pairs between them with `memcpy`,
// checksum. The bytes are exactly those of a whole encoding (the tests compare the two). Measured
// against the whole encoding: see Benchmarks/README.md.
//
// It also means a capture needs no copy of the store: the store records its changes (a key and
// a value reference each) and the capture takes them, so the store can be a plain `Dictionary`
// updated in place, which is cheaper per write than a persistent structure captured in O(1)
// (path copies and cache misses; see Benchmarks/README.md). Only a capture with no encoded
// snapshot before it — the first one, or after a capture never encoded — takes the dictionary
// itself, which the next write then copies once.

/// A snapshot already encoded, with where each of its pairs starts: what the next one is
/// spliced from.
struct EncodedSnapshot: Sendable {
    /// The snapshot, in the format of `KeyValueStore`.
    let bytes: [UInt8]
    /// Where each pair's record starts in `bytes`, in key order, then where the checksum starts.
    let offsets: [Int]
    /// Each pair's `keyPrefix`, in key order: the splice's search compares these first.
    let prefixes: [UInt64]

    var count: Int { prefixes.count }
}

/// The puts and deletes applied since the last snapshot capture, in order: what the next
/// snapshot splices in.
struct ChangeLog: Sendable {
    struct Change: Sendable {
        let key: [UInt8]
        /// The value put, or nil for a delete.
        let value: [UInt8]?
    }

    private(set) var changes: [Change] = []
    /// Whether every change since the last capture is here: not before the first capture (a
    /// store that is never snapshotted keeps no log), nor once there were too many.
    private(set) var isComplete = false

    mutating func record(key: [UInt8], value: [UInt8]?, storeCount: Int) {
        guard isComplete else { return }
        // Past this, splicing saves little over a whole encoding and the log holds on to
        // values the store has already dropped: give up until the next capture.
        guard changes.count < max(4096, storeCount / 2) else {
            changes = []
            isComplete = false
            return
        }
        changes.append(Change(key: key, value: value))
    }

    /// Starts over, at a capture.
    mutating func restart() {
        changes = []
        isComplete = true
    }
}

/// Where the snapshot of a capture is kept once encoded, for the capture after it. Copies of a
/// store share it, which is harmless: each capture splices from it without changing it.
final class EncodedSnapshotBox: Sendable {
    private let snapshot: Mutex<EncodedSnapshot?>

    init(_ snapshot: EncodedSnapshot? = nil) {
        self.snapshot = Mutex(snapshot)
    }

    var value: EncodedSnapshot? {
        get { snapshot.withLock { $0 } }
        set { snapshot.withLock { $0 = newValue } }
    }
}

/// The store at one moment, as what its snapshot is made from on another thread: the snapshot
/// of the capture before and the changes since, or, when that snapshot is not there (the first
/// capture, a capture never encoded, too many changes), the pairs themselves.
struct SnapshotCapture: Sendable {
    enum Source: Sendable {
        case splice(EncodedSnapshot, [ChangeLog.Change])
        case whole([[UInt8]: [UInt8]])
    }

    let source: Source
    /// Receives this capture's snapshot, for the next capture.
    let box: EncodedSnapshotBox

    var isSplice: Bool {
        if case .splice = source { return true }
        return false
    }

    func encode() -> [UInt8] {
        let encoded: EncodedSnapshot
        switch source {
        case .splice(let previous, let changes): encoded = SnapshotSplicer.splice(previous, changes)
        case .whole(let pairs): encoded = KeyValueStore.encodeWhole(pairs)
        }
        box.value = encoded
        return encoded.bytes
    }
}

/// Merges the changes of a capture into the snapshot of the capture before it.
enum SnapshotSplicer {
    /// `old` with `changes` applied, encoded.
    static func splice(_ old: EncodedSnapshot, _ changes: [ChangeLog.Change]) -> EncodedSnapshot {
        let latest = latestByKey(changes)
        // The old pairs each changed key replaces: its own, or none, where it goes.
        var replaced: [Range<Int>] = []
        replaced.reserveCapacity(latest.count)
        var count = old.count
        var bodySize = old.offsets[old.count] - old.offsets[0]
        old.bytes.withUnsafeBufferPointer { oldBytes in
            var low = 0
            for (change, prefix) in latest {
                let position = lowerBound(change.key, prefix, in: old, oldBytes, from: low)
                let found = position < old.count && old.prefixes[position] == prefix
                    && keyOrder(change.key, recordAt: old.offsets[position], oldBytes) == 0
                replaced.append(position..<(found ? position + 1 : position))
                if found {
                    count -= 1
                    bodySize -= old.offsets[position + 1] - old.offsets[position]
                }
                if let value = change.value {
                    count += 1
                    bodySize += recordSize(key: change.key, value: value)
                }
                low = replaced[replaced.count - 1].upperBound
            }
        }

        let headerSize = KeyValueStore.snapshotMagic.count + 1 + Varint.size(UInt64(count))
        let total = headerSize + bodySize + 4
        var offsets: [Int] = []
        offsets.reserveCapacity(count + 1)
        var prefixes: [UInt64] = []
        prefixes.reserveCapacity(count)
        let bytes = [UInt8](unsafeUninitializedCapacity: total) { out, initialized in
            old.bytes.withUnsafeBufferPointer { oldBytes in
                var writer = FixedBufferWriter(UnsafeMutableBufferPointer(rebasing: out[..<total]))
                writer.snapshotHeader(count: count)
                // Old pairs [from, to) unchanged: one copy, their offsets moved by the same amount.
                func copyOld(_ from: Int, _ to: Int) {
                    guard from < to else { return }
                    let shift = writer.position - old.offsets[from]
                    for i in from..<to { offsets.append(old.offsets[i] + shift) }
                    prefixes.append(contentsOf: old.prefixes[from..<to])
                    let start = old.offsets[from]
                    writer.copy(oldBytes.baseAddress! + start, count: old.offsets[to] - start)
                }
                var next = 0
                for ((change, prefix), replaced) in zip(latest, replaced) {
                    copyOld(next, replaced.lowerBound)
                    next = replaced.upperBound
                    if let value = change.value {
                        offsets.append(writer.position)
                        prefixes.append(prefix)
                        writer.record(key: change.key, value: value)
                    }
                }
                copyOld(next, old.count)
                offsets.append(writer.position)
                writer.seal()
            }
            initialized = total
        }
        return EncodedSnapshot(bytes: bytes, offsets: offsets, prefixes: prefixes)
    }

    /// The last change of each key, in ascending key order, with the key's prefix.
    static func latestByKey(_ changes: [ChangeLog.Change]) -> [(change: ChangeLog.Change, prefix: UInt64)] {
        let (order, prefixes) = sortedOrder(count: changes.count) { changes[$0].key }
        var latest: [(change: ChangeLog.Change, prefix: UInt64)] = []
        latest.reserveCapacity(order.count)
        for (rank, index) in order.enumerated() {
            // Equal keys are sorted by position in the log: the last one of a run wins.
            if rank + 1 < order.count, prefixes[rank + 1] == prefixes[rank],
               changes[order[rank + 1]].key == changes[index].key {
                continue
            }
            latest.append((changes[index], prefixes[rank]))
        }
        return latest
    }

    /// The first of `old`'s pairs from `low` on whose key is not below `key`.
    private static func lowerBound(
        _ key: [UInt8], _ prefix: UInt64, in old: EncodedSnapshot, _ bytes: UnsafeBufferPointer<UInt8>, from low: Int
    ) -> Int {
        var low = low
        var high = old.count
        while low < high {
            let middle = low + (high - low) / 2
            let other = old.prefixes[middle]
            let below = other != prefix ? other < prefix : keyOrder(key, recordAt: old.offsets[middle], bytes) > 0
            if below { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// `key` against the key of the record at `offset`: negative, zero or positive.
    private static func keyOrder(_ key: [UInt8], recordAt offset: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        guard case .value(let encodedLength, let position) = Varint.decode(bytes, from: offset, to: bytes.count) else {
            preconditionFailure("a snapshot this build encoded has a malformed key length at \(offset)")
        }
        let length = Int(encodedLength)
        let common = min(key.count, length)
        let order = key.withUnsafeBufferPointer { k in
            common == 0 ? 0 : memcmp(k.baseAddress!, bytes.baseAddress! + position, common)
        }
        if order != 0 { return Int(order) }
        return key.count - length
    }
}

/// Bytes a pair's record takes in a snapshot.
func recordSize(key: [UInt8], value: [UInt8]) -> Int {
    Varint.size(UInt64(key.count)) + key.count + Varint.size(UInt64(value.count)) + value.count
}

/// A key's first 8 bytes, big-endian, zero-padded: two keys whose prefixes differ are in the
/// same order as their prefixes; keys with equal prefixes need a whole comparison.
@inline(__always)
func keyPrefix(_ key: [UInt8]) -> UInt64 {
    key.withUnsafeBufferPointer { bytes in
        var prefix: UInt64 = 0
        for i in 0..<8 { prefix = prefix << 8 | UInt64(i < bytes.count ? bytes[i] : 0) }
        return prefix
    }
}

/// The positions `0..<count` in ascending order of `key(position)`, equal keys in position
/// order, with each one's key prefix. Sorting the keys themselves spent most of a snapshot's
/// time moving reference-counted arrays and calling `memcmp`; this sorts plain integers instead
/// and compares whole keys only within runs of equal prefixes.
func sortedOrder(count: Int, key: (Int) -> [UInt8]) -> (order: [Int], prefixes: [UInt64]) {
    var ranks: [(prefix: UInt64, index: Int)] = []
    ranks.reserveCapacity(count)
    for index in 0..<count { ranks.append((keyPrefix(key(index)), index)) }
    ranks.sort { $0.prefix != $1.prefix ? $0.prefix < $1.prefix : $0.index < $1.index }
    var order = ranks.map(\.index)
    var start = 0
    while start < ranks.count {
        var end = start + 1
        while end < ranks.count && ranks[end].prefix == ranks[start].prefix { end += 1 }
        if end - start > 1 {
            order[start..<end].sort { a, b in
                let (ka, kb) = (key(a), key(b))
                return bytewiseLess(ka, kb) || (ka == kb && a < b)
            }
        }
        start = end
    }
    return (order, ranks.map(\.prefix))
}

/// The snapshot format's parts, written into memory sized for the whole snapshot beforehand.
extension FixedBufferWriter {
    mutating func snapshotHeader(count: Int) {
        bytes(KeyValueStore.snapshotMagic)
        byte(KeyValueStore.snapshotVersion)
        varint(UInt64(count))
    }

    mutating func record(key: [UInt8], value: [UInt8]) {
        varint(UInt64(key.count))
        bytes(key)
        varint(UInt64(value.count))
        bytes(value)
    }

    /// Ends the snapshot with the CRC-32C of everything written, little-endian, which must
    /// fill the buffer exactly: a mismatch is a bug in the size computed, and traps.
    mutating func seal() {
        littleEndian(CRC32C.update(0, buffer: written))
        precondition(position == capacity, "snapshot size: \(position) written, \(capacity) computed")
    }
}
