import Raft

/// The record types of etcd's WAL.
public enum WALRecordType: Int64, Sendable, CustomStringConvertible {
    /// Opaque bytes the application chose when it created the WAL; repeated in every segment.
    case metadata = 1
    /// A raftpb Entry.
    case entry = 2
    /// A raftpb HardState.
    case state = 3
    /// The running CRC carried into a new segment (no data).
    case crc = 4
    /// A walpb.Snapshot: a snapshot was taken (or received) at that index and term.
    case snapshot = 5

    public var description: String {
        switch self {
        case .metadata: "metadata"
        case .entry: "entry"
        case .state: "state"
        case .crc: "crc"
        case .snapshot: "snapshot"
        }
    }
}

/// One walpb.Record, and the framing around it on disk:
///
///     u64 little-endian length field | walpb.Record (1: type, 2: crc, 3: data) | zero padding
///
/// The length field's low 56 bits are the record's length; when the record is not a multiple
/// of 8 bytes long, its top byte is `0x80 | padding` and that many zero bytes follow, so every
/// record starts 8-byte aligned (and a length field never straddles a disk sector: it is
/// written entirely or not at all).
struct WALRecord: Equatable {
    var type: Int64
    var crc: UInt32
    var data: [UInt8]
    /// Whether field 3 was present (a crc record has none).
    var hasData = false

    /// The largest record the reader accepts; guards against a damaged length field asking for
    /// a huge allocation. (etcd 3.5 uses 10 MB for its limit; snapshots are not in the WAL.)
    static let maxLength: UInt64 = 1 << 30

    /// The length field for a record of `length` bytes, and its padding.
    static func lengthField(for length: Int) -> (field: UInt64, padding: Int) {
        let padding = (8 - length % 8) % 8
        var field = UInt64(length)
        if padding != 0 { field |= (0x80 | UInt64(padding)) << 56 }
        return (field, padding)
    }

    /// The length and padding a length field describes; nil when the top byte is not one the
    /// writer produces for that length (a damaged length field).
    static func decodeLengthField(_ field: UInt64) -> (length: Int, padding: Int)? {
        let length = field & 0x00FF_FFFF_FFFF_FFFF
        let top = UInt8(truncatingIfNeeded: field >> 56)
        guard length <= maxLength else { return nil }
        let expected = lengthField(for: Int(length))
        guard expected.field >> 56 == UInt64(top) else { return nil }
        return (Int(length), expected.padding)
    }

    /// Appends the framed record (length field, record, padding) for `data` of `type` with the
    /// chained checksum `crc` to `buffer`.
    static func appendFramed(type: WALRecordType, crc: UInt32, data: [UInt8], to buffer: inout [UInt8]) {
        appendFramed(type: type, crc: crc, dataCount: data.count, to: &buffer) { $0.append(contentsOf: data) }
    }

    static func appendFramed(
        type: WALRecordType, crc: UInt32, dataCount: Int, to buffer: inout [UInt8],
        writeData: (inout [UInt8]) -> Void
    ) {
        var length = 2 + Varint.size(UInt64(type.rawValue)) + Varint.size(UInt64(crc))
        // The crc record has no data field (etcd leaves it nil); other records always carry one.
        let hasData = type != .crc
        if hasData { length += 1 + Varint.size(UInt64(dataCount)) + dataCount }
        let (field, padding) = lengthField(for: length)
        withUnsafeBytes(of: field.littleEndian) { buffer.append(contentsOf: $0) }
        buffer.append(0x08)
        Varint.append(UInt64(type.rawValue), to: &buffer)
        buffer.append(0x10)
        Varint.append(UInt64(crc), to: &buffer)
        if hasData {
            buffer.append(0x1A)
            Varint.append(UInt64(dataCount), to: &buffer)
            let before = buffer.count
            writeData(&buffer)
            precondition(buffer.count - before == dataCount, "record data size changed while encoding")
        }
        for _ in 0..<padding { buffer.append(0) }
    }

    /// Decodes the walpb.Record in `bytes[range]`; nil when malformed.
    static func decode(_ bytes: [UInt8], _ range: Range<Int>) -> WALRecord? {
        var scanner = ProtoScanner(bytes, from: range.lowerBound, to: range.upperBound)
        var record = WALRecord(type: 0, crc: 0, data: [])
        var malformed = false
        while let (field, wireType) = scanner.tag(malformed: &malformed) {
            switch (field, wireType) {
            case (1, 0):
                guard let v = scanner.varint() else { return nil }
                record.type = Int64(bitPattern: v)
            case (2, 0):
                guard let v = scanner.varint(), v <= UInt64(UInt32.max) else { return nil }
                record.crc = UInt32(v)
            case (3, 2):
                guard let r = scanner.lengthDelimited() else { return nil }
                record.data = Array(bytes[r])
                record.hasData = true
            default:
                guard scanner.skip(wireType: wireType) else { return nil }
            }
        }
        return malformed ? nil : record
    }

    /// The length of the walpb.Record that starts at `start`, as its own fields say (type,
    /// crc, then the data's length prefix), or nil if they do not parse. Used to tell a damaged
    /// length field from a torn write: if the fields imply another length and that record is
    /// intact, the length field was damaged.
    static func impliedLength(_ bytes: [UInt8], at start: Int) -> Int? {
        var scanner = ProtoScanner(bytes, from: start, to: bytes.count)
        guard scanner.varint() == 0x08, scanner.varint() != nil,
              scanner.varint() == 0x10, scanner.varint() != nil
        else { return nil }
        let afterCRC = scanner.position
        if scanner.varint() == 0x1A, let r = scanner.lengthDelimited() {
            return r.upperBound - start
        }
        return afterCRC - start
    }
}
