// raftpb.Entry = 1: type enum, 2: term u64, 3: index u64, 4: data bytes (written when non-empty).

extension Entry: ProtobufCodable {
    static var protobufName: StaticString { "raftpb.Entry" }
    static var protobufDefault: Entry { Entry() }

    var protobufSize: Int {
        var size = varintFieldSize(UInt64(type.rawValue)) &+ varintFieldSize(term) &+ varintFieldSize(index)
        if !data.isEmpty { size &+= lengthDelimitedFieldSize(data.count) }
        return size
    }

    func encode(into writer: inout ProtobufWriter) {
        writer.writeEnumField(1, type)
        writer.writeVarintField(2, term)
        writer.writeVarintField(3, index)
        if !data.isEmpty { writer.writeBytesField(4, data) }
    }

    mutating func merge(from reader: inout ProtobufReader) throws(ProtobufDecodingError) {
        while let tag = try reader.nextTag() {
            switch tag.field {
            case 1: type = try reader.readEnum(tag, as: EntryType.self)
            case 2: term = try reader.readUInt64(tag)
            case 3: index = try reader.readUInt64(tag)
            case 4: data = try reader.readBytes(tag)
            default: try reader.skip(tag)
            }
        }
    }
}

extension Entry {
    /// The protobuf (etcd raftpb) encoding, byte for byte what etcd writes.
    public func serializedBytes() -> [UInt8] { protobufBytes() }

    /// Decodes a protobuf (etcd raftpb) `Entry`. Malformed input throws; it never traps.
    public init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError) {
        self = Entry.protobufDefault
        try mergeProtobuf(bytes)
    }

    /// The exact length of `serializedBytes()`.
    public var serializedSize: Int { protobufSize }

    /// Appends the protobuf encoding to `buffer` (for framing several messages in one buffer).
    public func appendSerializedBytes(to buffer: inout [UInt8]) { appendProtobufBytes(to: &buffer) }
}
