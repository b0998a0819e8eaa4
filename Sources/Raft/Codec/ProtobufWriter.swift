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
        guard size > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            guard let base = buffer.baseAddress else { return }
            var writer = ProtobufWriter(base, from: 0, to: size)
            encode(into: &writer)
            precondition(writer.position == size, "protobufSize of \(Self.protobufName) disagrees with encode")
            count = writer.position
        }
    }

    /// Appends the encoding of `self` to `buffer`, growing it at most once.
    func appendProtobufBytes(to buffer: inout [UInt8]) {
        let size = protobufSize
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: size))
        buffer.withUnsafeMutableBufferPointer { bytes in
            guard let base = bytes.baseAddress else { return }
            var writer = ProtobufWriter(base, from: start, to: start &+ size)
            encode(into: &writer)
            precondition(writer.position == start &+ size, "protobufSize of \(Self.protobufName) disagrees with encode")
        }
    }

    /// Merges the fields encoded in `bytes` into `self` (decoding, when `self` is the default).
    mutating func mergeProtobuf(_ bytes: [UInt8]) throws(ProtobufDecodingError) {
        var reader = ProtobufReader(bytes, messageType: Self.protobufName)
        try merge(from: &reader)
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

/// Writes protobuf wire data into memory sized beforehand with `protobufSize`. Every write is
/// checked against that size (a mismatch is a bug in this module, never in the input, and
/// traps rather than overrun). Every field number of raftpb is below 16, so a tag is always the
/// single byte `field << 3 | wireType`.
struct ProtobufWriter {
    private let base: UnsafeMutablePointer<UInt8>
    private let end: Int
    /// Where the next byte goes.
    private(set) var position: Int

    /// A writer over `base[position..<end]`, which the caller owns for the writer's lifetime.
    init(_ base: UnsafeMutablePointer<UInt8>, from position: Int, to end: Int) {
        self.base = base
        self.position = position
        self.end = end
    }

    @inline(__always)
    private mutating func append(_ byte: UInt8) {
        precondition(position < end, "raftpb encoding overran its computed size")
        base[position] = byte
        position &+= 1
    }

    private mutating func append(contentsOf bytes: [UInt8]) {
        let count = bytes.count
        precondition(count <= end &- position, "raftpb encoding overran its computed size")
        bytes.withUnsafeBufferPointer { source in
            guard let from = source.baseAddress else { return }
            (base + position).update(from: from, count: count)
        }
        position &+= count
    }

    @inline(__always)
    private mutating func writeTag(_ field: UInt8, wireType: UInt8) {
        assert(field > 0 && field < 16)
        append(field &<< 3 | wireType)
    }

    mutating func writeVarint(_ value: UInt64) {
        precondition(Varint.size(value) <= end &- position, "raftpb encoding overran its computed size")
        position &+= Varint.write(value, to: base + position)
    }

    /// A varint field, written even when zero (etcd's non-nullable scalars).
    mutating func writeVarintField(_ field: UInt8, _ value: UInt64) {
        writeTag(field, wireType: 0)
        writeVarint(value)
    }

    mutating func writeBoolField(_ field: UInt8, _ value: Bool) {
        writeTag(field, wireType: 0)
        append(value ? 1 : 0)
    }

    mutating func writeEnumField<E: RawRepresentable>(_ field: UInt8, _ value: E) where E.RawValue == UInt8 {
        writeVarintField(field, UInt64(value.rawValue))
    }

    /// A bytes field, written whatever its length (callers skip empty optional ones).
    mutating func writeBytesField(_ field: UInt8, _ value: [UInt8]) {
        writeTag(field, wireType: 2)
        writeVarint(UInt64(value.count))
        append(contentsOf: value)
    }

    /// An embedded message: its size, then its fields written straight into this buffer.
    mutating func writeMessageField<M: ProtobufCodable>(_ field: UInt8, _ value: M) {
        writeTag(field, wireType: 2)
        writeVarint(UInt64(value.protobufSize))
        value.encode(into: &self)
    }
}
