// raftpb.ConfChange = 1: id u64, 2: type enum, 3: node_id u64, 4: context bytes (when non-empty).
// raftpb.ConfChangeSingle = 1: type enum, 2: node_id u64.
// raftpb.ConfChangeV2 = 1: transition enum, 2: changes repeated ConfChangeSingle,
//     3: context bytes (when non-empty).

extension ConfChange: ProtobufCodable {
    static var protobufName: StaticString { "raftpb.ConfChange" }
    static var protobufDefault: ConfChange { ConfChange() }

    var protobufSize: Int {
        var size = varintFieldSize(id) &+ varintFieldSize(UInt64(type.rawValue)) &+ varintFieldSize(nodeID)
        if !context.isEmpty { size &+= lengthDelimitedFieldSize(context.count) }
        return size
    }

    func encode(into writer: inout ProtobufWriter) {
        writer.writeVarintField(1, id)
        writer.writeEnumField(2, type)
        writer.writeVarintField(3, nodeID)
        if !context.isEmpty { writer.writeBytesField(4, context) }
    }

    mutating func merge(from reader: inout ProtobufReader) throws(ProtobufDecodingError) {
        while let tag = try reader.nextTag() {
            switch tag.field {
            case 1: id = try reader.readUInt64(tag)
            case 2: type = try reader.readEnum(tag, as: ConfChangeType.self)
            case 3: nodeID = try reader.readUInt64(tag)
            case 4: context = try reader.readBytes(tag)
            default: try reader.skip(tag)
            }
        }
    }
}

extension ConfChangeSingle: ProtobufCodable {
    static var protobufName: StaticString { "raftpb.ConfChangeSingle" }
    static var protobufDefault: ConfChangeSingle { ConfChangeSingle(type: .addNode, nodeID: 0) }

    var protobufSize: Int {
        varintFieldSize(UInt64(type.rawValue)) &+ varintFieldSize(nodeID)
    }

    func encode(into writer: inout ProtobufWriter) {
        writer.writeEnumField(1, type)
        writer.writeVarintField(2, nodeID)
    }

    mutating func merge(from reader: inout ProtobufReader) throws(ProtobufDecodingError) {
        while let tag = try reader.nextTag() {
            switch tag.field {
            case 1: type = try reader.readEnum(tag, as: ConfChangeType.self)
            case 2: nodeID = try reader.readUInt64(tag)
            default: try reader.skip(tag)
            }
        }
    }
}

extension ConfChangeV2: ProtobufCodable {
    static var protobufName: StaticString { "raftpb.ConfChangeV2" }
    static var protobufDefault: ConfChangeV2 { ConfChangeV2() }

    var protobufSize: Int {
        var size = varintFieldSize(UInt64(transition.rawValue))
        for change in changes { size &+= lengthDelimitedFieldSize(change.protobufSize) }
        if !context.isEmpty { size &+= lengthDelimitedFieldSize(context.count) }
        return size
    }

    func encode(into writer: inout ProtobufWriter) {
        writer.writeEnumField(1, transition)
        for change in changes { writer.writeMessageField(2, change) }
        if !context.isEmpty { writer.writeBytesField(3, context) }
    }

    mutating func merge(from reader: inout ProtobufReader) throws(ProtobufDecodingError) {
        while let tag = try reader.nextTag() {
            switch tag.field {
            case 1: transition = try reader.readEnum(tag, as: ConfChangeTransition.self)
            case 2:
                var change = ConfChangeSingle.protobufDefault
                try reader.readMessage(tag, into: &change)
                changes.append(change)
            case 3: context = try reader.readBytes(tag)
            default: try reader.skip(tag)
            }
        }
    }
}

extension ConfChange {
    /// The protobuf (etcd raftpb) encoding, byte for byte what etcd writes.
    public func serializedBytes() -> [UInt8] { protobufBytes() }

    /// Decodes a protobuf (etcd raftpb) `ConfChange`. Malformed input throws; it never traps.
    public init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError) {
        self = ConfChange.protobufDefault
        try mergeProtobuf(bytes)
    }

    /// The exact length of `serializedBytes()`.
    public var serializedSize: Int { protobufSize }

    /// Appends the protobuf encoding to `buffer`.
    public func appendSerializedBytes(to buffer: inout [UInt8]) { appendProtobufBytes(to: &buffer) }
}

extension ConfChangeSingle {
    /// The protobuf (etcd raftpb) encoding, byte for byte what etcd writes.
    public func serializedBytes() -> [UInt8] { protobufBytes() }

    /// Decodes a protobuf (etcd raftpb) `ConfChangeSingle`. Malformed input throws; it never traps.
    public init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError) {
        self = ConfChangeSingle.protobufDefault
        try mergeProtobuf(bytes)
    }

    /// The exact length of `serializedBytes()`.
    public var serializedSize: Int { protobufSize }

    /// Appends the protobuf encoding to `buffer`.
    public func appendSerializedBytes(to buffer: inout [UInt8]) { appendProtobufBytes(to: &buffer) }
}

extension ConfChangeV2 {
    /// The protobuf (etcd raftpb) encoding, byte for byte what etcd writes.
    public func serializedBytes() -> [UInt8] { protobufBytes() }

    /// Decodes a protobuf (etcd raftpb) `ConfChangeV2`. Malformed input throws; it never traps.
    public init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError) {
        self = ConfChangeV2.protobufDefault
        try mergeProtobuf(bytes)
    }

    /// The exact length of `serializedBytes()`.
    public var serializedSize: Int { protobufSize }

    /// Appends the protobuf encoding to `buffer`.
    public func appendSerializedBytes(to buffer: inout [UInt8]) { appendProtobufBytes(to: &buffer) }
}
