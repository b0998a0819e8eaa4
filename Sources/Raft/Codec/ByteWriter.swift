/// Appends fixed-layout binary fields to a growing array: `ByteReader`'s counterpart, for the
/// package's own formats outside protobuf.
package struct ByteWriter {
    package private(set) var bytes: [UInt8] = []

    @inlinable
    package init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    @inlinable
    package mutating func byte(_ value: UInt8) {
        bytes.append(value)
    }

    @inlinable
    package mutating func bytes(_ values: [UInt8]) {
        bytes.append(contentsOf: values)
    }

    @inlinable
    package mutating func littleEndian<T: FixedWidthInteger & UnsignedInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inlinable
    package mutating func varint(_ value: UInt64) {
        Varint.append(value, to: &bytes)
    }

    /// A varint length, then the bytes: what `ByteReader.lengthPrefixed` reads.
    @inlinable
    package mutating func lengthPrefixed(_ values: [UInt8]) {
        varint(UInt64(values.count))
        bytes(values)
    }
}

/// Writes into memory sized beforehand, for encoders that compute their output's size first
/// and so write a large buffer once, without growing it. Every write is checked against the
/// size: a mismatch is a bug in the caller's arithmetic, and traps rather than overruns.
package struct FixedBufferWriter {
    @usableFromInline let buffer: UnsafeMutableBufferPointer<UInt8>
    /// Bytes written so far: the next write goes at `buffer[position]`.
    @usableFromInline package private(set) var position = 0

    @inlinable
    package init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        self.buffer = buffer
    }

    /// The bytes written so far.
    @inlinable
    package var written: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffer.baseAddress, count: position)
    }

    /// The size the buffer was given: an encoder checks at its end that `position` reached it.
    @inlinable
    package var capacity: Int { buffer.count }

    @inlinable
    package mutating func byte(_ value: UInt8) {
        reserve(1)
        buffer[position] = value
        position &+= 1
    }

    @inlinable
    package mutating func bytes(_ values: [UInt8]) {
        values.withUnsafeBufferPointer { if let start = $0.baseAddress { copy(start, count: $0.count) } }
    }

    @inlinable
    package mutating func copy(_ source: UnsafePointer<UInt8>, count: Int) {
        reserve(count)
        (buffer.baseAddress! + position).update(from: source, count: count)
        position &+= count
    }

    @inlinable
    package mutating func varint(_ value: UInt64) {
        reserve(Varint.size(value))
        position &+= Varint.write(value, to: buffer.baseAddress! + position)
    }

    @inlinable
    package mutating func littleEndian<T: FixedWidthInteger & UnsignedInteger>(_ value: T) {
        reserve(MemoryLayout<T>.size)
        for index in 0..<MemoryLayout<T>.size {
            buffer[position &+ index] = UInt8(truncatingIfNeeded: value &>> (8 &* index))
        }
        position &+= MemoryLayout<T>.size
    }

    @usableFromInline
    func reserve(_ count: Int) {
        precondition(count <= buffer.count - position, "encoding overran the size computed for it")
    }
}
