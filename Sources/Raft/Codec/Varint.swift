/// Protobuf's base-128 varint: 7 bits a byte, least significant first, the high bit set on every
/// byte but the last. The one encoder of the package: raftpb here, the WAL's records and the
/// key-value store's formats use it too.
public enum Varint {
    /// The most bytes a `UInt64` takes.
    public static let maxLength = 10

    /// Bytes the varint of `value` takes (1…10; a zero still takes one).
    @inlinable
    public static func size(_ value: UInt64) -> Int {
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }

    /// Appends the varint of `value` to `buffer`.
    @inlinable
    public static func append(_ value: UInt64, to buffer: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            buffer.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest &>>= 7
        }
        buffer.append(UInt8(truncatingIfNeeded: rest))
    }
}
