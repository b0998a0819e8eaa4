import NIOCore

/// The kind of stream a connection carries (Docs/TRANSPORT.md §1).
public enum StreamKind: UInt8, Hashable, Sendable {
    /// Raft messages, one per frame, for as long as the connection lives.
    case messages = 1
    /// One snapshot: header, chunks, end; the receiver acknowledges.
    case snapshot = 2
}

/// The 32 bytes a dialler writes first on every connection: who it is, whom it wants, and
/// what the stream carries. Structural checks (magic, version, kind) happen in the decoder;
/// whether the cluster and ids are acceptable is the receiver's decision (`validate`).
public struct Preamble: Hashable, Sendable {
    /// "FLRT".
    public static let magic: UInt32 = 0x464C_5254
    public static let currentVersion: UInt8 = 1
    public static let size = 32

    public var kind: StreamKind
    public var clusterID: UInt64
    public var from: UInt64
    public var to: UInt64

    public init(kind: StreamKind, clusterID: UInt64, from: UInt64, to: UInt64) {
        self.kind = kind
        self.clusterID = clusterID
        self.from = from
        self.to = to
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(Preamble.magic)
        buffer.writeInteger(Preamble.currentVersion)
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(clusterID)
        buffer.writeInteger(from)
        buffer.writeInteger(to)
    }

    /// Reads a preamble if all 32 bytes are there; nil (and nothing consumed) if not yet.
    /// The magic is checked as soon as its four bytes arrive, so a stranger is refused at once.
    static func read(from buffer: inout ByteBuffer) throws(TransportProtocolError) -> Preamble? {
        guard let magic = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard magic == Preamble.magic else { throw TransportProtocolError(.badMagic(magic)) }
        guard buffer.readableBytes >= Preamble.size else { return nil }
        let version = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self)!
        guard version == Preamble.currentVersion else { throw TransportProtocolError(.unsupportedVersion(version)) }
        let rawKind = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt8.self)!
        guard let kind = StreamKind(rawValue: rawKind) else { throw TransportProtocolError(.unknownStreamKind(rawKind)) }
        let clusterID = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt64.self)!
        let from = buffer.getInteger(at: buffer.readerIndex + 16, as: UInt64.self)!
        let to = buffer.getInteger(at: buffer.readerIndex + 24, as: UInt64.self)!
        buffer.moveReaderIndex(forwardBy: Preamble.size)
        return Preamble(kind: kind, clusterID: clusterID, from: from, to: to)
    }

    /// The receiver's acceptance rule: same cluster, addressed to this node, from someone else.
    func validate(clusterID expectedCluster: UInt64, localID: UInt64) throws(TransportProtocolError) {
        guard clusterID == expectedCluster else {
            throw TransportProtocolError(.clusterMismatch(expected: expectedCluster, received: clusterID))
        }
        guard to == localID else { throw TransportProtocolError(.wrongReceiver(expected: localID, received: to)) }
        guard from != 0, from != localID else { throw TransportProtocolError(.invalidSender(from)) }
    }
}
