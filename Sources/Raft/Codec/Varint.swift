/// Protobuf's base-128 varint: 7 bits a byte, least significant first, the high bit set on every
/// byte but the last. The one encoder of the package: raftpb here, the WAL's records and the
/// key-value store's formats use it too.
@usableFromInline
package enum Varint {
    /// The most bytes a `UInt64` takes.
    @usableFromInline package static let maxLength = 10

    /// Bytes the varint of `value` takes (1…10; a zero still takes one).
    @inlinable
    package static func size(_ value: UInt64) -> Int {
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }

    /// Appends the varint of `value` to `buffer`.
    @inlinable
    package static func append(_ value: UInt64, to buffer: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            buffer.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest &>>= 7
        }
        buffer.append(UInt8(truncatingIfNeeded: rest))
    }

    /// Writes the varint of `value` at `pointer`, which must have room for `size(value)`
    /// bytes, and returns that count: for encoders that size their output beforehand.
    @inlinable
    package static func write(_ value: UInt64, to pointer: UnsafeMutablePointer<UInt8>) -> Int {
        var rest = value
        var count = 0
        while rest >= 0x80 {
            pointer[count] = UInt8(truncatingIfNeeded: rest) | 0x80
            rest &>>= 7
            count &+= 1
        }
        pointer[count] = UInt8(truncatingIfNeeded: rest)
        return count &+ 1
    }

    /// What `decode` found.
    @usableFromInline package enum Decoded: Equatable, Sendable {
        /// The value, and the index just past its last byte.
        case value(UInt64, end: Int)
        /// The bytes ended (at `end`) inside the varint.
        case truncated
        /// More than 64 bits: a 10th byte above 1, or an 11th byte.
        case overflow
    }

    /// The varint in `bytes[start..<end]` that starts at `start`. (raftpb's decoder has its
    /// own, with a one-byte fast path, on the hot path of every message.)
    @inlinable
    package static func decode<Bytes: RandomAccessCollection<UInt8>>(
        _ bytes: Bytes, from start: Int, to end: Int
    ) -> Decoded where Bytes.Index == Int {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var position = start
        while position < end {
            let byte = bytes[position]
            position += 1
            // The 10th byte may only carry the top bit of a 64-bit value.
            if shift == 63 && byte > 1 { return .overflow }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return .value(result, end: position) }
            shift += 7
        }
        return .truncated
    }
}
