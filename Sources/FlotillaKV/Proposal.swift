/// The envelope around a state-machine command in a normal raft entry: it carries the request id
/// that lets the node that proposed the entry find the client waiting for it once the entry is
/// applied. The command inside is the state machine's business (`KeyValueStore.Command`); the
/// envelope is the driver's, so the later `Flotilla` runtime can keep this format and wrap any
/// state machine's commands the same way.
///
/// ## Format (version 1)
///
/// | bytes | meaning |
/// | --- | --- |
/// | 1 | envelope version, `0x01` |
/// | 8 | request id, little-endian (unique per proposal; 0 = nobody waits) |
/// | rest | the command |
struct Proposal: Sendable, Hashable {
    static let version: UInt8 = 1
    static let headerSize = 9

    var requestID: UInt64
    var command: [UInt8]

    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerSize + command.count)
        out.append(Self.version)
        withUnsafeBytes(of: requestID.littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: command)
        return out
    }

    init(requestID: UInt64, command: [UInt8]) {
        self.requestID = requestID
        self.command = command
    }

    init(decoding bytes: [UInt8]) throws(KeyValueStoreError) {
        guard let version = bytes.first else {
            throw .truncated(what: "proposal", field: "version", offset: 0)
        }
        guard version == Self.version else {
            throw .unsupportedVersion(what: "proposal", version: version, supported: Self.version)
        }
        guard bytes.count >= Self.headerSize else {
            throw .truncated(what: "proposal", field: "request id", offset: 1)
        }
        var id: UInt64 = 0
        for i in 0..<8 { id |= UInt64(bytes[1 + i]) << (8 * UInt64(i)) }
        self.requestID = id
        self.command = Array(bytes[Self.headerSize...])
    }
}

/// Request ids and read contexts that do not repeat, within a run or across restarts: a random
/// 64-bit start, then counting up. (etcd's idutil puts the member id and a timestamp in the high
/// bits; a random start gives the same guarantee without a clock.)
struct RequestIDGenerator: Sendable {
    private var next: UInt64

    init() {
        var rng = SystemRandomNumberGenerator()
        next = rng.next()
    }

    mutating func make() -> UInt64 {
        next &+= 1
        if next == 0 { next = 1 }  // 0 means "nobody waits"
        return next
    }
}
