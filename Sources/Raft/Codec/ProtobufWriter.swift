/// A raftpb message that knows its exact encoded size, encodes into a shared writer (so that
/// embedded messages need no buffer of their own), and merges its fields from a reader.
protocol ProtobufCodable {
    /// The protobuf message name, e.g. `raftpb.Entry`, for errors.
    static var protobufName: StaticString { get }
    /// The value every field of which is absent.
    static var protobufDefault: Self { get }
    /// The exact number of bytes `encode(into:)` writes.
    var protobufSize: Int { get }
    /// Writes the fields, in field-number order, as etcd v3.4 (gogoproto) does.
    func encode(into writer: inout ProtobufWriter)
    /// Reads fields until the end of the current message: scalars replace, repeated fields
    /// append, embedded messages merge; unknown fields are skipped.
    mutating func merge(from reader: inout ProtobufReader) throws(ProtobufDecodingError)
}

extension ProtobufCodable {
    /// The encoding of `self` in a buffer allocated once at the exact size.
    func protobufBytes() -> [UInt8] {
        let size = protobufSize
        var writer = ProtobufWriter(capacity: size)
        encode(into: &writer)
        assert(writer.bytes.count == size, "protobufSize of \(Self.protobufName) disagrees with encode")
        return writer.bytes
    }

    /// Appends the encoding of `self` to `buffer`, growing it at most once.
    func appendProtobufBytes(to buffer: inout [UInt8]) {
        let size = protobufSize
        var writer = ProtobufWriter(taking: &buffer, extraCapacity: size)
        encode(into: &writer)
        buffer = writer.bytes
    }

    /// A value decoded from `bytes`.
    static func decodeProtobuf(_ bytes: [UInt8]) throws(ProtobufDecodingError) -> Self {
        var reader = ProtobufReader(bytes, messageType: protobufName)
        var value = protobufDefault
        try value.merge(from: &reader)
        return value
    }
}

/// Bytes a field with a one-byte tag and a varint value takes.
@inline(__always)
func varintFieldSize(_ value: UInt64) -> Int {
    1 &+ varintSize(value)
}

/// Bytes a length-delimited field with a one-byte tag and a payload of `count` bytes takes.
@inline(__always)
func lengthDelimitedFieldSize(_ count: Int) -> Int {
    1 &+ varintSize(UInt64(count)) &+ count
}

/// Writes protobuf wire data into a byte array. Every field number of raftpb is below 16, so a
/// tag is always the single byte `field << 3 | wireType`.
struct ProtobufWriter {
    private(set) var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// A writer that appends to `buffer`, which it takes over (leaving it empty, so that no
    /// copy is made); hand the bytes back from `bytes` when done.
    init(taking buffer: inout [UInt8], extraCapacity: Int) {
        bytes = []
        swap(&bytes, &buffer)
        bytes.reserveCapacity(bytes.count + extraCapacity)
    }

    @inline(__always)
    private mutating func writeTag(_ field: UInt8, wireType: UInt8) {
        assert(field > 0 && field < 16)
        bytes.append(field &<< 3 | wireType)
    }

    mutating func writeVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest &>>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: rest))
    }

    /// A varint field, written even when zero (etcd's non-nullable scalars).
    mutating func writeVarintField(_ field: UInt8, _ value: UInt64) {
        writeTag(field, wireType: 0)
        writeVarint(value)
    }

    mutating func writeBoolField(_ field: UInt8, _ value: Bool) {
        writeTag(field, wireType: 0)
        bytes.append(value ? 1 : 0)
    }

    mutating func writeEnumField<E: RawRepresentable>(_ field: UInt8, _ value: E) where E.RawValue == UInt8 {
        writeVarintField(field, UInt64(value.rawValue))
    }

    /// A bytes field, written whatever its length (callers skip empty optional ones).
    mutating func writeBytesField(_ field: UInt8, _ value: [UInt8]) {
        writeTag(field, wireType: 2)
        writeVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// An embedded message: its size, then its fields written straight into this buffer.
    mutating func writeMessageField<M: ProtobufCodable>(_ field: UInt8, _ value: M) {
        writeTag(field, wireType: 2)
        writeVarint(UInt64(value.protobufSize))
        value.encode(into: &self)
    }
}
