/// Reads fixed-layout binary fields (bytes, little-endian integers, varints, length-prefixed
/// byte strings) from a byte array, checking every read against its end: the one reader of the
/// package's own formats outside protobuf (the runtime's envelopes, the key-value store's
/// commands and snapshots). Malformed input throws `ByteReadError`, never traps.
///
/// `package`: the modules share it; it is not part of any product's API.
package struct ByteReader {
    @usableFromInline let bytes: ArraySlice<UInt8>
    /// Where the next read starts, as an index of the bytes given. Always within
    /// `bytes.startIndex...bytes.endIndex`.
    @usableFromInline package private(set) var offset: Int

    @inlinable
    package init(_ bytes: [UInt8]) {
        self.init(bytes[...])
    }

    @inlinable
    package init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.offset = bytes.startIndex
    }

    /// Bytes not yet read.
    @inlinable
    package var remaining: Int { bytes.endIndex - offset }

    @inlinable
    package var isAtEnd: Bool { offset == bytes.endIndex }

    @inlinable
    package mutating func byte(_ field: StaticString) throws(ByteReadError) -> UInt8 {
        guard offset < bytes.endIndex else { throw ByteReadError(.truncated, field, at: offset) }
        defer { offset &+= 1 }
        return bytes[offset]
    }

    /// A little-endian integer of `T`'s width.
    @inlinable
    package mutating func littleEndian<T: FixedWidthInteger & UnsignedInteger>(
        _: T.Type, _ field: StaticString
    ) throws(ByteReadError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw ByteReadError(.truncated, field, at: offset) }
        var value: T = 0
        for index in 0..<size { value |= T(bytes[offset &+ index]) &<< (8 &* index) }
        offset &+= size
        return value
    }

    @inlinable
    package mutating func varint(_ field: StaticString) throws(ByteReadError) -> UInt64 {
        switch Varint.decode(bytes, from: offset, to: bytes.endIndex) {
        case .value(let value, let end):
            offset = end
            return value
        case .truncated: throw ByteReadError(.truncated, field, at: offset)
        case .overflow: throw ByteReadError(.malformedVarint, field, at: offset)
        }
    }

    /// The next `count` bytes.
    @inlinable
    package mutating func bytes(count: Int, _ field: StaticString) throws(ByteReadError) -> [UInt8] {
        guard count >= 0, count <= remaining else { throw ByteReadError(.truncated, field, at: offset) }
        let end = offset &+ count
        defer { offset = end }
        return Array(bytes[offset..<end])
    }

    /// A varint length (named `lengthField` in errors), then that many bytes. A length past
    /// the end is reported as `field` truncated, at the length's own offset.
    @inlinable
    package mutating func lengthPrefixed(
        _ field: StaticString, lengthField: StaticString
    ) throws(ByteReadError) -> [UInt8] {
        let lengthOffset = offset
        let length = try varint(lengthField)
        guard length <= UInt64(remaining) else { throw ByteReadError(.truncated, field, at: lengthOffset) }
        return try bytes(count: Int(length), field)
    }

    /// Everything not yet read.
    @inlinable
    package mutating func rest() -> [UInt8] {
        defer { offset = bytes.endIndex }
        return Array(bytes[offset...])
    }
}

/// A `ByteReader` read that failed: the input ended inside `field`, or a varint was longer
/// than 64 bits, at `offset` (an index of the bytes read). The format's own error wraps it,
/// naming what was being read.
package struct ByteReadError: Error, Hashable, Sendable {
    package enum Kind: Hashable, Sendable {
        case truncated
        case malformedVarint
    }

    package var kind: Kind
    package var field: String
    package var offset: Int

    @inlinable
    package init(_ kind: Kind, _ field: StaticString, at offset: Int) {
        self.kind = kind
        self.field = field.description
        self.offset = offset
    }
}
