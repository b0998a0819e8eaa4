/// Why a connection's bytes were refused (Docs/TRANSPORT.md §5).
///
/// Every case closes the connection it arrived on and nothing else: the node carries on, and
/// nothing from after the offending bytes is delivered.
public struct TransportProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// The first four bytes were not "FLRT": not a Flotilla peer at all.
        case badMagic(UInt32)
        /// A preamble version this node does not speak.
        case unsupportedVersion(UInt8)
        /// A stream kind other than messages (1) or snapshot (2).
        case unknownStreamKind(UInt8)
        /// The dialler belongs to another cluster.
        case clusterMismatch(expected: UInt64, received: UInt64)
        /// The dialler meant to reach another node (its address book is stale).
        case wrongReceiver(expected: UInt64, received: UInt64)
        /// The preamble's sender id is 0 or the receiver's own id.
        case invalidSender(UInt64)
        /// The preamble's sender is not a member of the cluster (nor a node being added).
        case unknownPeer(UInt64)
        /// The peer opened a second snapshot stream while its first is still open.
        case snapshotStreamBusy(UInt64)
        /// With TLS: the dialler's certificate does not name the host of the member it claims to be.
        case peerIdentityMismatch(id: UInt64, host: String)
        /// A frame length above the configured limit (checked before the payload is buffered).
        case frameTooLarge(length: UInt32, limit: Int)
        /// A frame length of 0: there is not even a kind byte.
        case emptyFrame
        /// A frame kind this version does not define.
        case unknownFrameKind(UInt8)
        /// A frame of a known kind where the stream does not allow it (e.g. a chunk before the
        /// snapshot header, or a snapshot message on a message stream).
        case unexpectedFrame(FrameKind)
        /// A payload that is not the raftpb encoding it should be.
        case undecodableMessage(String)
        /// A message whose `to`/`from` disagree with the preamble, or whose type is local.
        case misaddressedMessage(type: String, from: UInt64, to: UInt64)
        /// A snapshot header whose message is not of type `.snapshot`, or that carries data.
        case malformedSnapshotHeader
        /// A snapshot announced (or streamed) beyond the configured maximum snapshot size.
        case snapshotTooLarge(size: UInt64, limit: Int)
        /// The chunks did not add up to the announced snapshot size.
        case snapshotSizeMismatch(announced: UInt64, received: UInt64)
        /// The connection ended in the middle of a preamble or frame.
        case truncated
        /// No complete preamble within the handshake timeout (a stalled or idle stranger).
        case handshakeTimeout
    }

    public let kind: Kind

    public init(_ kind: Kind) { self.kind = kind }

    public var description: String {
        switch kind {
        case .badMagic(let magic):
            return "bad magic 0x\(String(magic, radix: 16)) — not a Flotilla peer"
        case .unsupportedVersion(let version):
            return "unsupported transport version \(version) — this node speaks version \(Preamble.currentVersion)"
        case .unknownStreamKind(let kind):
            return "unknown stream kind \(kind)"
        case .clusterMismatch(let expected, let received):
            return "cluster id \(hex(received)) is not this node's cluster \(hex(expected)) — a node of another cluster"
        case .wrongReceiver(let expected, let received):
            return "addressed to node \(hex(received)) but this is node \(hex(expected)) — the sender's address book is stale"
        case .invalidSender(let id):
            return "invalid sender id \(hex(id))"
        case .unknownPeer(let id):
            return "node \(hex(id)) is not a member of this cluster (add it first: POST /ID on a member)"
        case .snapshotStreamBusy(let id):
            return "node \(hex(id)) opened a second snapshot stream while its first is open"
        case .peerIdentityMismatch(let id, let host):
            return "the dialler claims to be node \(hex(id)), but its TLS certificate does not name \(host), the host of that node's peer URL"
        case .frameTooLarge(let length, let limit):
            return "frame of \(length) bytes exceeds the \(limit)-byte limit"
        case .emptyFrame:
            return "frame of length 0"
        case .unknownFrameKind(let kind):
            return "unknown frame kind \(kind)"
        case .unexpectedFrame(let kind):
            return "unexpected \(kind) frame at this point of the stream"
        case .undecodableMessage(let reason):
            return "undecodable raftpb payload: \(reason)"
        case .misaddressedMessage(let type, let from, let to):
            return "message \(type) from \(hex(from)) to \(hex(to)) does not match the stream"
        case .malformedSnapshotHeader:
            return "snapshot header does not carry a data-less .snapshot message"
        case .snapshotTooLarge(let size, let limit):
            return "snapshot of \(size) bytes exceeds the \(limit)-byte limit"
        case .snapshotSizeMismatch(let announced, let received):
            return "snapshot announced \(announced) bytes but streamed \(received)"
        case .truncated:
            return "connection closed in the middle of a preamble or frame"
        case .handshakeTimeout:
            return "no preamble within the handshake timeout"
        }
    }
}

@inline(__always)
func hex(_ id: UInt64) -> String { String(id, radix: 16) }
