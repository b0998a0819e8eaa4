/// Bytes that are not a valid protobuf encoding of the raftpb message being decoded.
///
/// Decoding never traps on malformed, truncated or random input: it throws this error, which
/// says what was wrong, in which message, and at which byte offset of the input.
public struct ProtobufDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// The input (or an embedded message) ends inside a tag, a varint, a fixed-width value,
        /// a length-delimited payload or a group.
        case truncated
        /// A varint is longer than 10 bytes or does not fit in 64 bits.
        case varintOverflow
        /// A tag carries a wire type protobuf does not define (6 or 7).
        case invalidWireType(UInt8)
        /// A known field arrived with a wire type that cannot carry it (for example a
        /// length-delimited `term`).
        case wrongWireType(field: Int, wireType: UInt8)
        /// A tag's field number is 0 or above 2^29 − 1.
        case invalidFieldNumber(UInt64)
        /// An enum field holds a value the enum does not define (negative values as int32/int64).
        case unknownEnumValue(field: Int, value: Int64)
        /// A length prefix runs past the end of the embedded message that contains it.
        case lengthOutOfBounds(length: UInt64)
        /// An end-group tag without a matching start-group tag, or groups nested too deeply.
        case nesting
    }

    /// What was wrong.
    public let kind: Kind
    /// The message whose fields were being read when decoding failed, e.g. `raftpb.Entry`
    /// (the innermost one for an embedded message).
    public let messageType: String
    /// The message the caller asked to decode, e.g. `raftpb.Message`.
    public let decodedType: String
    /// Byte offset in the input at which the offending tag, value or payload starts.
    public let offset: Int
    /// The wire element that was being read (refines the description).
    let element: Element

    enum Element: Sendable, Equatable {
        case tag, varint, fixed32, fixed64, payload, group, value
    }

    init(_ kind: Kind, _ element: Element, messageType: String, decodedType: String, offset: Int) {
        self.kind = kind
        self.element = element
        self.messageType = messageType
        self.decodedType = decodedType
        self.offset = offset
    }

    public var description: String {
        let what: String
        switch kind {
        case .truncated:
            switch element {
            case .tag: what = "truncated tag"
            case .varint, .value: what = "truncated varint"
            case .fixed32: what = "truncated fixed32 value"
            case .fixed64: what = "truncated fixed64 value"
            case .payload: what = "truncated length-delimited field"
            case .group: what = "unterminated group"
            }
        case .varintOverflow:
            what = "varint longer than 10 bytes or wider than 64 bits"
        case .invalidWireType(let wireType):
            what = "invalid wire type \(wireType)"
        case .wrongWireType(let field, let wireType):
            what = "field \(field) with wire type \(wireType), which cannot carry it,"
        case .invalidFieldNumber(let number):
            what = "invalid field number \(number)"
        case .unknownEnumValue(let field, let value):
            what = "unknown enum value \(value) in field \(field)"
        case .lengthOutOfBounds(let length):
            what = "length \(length) running past the end of its enclosing message"
        case .nesting:
            what = "unmatched or too deeply nested group"
        }
        let location = messageType == decodedType ? messageType : "\(messageType) (in \(decodedType))"
        return "\(location): \(what) at offset \(offset) — the input is not a valid \(decodedType)"
    }
}
