import RaftNIO

// The runtime's own bytes inside raft entries and snapshots. Each starts with a version byte;
// integers are little-endian.

/// A normal entry: `[1][request id: 8][command]`. The request id lets the node that proposed the
/// entry find the client waiting for it (0: nobody waits). Same format as FlotillaKV's.
package struct ProposalEnvelope: Hashable, Sendable {
    static let version: UInt8 = 1
    static let headerSize = 9
    package var requestID: UInt64
    package var command: [UInt8]

    func encoded() -> [UInt8] {
        var out = ByteWriter(capacity: Self.headerSize + command.count)
        out.byte(Self.version)
        out.u64(requestID)
        out.bytes(command)
        return out.buffer
    }

    init(requestID: UInt64, command: [UInt8]) {
        self.requestID = requestID
        self.command = command
    }

    package init?(decoding bytes: [UInt8]) {
        var r = ByteReader(bytes)
        guard r.byte() == Self.version, let id = r.u64() else { return nil }
        requestID = id
        command = r.rest()
    }

    /// The request id of an encoded envelope, without copying its command (nil: not one).
    static func requestID(of bytes: [UInt8]) -> UInt64? {
        var r = ByteReader(bytes)
        guard r.byte() == Self.version else { return nil }
        return r.u64()
    }
}

/// A conf change's context: `[1][request id: 8][host length: 2][host][port: 4]`: who waits for
/// it, and where the member listens (port 0: unknown), so every node's transport learns it
/// when the change is applied.
struct MemberContext: Hashable, Sendable {
    static let version: UInt8 = 1
    var requestID: UInt64
    var address: TransportAddress?

    func encoded() -> [UInt8] {
        var out = ByteWriter(capacity: 16)
        out.byte(Self.version)
        out.u64(requestID)
        out.address(address)
        return out.buffer
    }

    init(requestID: UInt64, address: TransportAddress?) {
        self.requestID = requestID
        self.address = address
    }

    init?(decoding bytes: [UInt8]) {
        var r = ByteReader(bytes)
        guard r.byte() == Self.version, let id = r.u64(), let address = r.address() else { return nil }
        requestID = id
        self.address = address
    }
}

/// A snapshot's data: `[1][members: 4][(id: 8, address)…][state machine bytes]`. The address
/// book rides along so that a node restored from a snapshot (after a restart, or a new member
/// catching up) knows where the members are.
struct SnapshotEnvelope: Sendable {
    static let version: UInt8 = 1
    var addresses: [UInt64: TransportAddress]
    var state: [UInt8]

    func encoded() -> [UInt8] {
        var out = ByteWriter(capacity: 16 + state.count)
        out.byte(Self.version)
        out.u32(UInt32(addresses.count))
        for (id, address) in addresses.sorted(by: { $0.key < $1.key }) {
            out.u64(id)
            out.address(address)
        }
        out.bytes(state)
        return out.buffer
    }

    init(addresses: [UInt64: TransportAddress], state: [UInt8]) {
        self.addresses = addresses
        self.state = state
    }

    init?(decoding bytes: [UInt8]) {
        var r = ByteReader(bytes)
        guard let addresses = Self.readHead(&r) else { return nil }
        self.addresses = addresses
        state = r.rest()
    }

    /// Whether `bytes` start with a well-formed envelope head (version and address book),
    /// without copying the state: checked before a snapshot from the network is stepped, so
    /// that one this node could not restore from is never persisted.
    static func hasWellFormedHead(_ bytes: [UInt8]) -> Bool {
        var r = ByteReader(bytes)
        return readHead(&r) != nil
    }

    /// The version and the address book, `r` left at the state; nil if they are malformed.
    private static func readHead(_ r: inout ByteReader) -> [UInt64: TransportAddress]? {
        guard r.byte() == version, let count = r.u32() else { return nil }
        var addresses: [UInt64: TransportAddress] = [:]
        for _ in 0..<count {
            guard let id = r.u64(), let address = r.address() else { return nil }
            if let address { addresses[id] = address }
        }
        return addresses
    }
}

/// A ReadIndex request context: the request id, 8 bytes.
func readContext(_ id: UInt64) -> [UInt8] {
    var out = ByteWriter(capacity: 8)
    out.u64(id)
    return out.buffer
}

func requestID(fromReadContext context: [UInt8]) -> UInt64? {
    guard context.count == 8 else { return nil }
    var r = ByteReader(context)
    return r.u64()
}

struct ByteWriter {
    var buffer: [UInt8] = []
    init(capacity: Int) { buffer.reserveCapacity(capacity) }
    mutating func byte(_ b: UInt8) { buffer.append(b) }
    mutating func bytes(_ b: [UInt8]) { buffer.append(contentsOf: b) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    /// `[host length: 2][host UTF-8][port: 4]`; nil is an empty host and port 0.
    mutating func address(_ address: TransportAddress?) {
        let host = Array((address?.host ?? "").utf8.prefix(Int(UInt16.max)))
        u16(UInt16(host.count))
        bytes(host)
        u32(UInt32(truncatingIfNeeded: address?.port ?? 0))
    }
}

struct ByteReader {
    private let bytes: [UInt8]
    private var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard bytes.count - offset >= size else { return nil }
        var value: T = 0
        for i in 0..<size { value |= T(bytes[offset + i]) << (8 * i) }
        offset += size
        return value
    }

    mutating func u16() -> UInt16? { integer(UInt16.self) }
    mutating func u32() -> UInt32? { integer(UInt32.self) }
    mutating func u64() -> UInt64? { integer(UInt64.self) }

    /// nil when malformed; `.some(nil)` for "no address" (port 0).
    mutating func address() -> TransportAddress?? {
        guard let length = u16().map(Int.init), bytes.count - offset >= length else { return nil }
        let host = String(decoding: bytes[offset..<offset + length], as: UTF8.self)
        offset += length
        guard let port = u32() else { return nil }
        return .some(port == 0 ? nil : TransportAddress(host: host, port: Int(port)))
    }

    mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }
}
