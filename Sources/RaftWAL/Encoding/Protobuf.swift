import Raft

// The little protobuf the WAL's own messages need (walpb.Record, walpb.Snapshot,
// snappb.snapshot): varints (`Raft.Varint`) and length-delimited bytes. raftpb payloads go
// through the Raft module's codec.

/// A bounds-checked reader over `bytes[start..<end]`. Every read returns nil on malformed or
/// truncated input: the callers turn that into a corruption error with the file and offset.
struct ProtoScanner {
    let bytes: [UInt8]
    var position: Int
    let end: Int

    init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.position = start
        self.end = end ?? bytes.count
    }

    var atEnd: Bool { position >= end }

    mutating func varint() -> UInt64? {
        guard case .value(let value, let next) = Varint.decode(bytes, from: position, to: end) else { return nil }
        position = next
        return value
    }

    /// The next (field, wire type), nil at the end or on a malformed tag (`malformed` is set).
    mutating func tag(malformed: inout Bool) -> (field: UInt64, wireType: UInt8)? {
        if atEnd { return nil }
        guard let key = varint(), key >> 3 != 0 else { malformed = true; return nil }
        return (key >> 3, UInt8(key & 7))
    }

    /// The range of a length-delimited payload.
    mutating func lengthDelimited() -> Range<Int>? {
        guard let length = varint(), length <= UInt64(end - position) else { return nil }
        let start = position
        position += Int(length)
        return start..<position
    }

    /// Skips a field of an unknown number; false if it cannot be skipped.
    mutating func skip(wireType: UInt8) -> Bool {
        switch wireType {
        case 0: return varint() != nil
        case 1: guard end - position >= 8 else { return false }; position += 8; return true
        case 2: return lengthDelimited() != nil
        case 5: guard end - position >= 4 else { return false }; position += 4; return true
        default: return false
        }
    }
}

/// etcd's `walpb.Snapshot`: the index and term of a snapshot, as the WAL records it.
public struct WALSnapshot: Sendable, Hashable, CustomStringConvertible {
    public var index: UInt64
    public var term: UInt64

    public init(index: UInt64 = 0, term: UInt64 = 0) {
        self.index = index
        self.term = term
    }

    public var description: String { "(index \(index), term \(term))" }

    /// 1: index, 2: term; etcd writes both, zeros included.
    func serializedBytes() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(2 + Varint.size(index) + Varint.size(term))
        buffer.append(0x08)
        Varint.append(index, to: &buffer)
        buffer.append(0x10)
        Varint.append(term, to: &buffer)
        return buffer
    }

    init?(serializedBytes bytes: [UInt8]) {
        var scanner = ProtoScanner(bytes)
        var malformed = false
        self.init()
        while let (field, wireType) = scanner.tag(malformed: &malformed) {
            switch (field, wireType) {
            case (1, 0): guard let v = scanner.varint() else { return nil }; index = v
            case (2, 0): guard let v = scanner.varint() else { return nil }; term = v
            default: guard scanner.skip(wireType: wireType) else { return nil }
            }
        }
        if malformed { return nil }
    }
}
