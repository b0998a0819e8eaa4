import Raft

/// One record as the reader found it: where it is, how it is framed, and what it holds.
public struct WALRecordInfo: Sendable, Equatable {
    public enum Payload: Sendable, Equatable {
        case metadata([UInt8])
        case entry(Entry)
        case state(HardState)
        /// The running CRC carried into the segment.
        case crc(UInt32)
        case snapshot(WALSnapshot)
    }

    public var type: WALRecordType
    /// The segment's file name.
    public var segment: String
    /// Offset of the record's length field in the segment.
    public var offset: Int64
    /// Length of the encoded walpb.Record (without the 8-byte length field and the padding).
    public var length: Int
    public var padding: Int
    /// The chained CRC stored in the record.
    public var crc: UInt32
    /// Whether the CRC was checked against the chain. False only for the crc record that opens
    /// the first segment read (it seeds the chain: nothing before it was read).
    public var crcChecked: Bool
    public var payload: Payload
}

/// How the records ended.
public enum WALEnd: Sendable, Equatable {
    /// The last segment ended cleanly: at the end of the file or at a zero length field (the
    /// preallocated rest of the segment). `offset` is where the next record goes.
    case clean(segment: String, offset: Int64)
    /// The last segment ends in a torn write, what a crash while writing leaves: the file ends
    /// inside a record, or an unsynced record has an all-zero sector or a zero tail. Nothing in
    /// it was acknowledged; the writer truncates at `offset`.
    case torn(segment: String, offset: Int64, reason: String)

    public var segment: String {
        switch self { case .clean(let s, _), .torn(let s, _, _): s }
    }
    public var offset: Int64 {
        switch self { case .clean(_, let o), .torn(_, let o, _): o }
    }
}

/// Reads the records of a WAL directory in order, checking the framing and the chained CRC,
/// and decoding each payload. Damage before the end of the last segment throws
/// `WALError.corrupt` naming the file and offset; a torn tail in the last segment ends the
/// iteration with `end` set to `.torn`.
///
/// This is what `WAL.readAll` uses, and what an inspection tool (`flotilla wal dump`) can
/// iterate. Each segment is read whole into memory (at most the segment size, 64 MiB).
public struct WALReader {
    public let directory: String
    /// The segments read, in order.
    public let segments: [SegmentName]
    /// Set once `next()` has returned nil.
    public private(set) var end: WALEnd?
    /// The running CRC after the last record returned (nil before the first crc record).
    public private(set) var crc: UInt32?

    private let fileSystem: any WALFileSystem
    private var segmentPosition = -1
    private var bytes: [UInt8] = []
    private var offset = 0
    /// Position of the next record in the current segment (0 = the first).
    private var position = 0

    /// A reader of every segment in `directory`.
    public init(directory: String, fileSystem: any WALFileSystem = POSIXFileSystem()) throws(WALError) {
        self.init(directory: directory, segments: try listSegments(directory, fileSystem), fileSystem: fileSystem)
    }

    init(directory: String, segments: [SegmentName], fileSystem: any WALFileSystem) {
        self.directory = directory
        self.segments = segments
        self.fileSystem = fileSystem
    }

    private var segmentName: String { segments[segmentPosition].description }
    private var isLastSegment: Bool { segmentPosition == segments.count - 1 }

    /// The next record, or nil at the end (see `end`).
    public mutating func next() throws(WALError) -> WALRecordInfo? {
        while end == nil {
            if segmentPosition >= 0 && offset < bytes.count {
                if let record = try nextInSegment() { return record }
                continue
            }
            // The current segment is done (or none was read yet): on to the next one.
            if segments.isEmpty {
                end = .clean(segment: "", offset: 0)
            } else if segmentPosition >= 0 && isLastSegment {
                end = .clean(segment: segmentName, offset: Int64(offset))
            } else {
                segmentPosition += 1
                offset = 0
                position = 0
                bytes = try fileSystem.readFile(joinPath(directory, segmentName))
            }
        }
        return nil
    }

    /// Decodes the record at `offset` in the current segment; nil when the segment (or, torn,
    /// the WAL) ended there.
    private mutating func nextInSegment() throws(WALError) -> WALRecordInfo? {
        let start = offset
        let remaining = bytes.count - start
        if remaining < 8 {
            if allZero(start..<bytes.count) { return finishSegment(at: start) }
            return try failure(at: start, length: remaining, padding: 0, "the file ends inside a length field")
        }
        let field = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: start, as: UInt64.self)) }
        if field == 0 {
            // A zero length field: the rest is the preallocated space (or, after a crash, the
            // sectors of an unsynced write that never reached the disk).
            if !allZero(start..<bytes.count) {
                if !isLastSegment {
                    throw corrupt(start, "non-zero bytes after the end of the records of a segment that is not the last")
                }
                // Sectors of an interrupted write landed after one that did not: a torn
                // tail, to be zeroed by the repair so that it can never be read as records.
                return try tornTail(at: start, "a zero length field", reason: "a zero length field with the rest of an interrupted write after it")
            }
            return finishSegment(at: start)
        }
        guard let (length, padding) = WALRecord.decodeLengthField(field) else {
            // 8 aligned bytes never straddle a sector, so on a disk that writes whole sectors a
            // length field is never torn and a malformed one is damage. A device that tears
            // inside a sector leaves the field's first bytes and zeros from there to the end
            // of the file (its padding flag, in the top byte, was never written): a torn tail.
            let reason = "malformed length field 0x\(String(field, radix: 16))"
            if isLastSegment, tornInsideLengthField(at: start) {
                return try tornTail(at: start, reason, reason: "\(reason), with only zeros after its first bytes")
            }
            throw corrupt(start, reason)
        }
        let body = start + 8
        let extent = body + length + padding
        if extent > bytes.count {
            return try failure(at: start, length: length, padding: padding, "the record of \(length) bytes runs past the end of the file")
        }
        guard let record = WALRecord.decode(bytes, body..<body + length) else {
            return try failure(at: start, length: length, padding: padding, "the record does not parse")
        }
        if !allZero(body + length..<extent) {
            return try failure(at: start, length: length, padding: padding, "non-zero padding")
        }
        guard let type = WALRecordType(rawValue: record.type) else {
            if chainHolds(record) {
                throw WALError.unknownRecordType(file: segmentName, offset: Int64(start), type: record.type)
            }
            return try failure(at: start, length: length, padding: padding, "CRC mismatch")
        }
        var checked = true
        if type == .crc {
            if let running = crc, running != record.crc {
                return try failure(at: start, length: length, padding: padding,
                                   "CRC record holds 0x\(String(record.crc, radix: 16)) but the running CRC is 0x\(String(running, radix: 16))")
            }
            checked = crc != nil
            crc = record.crc
        } else {
            let computed = CRC32C.update(crc ?? 0, with: record.data)
            if computed != record.crc {
                return try failure(at: start, length: length, padding: padding,
                                   "CRC mismatch (stored 0x\(String(record.crc, radix: 16)), computed 0x\(String(computed, radix: 16)))")
            }
            crc = computed
        }
        let payload = try decodePayload(type, record, at: start)
        offset = extent
        position += 1
        return WALRecordInfo(
            type: type, segment: segmentName, offset: Int64(start), length: length, padding: padding,
            crc: record.crc, crcChecked: checked, payload: payload)
    }

    /// Decodes a record whose CRC held and checks that it is one etcd's writer can produce
    /// there. The CRC covers the data only, not the type: a flipped type bit passes the CRC, so
    /// these checks are what catch it — a crc record exactly first in a segment and without
    /// data, metadata exactly second, HardState and snapshot payloads in the canonical form
    /// etcd writes (every field present), entries and HardStates with a term.
    private func decodePayload(_ type: WALRecordType, _ record: WALRecord, at start: Int) throws(WALError) -> WALRecordInfo.Payload {
        if (type == .crc) != (position == 0) {
            throw corrupt(start, position == 0 ? "the segment does not start with a crc record" : "a crc record inside a segment")
        }
        if (type == .metadata) != (position == 1) {
            throw corrupt(start, position == 1 ? "the second record of the segment is not the metadata" : "a metadata record inside a segment")
        }
        switch type {
        case .metadata:
            return .metadata(record.data)
        case .crc:
            if record.hasData { throw corrupt(start, "a crc record with data") }
            return .crc(record.crc)
        case .entry:
            let entry: Entry
            do { entry = try Entry(serializedBytes: record.data) } catch {
                throw corrupt(start, "an entry record that does not decode (\(error))")
            }
            if entry.term == 0 || entry.index == 0 { throw corrupt(start, "an entry record without a term or an index") }
            // A configuration change always carries its encoded change; an empty one is a
            // HardState read as an entry (a flipped type bit).
            if entry.type != .normal && entry.data.isEmpty { throw corrupt(start, "a configuration-change entry without data") }
            return .entry(entry)
        case .state:
            guard let state = try? HardState(serializedBytes: record.data), state.term > 0,
                  state.serializedBytes() == record.data
            else { throw corrupt(start, "a state record that is not a HardState as etcd writes it") }
            return .state(state)
        case .snapshot:
            guard let snapshot = WALSnapshot(serializedBytes: record.data), snapshot.serializedBytes() == record.data else {
                throw corrupt(start, "a snapshot record that is not a walpb.Snapshot as etcd writes it")
            }
            return .snapshot(snapshot)
        }
    }

    private func chainHolds(_ record: WALRecord) -> Bool {
        CRC32C.update(crc ?? 0, with: record.data) == record.crc
    }

    private mutating func finishSegment(at position: Int) -> WALRecordInfo? {
        if isLastSegment {
            end = .clean(segment: segmentName, offset: Int64(position))
        } else {
            offset = bytes.count  // move on at the next call
        }
        return nil
    }

    /// A record at `start` that is not intact: the end of the WAL if it can be a torn write
    /// in the last segment, corruption otherwise.
    private mutating func failure(at start: Int, length: Int, padding: Int, _ reason: String) throws(WALError) -> WALRecordInfo? {
        if isLastSegment && looksTorn(at: start, length: length, padding: padding) {
            return try tornTail(at: start, reason, reason: reason)
        }
        throw corrupt(start, reason)
    }

    /// The WAL ends in a torn write at `start` (`damage` says what is wrong there, `reason`
    /// is what `end` records), unless intact records follow it.
    private mutating func tornTail(at start: Int, _ damage: String, reason: String) throws(WALError) -> WALRecordInfo? {
        try refuseIfRecordsFollow(start, damage)
        end = .torn(segment: segmentName, offset: Int64(start), reason: reason)
        return nil
    }

    /// A torn write ends the log; intact records after it mean it was not the end. They can
    /// be the rest of a write that a power failure cut out of order (sectors reach the disk in
    /// any order before a sync), or acknowledged records after damage — which cannot be told
    /// apart, so this refuses rather than risk dropping acknowledged records (etcd truncates).
    private func refuseIfRecordsFollow(_ start: Int, _ reason: String) throws(WALError) {
        if let later = chainedRecords(from: start + 8) {
            throw corrupt(start, "\(reason), yet intact records follow at offset \(later) (acknowledged records may be damaged; if the machine lost power during a write they are the unsynced rest of it)")
        }
    }

    /// The offset of the first pair of intact records at or after `from`: each framed
    /// correctly, the second's CRC chaining from the first's.
    private func chainedRecords(from: Int) -> Int? {
        var candidate = (from + 7) / 8 * 8  // every record starts 8-aligned
        while candidate + 8 <= bytes.count {
            if let (first, next) = frame(at: candidate), let (second, _) = frame(at: next),
               second.type != WALRecordType.crc.rawValue,
               CRC32C.update(first.crc, with: second.data) == second.crc {
                return candidate
            }
            candidate += 8
        }
        return nil
    }

    /// The record framed at `start` and the offset after it, if the framing holds.
    private func frame(at start: Int) -> (WALRecord, Int)? {
        guard start + 8 <= bytes.count else { return nil }
        let field = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: start, as: UInt64.self)) }
        guard field != 0, let (length, padding) = WALRecord.decodeLengthField(field),
              start + 8 + length + padding <= bytes.count,
              let record = WALRecord.decode(bytes, start + 8..<start + 8 + length)
        else { return nil }
        return (record, start + 8 + length + padding)
    }

    /// Whether the damaged record at `start` is what a crash during an unsynced write leaves.
    ///
    /// A disk writes whole sectors, and the writer only ever writes over zeros (segments are
    /// preallocated; a repair zeroes what follows the truncation point). So an interrupted write
    /// leaves either the file ending inside the record, a 512-byte sector of the record still
    /// all zero (etcd's rule: sectors may reach the disk out of order), or the record cut off
    /// with nothing but zeros from some point to the end of the file. A bit flip in a complete
    /// record shows none of these (except in the rare record whose own bytes end in zeros),
    /// and a damaged length field is recognised by the record's own fields implying another,
    /// intact, length.
    private func looksTorn(at start: Int, length: Int, padding: Int) -> Bool {
        let body = start + 8
        if lengthFieldDamaged(at: start, length: length) { return false }
        let recordEnd = body + length
        if recordEnd + padding > bytes.count { return true }
        // Sector chunks of the record, split at the file's 512-byte boundaries.
        var chunkStart = body
        while chunkStart < recordEnd {
            let chunkEnd = min(recordEnd, (chunkStart / 512 + 1) * 512)
            if allZero(chunkStart..<chunkEnd) { return true }
            chunkStart = chunkEnd
        }
        // Cut off: the record's last byte and everything after it are zeros.
        return length > 0 && bytes[recordEnd - 1] == 0 && allZero(recordEnd..<bytes.count)
    }

    /// Whether the length field at `start` is a write cut inside it: some of its first bytes,
    /// then nothing but zeros to the end of the file.
    private func tornInsideLengthField(at start: Int) -> Bool {
        var written = 8
        while written > 0 && bytes[start + written - 1] == 0 { written -= 1 }
        return written < 8 && allZero(start + written..<bytes.count)
    }

    /// True when the record's own fields give a different length and the record of that
    /// length is intact (it parses and its CRC holds): the length field, not the record, is
    /// damaged.
    private func lengthFieldDamaged(at start: Int, length: Int) -> Bool {
        let body = start + 8
        guard let implied = WALRecord.impliedLength(bytes, at: body), implied != length,
              body + implied <= bytes.count,
              let record = WALRecord.decode(bytes, body..<body + implied)
        else { return false }
        if record.type == WALRecordType.crc.rawValue { return crc == nil || crc == record.crc }
        return chainHolds(record)
    }

    private func allZero(_ range: Range<Int>) -> Bool {
        if range.isEmpty { return true }
        return bytes.withUnsafeBytes { raw in
            var i = range.lowerBound
            // Eight bytes at a time: this scans the preallocated tail of every segment.
            while i + 8 <= range.upperBound {
                if raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
                i += 8
            }
            while i < range.upperBound {
                if raw[i] != 0 { return false }
                i += 1
            }
            return true
        }
    }

    private func corrupt(_ offset: Int, _ reason: String) -> WALError {
        WALError.corrupt(file: segmentName, offset: Int64(offset), reason: reason)
    }
}
