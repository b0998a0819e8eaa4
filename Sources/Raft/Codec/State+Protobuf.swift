// raftpb.HardState = 1: term, 2: vote, 3: commit (u64, always written).
// raftpb.ConfState = 1: voters, 2: learners, 3: voters_outgoing, 4: learners_next
//     (repeated u64, written unpacked; packed accepted), 5: auto_leave bool (always written).
// raftpb.SnapshotMetadata = 1: conf_state ConfState, 2: index u64, 3: term u64 (all always written).
// raftpb.Snapshot = 1: data bytes (written when non-empty), 2: metadata SnapshotMetadata (always).

extension HardState: ProtobufCodable {
    static var protobufName: StaticString { "raftpb.HardState" }
    static var protobufDefault: HardState { HardState() }

    var protobufSize: Int {
        varintFieldSize(term) &+ varintFieldSize(vote) &+ varintFieldSize(commit)
    }

    func encode(into writer: inout ProtobufWriter) {
        writer.writeVarintField(1, term)
        writer.writeVarintField(2, vote)
        writer.writeVarintField(3, commit)
    }

    mutating func merge(from reader: inout ProtobufReader) throws(ProtobufDecodingError) {
        while let tag = try reader.nextTag() {
            switch tag.field {
            case 1: term = try reader.readUInt64(tag)
            case 2: vote = try reader.readUInt64(tag)
            case 3: commit = try reader.readUInt64(tag)
            default: try reader.skip(tag)
            }
        }
    }
}

extension ConfState: ProtobufCodable {
    static var protobufName: StaticString { "raftpb.ConfState" }
    static var protobufDefault: ConfState { ConfState() }

    private static func unpackedSize(_ ids: [UInt64]) -> Int {
        var size = 0
        for id in ids { size &+= varintFieldSize(id) }
        return size
    }

    var protobufSize: Int {
        Self.unpackedSize(voters) &+ Self.unpackedSize(learners) &+ Self.unpackedSize(votersOutgoing)
            &+ Self.unpackedSize(learnersNext) &+ 2
    }

    func encode(into writer: inout ProtobufWriter) {
        for id in voters { writer.writeVarintField(1, id) }
        for id in learners { writer.writeVarintField(2, id) }
        for id in votersOutgoing { writer.writeVarintField(3, id) }
        for id in learnersNext { writer.writeVarintField(4, id) }
        writer.writeBoolField(5, autoLeave)
    }

    mutating func merge(from reader: inout ProtobufReader) throws(ProtobufDecodingError) {
        while let tag = try reader.nextTag() {
            switch tag.field {
            case 1: try reader.readRepeatedUInt64(tag, into: &voters)
            case 2: try reader.readRepeatedUInt64(tag, into: &learners)
            case 3: try reader.readRepeatedUInt64(tag, into: &votersOutgoing)
            case 4: try reader.readRepeatedUInt64(tag, into: &learnersNext)
            case 5: autoLeave = try reader.readBool(tag)
            default: try reader.skip(tag)
            }
        }
    }
}

extension SnapshotMetadata: ProtobufCodable {
    static var protobufName: StaticString { "raftpb.SnapshotMetadata" }
    static var protobufDefault: SnapshotMetadata { SnapshotMetadata() }

    var protobufSize: Int {
        lengthDelimitedFieldSize(confState.protobufSize) &+ varintFieldSize(index) &+ varintFieldSize(term)
    }

    func encode(into writer: inout ProtobufWriter) {
        writer.writeMessageField(1, confState)
        writer.writeVarintField(2, index)
        writer.writeVarintField(3, term)
    }

    mutating func merge(from reader: inout ProtobufReader) throws(ProtobufDecodingError) {
        while let tag = try reader.nextTag() {
            switch tag.field {
            case 1: try reader.readMessage(tag, into: &confState)
            case 2: index = try reader.readUInt64(tag)
            case 3: term = try reader.readUInt64(tag)
            default: try reader.skip(tag)
            }
        }
    }
}

extension Snapshot: ProtobufCodable {
    static var protobufName: StaticString { "raftpb.Snapshot" }
    static var protobufDefault: Snapshot { Snapshot() }

    var protobufSize: Int {
        var size = lengthDelimitedFieldSize(metadata.protobufSize)
        if !data.isEmpty { size &+= lengthDelimitedFieldSize(data.count) }
        return size
    }

    func encode(into writer: inout ProtobufWriter) {
        if !data.isEmpty { writer.writeBytesField(1, data) }
        writer.writeMessageField(2, metadata)
    }

    /// Whether this is `Snapshot()`, which is how etcd v3.4 writes "no snapshot" in a Message.
    var isProtobufDefault: Bool {
        let state = metadata.confState
        return data.isEmpty && metadata.index == 0 && metadata.term == 0 && state.voters.isEmpty
            && state.learners.isEmpty && state.votersOutgoing.isEmpty && state.learnersNext.isEmpty
            && !state.autoLeave
    }

    mutating func merge(from reader: inout ProtobufReader) throws(ProtobufDecodingError) {
        while let tag = try reader.nextTag() {
            switch tag.field {
            case 1: data = try reader.readBytes(tag)
            case 2: try reader.readMessage(tag, into: &metadata)
            default: try reader.skip(tag)
            }
        }
    }
}

extension HardState {
    /// The protobuf (etcd raftpb) encoding, byte for byte what etcd writes.
    public func serializedBytes() -> [UInt8] { protobufBytes() }

    /// Decodes a protobuf (etcd raftpb) `HardState`. Malformed input throws; it never traps.
    public init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError) {
        self = HardState.protobufDefault
        try mergeProtobuf(bytes)
    }

    /// The exact length of `serializedBytes()`.
    public var serializedSize: Int { protobufSize }

    /// Appends the protobuf encoding to `buffer`.
    public func appendSerializedBytes(to buffer: inout [UInt8]) { appendProtobufBytes(to: &buffer) }
}

extension ConfState {
    /// The protobuf (etcd raftpb) encoding, byte for byte what etcd writes.
    public func serializedBytes() -> [UInt8] { protobufBytes() }

    /// Decodes a protobuf (etcd raftpb) `ConfState`. Malformed input throws; it never traps.
    public init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError) {
        self = ConfState.protobufDefault
        try mergeProtobuf(bytes)
    }

    /// The exact length of `serializedBytes()`.
    public var serializedSize: Int { protobufSize }

    /// Appends the protobuf encoding to `buffer`.
    public func appendSerializedBytes(to buffer: inout [UInt8]) { appendProtobufBytes(to: &buffer) }
}

extension SnapshotMetadata {
    /// The protobuf (etcd raftpb) encoding, byte for byte what etcd writes.
    public func serializedBytes() -> [UInt8] { protobufBytes() }

    /// Decodes a protobuf (etcd raftpb) `SnapshotMetadata`. Malformed input throws; it never traps.
    public init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError) {
        self = SnapshotMetadata.protobufDefault
        try mergeProtobuf(bytes)
    }

    /// The exact length of `serializedBytes()`.
    public var serializedSize: Int { protobufSize }

    /// Appends the protobuf encoding to `buffer`.
    public func appendSerializedBytes(to buffer: inout [UInt8]) { appendProtobufBytes(to: &buffer) }
}

extension Snapshot {
    /// The protobuf (etcd raftpb) encoding, byte for byte what etcd writes.
    public func serializedBytes() -> [UInt8] { protobufBytes() }

    /// Decodes a protobuf (etcd raftpb) `Snapshot`. Malformed input throws; it never traps.
    public init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError) {
        self = Snapshot.protobufDefault
        try mergeProtobuf(bytes)
    }

    /// The exact length of `serializedBytes()`.
    public var serializedSize: Int { protobufSize }

    /// Appends the protobuf encoding to `buffer`.
    public func appendSerializedBytes(to buffer: inout [UInt8]) { appendProtobufBytes(to: &buffer) }
}
