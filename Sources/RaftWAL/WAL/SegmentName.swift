/// A segment's file name, `%016x-%016x.wal`: its sequence number and the raft index of the
/// first entry it may hold (the last index written before it was cut, plus one).
public struct SegmentName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var sequence: UInt64
    public var index: UInt64

    public init(sequence: UInt64, index: UInt64) {
        self.sequence = sequence
        self.index = index
    }

    public var description: String { "\(hex16(sequence))-\(hex16(index)).wal" }

    /// Parses `0000000000000003-0000000000001000.wal`; nil for any other name.
    public init?(_ name: String) {
        guard let (a, b) = parseHexPair(name, suffix: ".wal") else { return nil }
        self.init(sequence: a, index: b)
    }

    public static func < (lhs: SegmentName, rhs: SegmentName) -> Bool {
        (lhs.sequence, lhs.index) < (rhs.sequence, rhs.index)
    }
}

/// The segments of a WAL directory, sorted by sequence, checked to be contiguous.
func listSegments(_ directory: String, _ fileSystem: any WALFileSystem) throws(WALError) -> [SegmentName] {
    var segments: [SegmentName] = []
    for name in try fileSystem.listDirectory(directory) where name.hasSuffix(".wal") {
        guard let segment = SegmentName(name) else { throw WALError.badSegmentName(name) }
        segments.append(segment)
    }
    segments.sort()
    for (previous, next) in zip(segments, segments.dropFirst()) where next.sequence != previous.sequence + 1 {
        throw WALError.missingSegment(directory: directory, after: previous.description, next: next.description)
    }
    return segments
}

/// The segments to read for a snapshot at `index`: from the last one that starts at or before
/// it (entries after the snapshot may be in it) to the end. etcd's `selectWALFiles`.
func segmentsToRead(_ segments: [SegmentName], snapshotIndex: UInt64, directory: String) throws(WALError) -> ArraySlice<SegmentName> {
    guard let first = segments.lastIndex(where: { $0.index <= snapshotIndex }) else {
        throw WALError.noSegment(directory: directory, snapshotIndex: snapshotIndex)
    }
    return segments[first...]
}

func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
}

/// `<16 hex>-<16 hex><suffix>` → the two numbers.
func parseHexPair(_ name: String, suffix: String) -> (UInt64, UInt64)? {
    guard name.hasSuffix(suffix) else { return nil }
    let stem = name.dropLast(suffix.count)
    let parts = stem.split(separator: "-", omittingEmptySubsequences: false)
    guard parts.count == 2, parts[0].count == 16, parts[1].count == 16,
          let a = UInt64(parts[0], radix: 16), let b = UInt64(parts[1], radix: 16)
    else { return nil }
    return (a, b)
}
