// raftpb.Message = 1: type enum, 2: to, 3: from, 4: term, 5: logTerm, 6: index (u64),
//     7: entries repeated Entry, 8: commit u64, 9: snapshot Snapshot, 10: reject bool,
//     11: rejectHint u64, 12: context bytes (written when non-empty).
// etcd v3.4 declares the snapshot non-nullable and so always writes it: a nil `snapshot` is
// written as an empty `Snapshot()`, and an empty one decodes back to nil.

extension Message: ProtobufCodable {
    static var protobufName: StaticString { "raftpb.Message" }
    static var protobufDefault: Message { Message(type: .hup) }

    var protobufSize: Int {
        var size = varintFieldSize(UInt64(type.rawValue)) &+ varintFieldSize(to) &+ varintFieldSize(from)
            &+ varintFieldSize(term) &+ varintFieldSize(logTerm) &+ varintFieldSize(index)
        for entry in entries { size &+= lengthDelimitedFieldSize(entry.protobufSize) }
        size &+= varintFieldSize(commit)
        size &+= lengthDelimitedFieldSize((snapshot ?? Snapshot()).protobufSize)
        size &+= 2 &+ varintFieldSize(rejectHint)  // reject is one tag byte and one value byte
        if !context.isEmpty { size &+= lengthDelimitedFieldSize(context.count) }
        return size
    }

    func encode(into writer: inout ProtobufWriter) {
        writer.writeEnumField(1, type)
        writer.writeVarintField(2, to)
        writer.writeVarintField(3, from)
        writer.writeVarintField(4, term)
        writer.writeVarintField(5, logTerm)
        writer.writeVarintField(6, index)
        for entry in entries { writer.writeMessageField(7, entry) }
        writer.writeVarintField(8, commit)
        writer.writeMessageField(9, snapshot ?? Snapshot())
        writer.writeBoolField(10, reject)
        writer.writeVarintField(11, rejectHint)
        if !context.isEmpty { writer.writeBytesField(12, context) }
    }

    mutating func merge(from reader: inout ProtobufReader) throws(ProtobufDecodingError) {
        // The snapshot is decoded in place, and dropped at the end if it is empty.
        var decodedSnapshot = snapshot ?? Snapshot()
        snapshot = nil  // keep `decodedSnapshot` uniquely referenced while it grows
        while let tag = try reader.nextTag() {
            switch tag.field {
            case 1: type = try reader.readEnum(tag, as: MessageType.self)
            case 2: to = try reader.readUInt64(tag)
            case 3: from = try reader.readUInt64(tag)
            case 4: term = try reader.readUInt64(tag)
            case 5: logTerm = try reader.readUInt64(tag)
            case 6: index = try reader.readUInt64(tag)
            case 7:
                var entry = Entry()
                try reader.readMessage(tag, into: &entry)
                entries.append(entry)
            case 8: commit = try reader.readUInt64(tag)
            case 9: try reader.readMessage(tag, into: &decodedSnapshot)  // a repeated one merges
            case 10: reject = try reader.readBool(tag)
            case 11: rejectHint = try reader.readUInt64(tag)
            case 12: context = try reader.readBytes(tag)
            default: try reader.skip(tag)
            }
        }
        if !decodedSnapshot.isProtobufDefault { snapshot = decodedSnapshot }
    }
}

extension Message {
    /// The protobuf (etcd raftpb) encoding, byte for byte what etcd v3.4 writes.
    public func serializedBytes() -> [UInt8] { protobufBytes() }

    /// Decodes a protobuf (etcd raftpb) `Message`. Malformed input throws; it never traps.
    /// An absent or empty snapshot decodes to nil.
    public init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError) {
        self = Message.protobufDefault
        try mergeProtobuf(bytes)
    }

    /// The exact length of `serializedBytes()`.
    public var serializedSize: Int { protobufSize }

    /// Appends the protobuf encoding to `buffer` (for framing several messages in one buffer).
    public func appendSerializedBytes(to buffer: inout [UInt8]) { appendProtobufBytes(to: &buffer) }
}
