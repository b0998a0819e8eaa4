/// A tag read from the input: the field number, its wire type and where the tag starts.
struct ProtobufTag {
    var field: Int
    var wireType: UInt8
    var offset: Int
}

/// Reads protobuf wire data from a byte array, checking every access against the bounds of the
/// message being read (`limit`) and the input. Every failure throws `ProtobufDecodingError`;
/// nothing in here traps on malformed input.
struct ProtobufReader {
    /// Highest field number protobuf allows.
    static let maxFieldNumber: UInt64 = (1 << 29) - 1
    /// How deeply unknown groups may nest before the input is refused.
    static let maxGroupDepth = 64

    private let bytes: [UInt8]
    /// Where the next read starts. Always `0 <= offset <= limit <= bytes.count`.
    private(set) var offset: Int
    /// The end of the (embedded) message being read.
    private(set) var limit: Int
    /// The message whose fields are being read, for errors.
    private var messageType: StaticString
    /// The message the caller asked to decode, for errors.
    private let decodedType: StaticString

    init(_ bytes: [UInt8], messageType: StaticString) {
        self.bytes = bytes
        self.offset = 0
        self.limit = bytes.count
        self.messageType = messageType
        self.decodedType = messageType
    }

    /// An error of `kind` at `offset`, naming the message being read.
    func failure(
        _ kind: ProtobufDecodingError.Kind, _ element: ProtobufDecodingError.Element, at offset: Int
    ) -> ProtobufDecodingError {
        ProtobufDecodingError(
            kind, element, messageType: messageType.description, decodedType: decodedType.description,
            offset: offset)
    }

    // MARK: Tags

    /// The next tag of the current message, or nil at its end.
    mutating func nextTag() throws(ProtobufDecodingError) -> ProtobufTag? {
        let start = offset
        guard start < limit else { return nil }
        let key: UInt64
        let first = bytes[start]
        if first < 0x80 {
            offset = start &+ 1
            key = UInt64(first)
        } else {
            key = try readVarintSlow(start, element: .tag)
        }
        let wireType = UInt8(truncatingIfNeeded: key & 7)
        let field = key >> 3
        guard wireType <= 5 else { throw failure(.invalidWireType(wireType), .tag, at: start) }
        guard field != 0, field <= Self.maxFieldNumber else {
            throw failure(.invalidFieldNumber(field), .tag, at: start)
        }
        return ProtobufTag(field: Int(truncatingIfNeeded: field), wireType: wireType, offset: start)
    }

    // MARK: Scalars

    /// A varint at the current offset.
    mutating func readVarint() throws(ProtobufDecodingError) -> UInt64 {
        let start = offset
        guard start < limit else { throw failure(.truncated, .varint, at: start) }
        let first = bytes[start]
        if first < 0x80 {
            offset = start &+ 1
            return UInt64(first)
        }
        return try readVarintSlow(start, element: .varint)
    }

    /// A varint of two or more bytes starting at `start` (whose first byte is already known to be
    /// in bounds). At most 10 bytes, and the 10th may only contribute the 64th bit.
    private mutating func readVarintSlow(
        _ start: Int, element: ProtobufDecodingError.Element
    ) throws(ProtobufDecodingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var index = start
        while true {
            guard index < limit else { throw failure(.truncated, element, at: start) }
            let byte = bytes[index]
            index &+= 1
            if shift == 63 {
                // The 10th byte: only its lowest bit fits, and it must end the varint.
                guard byte <= 1 else { throw failure(.varintOverflow, element, at: start) }
                result |= UInt64(byte) &<< 63
                break
            }
            result |= UInt64(byte & 0x7f) &<< shift
            if byte < 0x80 { break }
            shift &+= 7
        }
        offset = index
        return result
    }

    /// The varint value of a field that must have wire type 0.
    mutating func readUInt64(_ tag: ProtobufTag) throws(ProtobufDecodingError) -> UInt64 {
        guard tag.wireType == 0 else {
            throw failure(.wrongWireType(field: tag.field, wireType: tag.wireType), .value, at: tag.offset)
        }
        return try readVarint()
    }

    /// A bool field: any nonzero varint is true.
    mutating func readBool(_ tag: ProtobufTag) throws(ProtobufDecodingError) -> Bool {
        try readUInt64(tag) != 0
    }

    /// An enum field; values the enum does not define throw `unknownEnumValue`.
    mutating func readEnum<E: RawRepresentable>(
        _ tag: ProtobufTag, as type: E.Type
    ) throws(ProtobufDecodingError) -> E where E.RawValue == UInt8 {
        let value = try readUInt64(tag)
        guard let raw = UInt8(exactly: value), let result = E(rawValue: raw) else {
            throw failure(
                .unknownEnumValue(field: tag.field, value: Int64(bitPattern: value)), .value, at: tag.offset)
        }
        return result
    }

    /// A repeated uint64 field, unpacked (one varint) or packed (a length-delimited run of varints).
    mutating func readRepeatedUInt64(
        _ tag: ProtobufTag, into values: inout [UInt64]
    ) throws(ProtobufDecodingError) {
        switch tag.wireType {
        case 0:
            values.append(try readVarint())
        case 2:
            let end = try readLength()
            let outerLimit = limit
            limit = end
            while offset < end {
                values.append(try readVarint())
            }
            limit = outerLimit
        default:
            throw failure(.wrongWireType(field: tag.field, wireType: tag.wireType), .value, at: tag.offset)
        }
    }

    // MARK: Length-delimited

    /// Reads a length prefix and returns where its payload ends, which is within both the input
    /// and the current message.
    private mutating func readLength() throws(ProtobufDecodingError) -> Int {
        let start = offset
        let length = try readVarint()
        // offset <= limit <= bytes.count, so neither subtraction can go negative.
        guard length <= UInt64(bytes.count &- offset) else { throw failure(.truncated, .payload, at: start) }
        guard length <= UInt64(limit &- offset) else {
            throw failure(.lengthOutOfBounds(length: length), .payload, at: start)
        }
        return offset &+ Int(truncatingIfNeeded: length)
    }

    /// A `bytes` field (wire type 2), copied out of the input.
    mutating func readBytes(_ tag: ProtobufTag) throws(ProtobufDecodingError) -> [UInt8] {
        guard tag.wireType == 2 else {
            throw failure(.wrongWireType(field: tag.field, wireType: tag.wireType), .value, at: tag.offset)
        }
        let end = try readLength()
        let start = offset
        offset = end
        return start == end ? [] : Array(bytes[start..<end])
    }

    /// An embedded message (wire type 2), merged into `value` as protobuf does when the field repeats.
    mutating func readMessage<M: ProtobufCodable>(
        _ tag: ProtobufTag, into value: inout M
    ) throws(ProtobufDecodingError) {
        guard tag.wireType == 2 else {
            throw failure(.wrongWireType(field: tag.field, wireType: tag.wireType), .value, at: tag.offset)
        }
        let end = try readLength()
        let outerLimit = limit
        let outerType = messageType
        limit = end
        messageType = M.protobufName
        try value.merge(from: &self)
        // merge reads until the end of the embedded message.
        limit = outerLimit
        messageType = outerType
    }

    // MARK: Unknown fields

    /// Skips the value of a field this message does not know.
    mutating func skip(_ tag: ProtobufTag) throws(ProtobufDecodingError) {
        try skip(tag, depth: 0)
    }

    private mutating func skip(_ tag: ProtobufTag, depth: Int) throws(ProtobufDecodingError) {
        switch tag.wireType {
        case 0:
            _ = try readVarint()
        case 1:
            try skipFixed(8, element: .fixed64)
        case 2:
            offset = try readLength()
        case 5:
            try skipFixed(4, element: .fixed32)
        case 3:
            guard depth < Self.maxGroupDepth else { throw failure(.nesting, .group, at: tag.offset) }
            while true {
                guard let inner = try nextTag() else { throw failure(.truncated, .group, at: tag.offset) }
                if inner.wireType == 4 {
                    guard inner.field == tag.field else { throw failure(.nesting, .group, at: inner.offset) }
                    return
                }
                try skip(inner, depth: depth &+ 1)
            }
        default:
            // An end-group tag outside any group (nextTag has already refused 6 and 7).
            throw failure(.nesting, .group, at: tag.offset)
        }
    }

    private mutating func skipFixed(
        _ count: Int, element: ProtobufDecodingError.Element
    ) throws(ProtobufDecodingError) {
        guard limit &- offset >= count else { throw failure(.truncated, element, at: offset) }
        offset &+= count
    }
}
