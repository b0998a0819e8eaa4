import Raft
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
        out.littleEndian(requestID)
        out.bytes(command)
        return out.bytes
    }

    init(requestID: UInt64, command: [UInt8]) {
        self.requestID = requestID
        self.command = command
    }

    package init?(decoding bytes: [UInt8]) {
        var r = ByteReader(bytes)
        guard (try? r.byte("version")) == Self.version, let id = try? r.littleEndian(UInt64.self, "request id")
        else { return nil }
        requestID = id
        command = r.rest()
    }

    /// The request id of an encoded envelope, without copying its command (nil: not one).
    static func requestID(of bytes: [UInt8]) -> UInt64? {
        var r = ByteReader(bytes)
        guard (try? r.byte("version")) == Self.version else { return nil }
        return try? r.littleEndian(UInt64.self, "request id")
    }
}

/// A conf change's context: `[1][request id: 8][host length: 2][host][port: 4]`: who waits for
/// it, and where the member listens (port 0: unknown), so every node's transport learns it
/// when the change is applied.
package struct MemberContext: Hashable, Sendable {
    static let version: UInt8 = 1
    package var requestID: UInt64
    package var address: TransportAddress?

    func encoded() -> [UInt8] {
        var out = ByteWriter(capacity: 16)
        out.byte(Self.version)
        out.littleEndian(requestID)
        out.address(address)
        return out.bytes
    }

    init(requestID: UInt64, address: TransportAddress?) {
        self.requestID = requestID
        self.address = address
    }

    package init?(decoding bytes: [UInt8]) {
        var r = ByteReader(bytes)
        do {
            guard try r.byte("version") == Self.version else { return nil }
            requestID = try r.littleEndian(UInt64.self, "request id")
            address = try r.address()
        } catch {
            return nil
        }
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
        out.littleEndian(UInt32(addresses.count))
        for (id, address) in addresses.sorted(by: { $0.key < $1.key }) {
            out.littleEndian(id)
            out.address(address)
        }
        out.bytes(state)
        return out.bytes
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
        do {
            guard try r.byte("version") == version else { return nil }
            let count = try r.littleEndian(UInt32.self, "member count")
            var addresses: [UInt64: TransportAddress] = [:]
            for _ in 0..<count {
                let id = try r.littleEndian(UInt64.self, "member id")
                if let address = try r.address() { addresses[id] = address }
            }
            return addresses
        } catch {
            return nil
        }
    }
}

/// The WAL's metadata record: `[1][cluster id: 8][node id: 8]`, whose cluster and node a data
/// directory belongs to, checked at every start.
package struct StorageMetadata: Hashable, Sendable, CustomStringConvertible {
    static let version: UInt8 = 1
    package var clusterID: UInt64
    package var nodeID: UInt64

    package init(clusterID: UInt64, nodeID: UInt64) {
        self.clusterID = clusterID
        self.nodeID = nodeID
    }

    package func encoded() -> [UInt8] {
        var out = ByteWriter(capacity: 17)
        out.byte(Self.version)
        out.littleEndian(clusterID)
        out.littleEndian(nodeID)
        return out.bytes
    }

    package init?(decoding bytes: [UInt8]) {
        var r = ByteReader(bytes)
        do {
            guard try r.byte("version") == Self.version else { return nil }
            clusterID = try r.littleEndian(UInt64.self, "cluster id")
            nodeID = try r.littleEndian(UInt64.self, "node id")
        } catch {
            return nil
        }
        guard r.isAtEnd else { return nil }
    }

    package var description: String { "cluster \(String(clusterID, radix: 16)), node \(nodeID)" }
}

/// A ReadIndex request context: the request id, 8 bytes.
func readContext(_ id: UInt64) -> [UInt8] {
    var out = ByteWriter(capacity: 8)
    out.littleEndian(id)
    return out.bytes
}

func requestID(fromReadContext context: [UInt8]) -> UInt64? {
    guard context.count == 8 else { return nil }
    var r = ByteReader(context)
    return try? r.littleEndian(UInt64.self, "request id")
}

extension ByteWriter {
    /// `[host length: 2][host UTF-8][port: 4]`; nil is an empty host and port 0.
    mutating func address(_ address: TransportAddress?) {
        let host = Array((address?.host ?? "").utf8.prefix(Int(UInt16.max)))
        littleEndian(UInt16(host.count))
        bytes(host)
        littleEndian(UInt32(truncatingIfNeeded: address?.port ?? 0))
    }
}

extension ByteReader {
    /// What `ByteWriter.address` wrote: nil for "no address" (port 0).
    mutating func address() throws(ByteReadError) -> TransportAddress? {
        let length = try littleEndian(UInt16.self, "host length")
        let host = String(decoding: try bytes(count: Int(length), "host"), as: UTF8.self)
        let port = try littleEndian(UInt32.self, "port")
        return port == 0 ? nil : TransportAddress(host: host, port: Int(port))
    }
}
