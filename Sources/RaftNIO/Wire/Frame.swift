import NIOCore
import Raft

/// The kind byte of a frame (Docs/TRANSPORT.md §2).
public enum FrameKind: UInt8, Hashable, Sendable, CustomStringConvertible {
    case message = 1
    case snapshotHeader = 2
    case snapshotChunk = 3
    case snapshotEnd = 4
    case snapshotAck = 5

    public var description: String {
        switch self {
        case .message: return "message"
        case .snapshotHeader: return "snapshot header"
        case .snapshotChunk: return "snapshot chunk"
        case .snapshotEnd: return "snapshot end"
        case .snapshotAck: return "snapshot ack"
        }
    }
}

/// One decoded frame: its kind and its payload, not yet interpreted.
public struct Frame: Hashable, Sendable {
    public var kind: FrameKind
    public var payload: ByteBuffer

    public init(kind: FrameKind, payload: ByteBuffer) {
        self.kind = kind
        self.payload = payload
    }
}

/// What the decoder produces: the preamble once (on listening connections), then frames.
public enum WireEvent: Hashable, Sendable {
    case preamble(Preamble)
    case frame(Frame)
}

/// Frame sizes. `length` counts the kind byte and the payload (not the length field).
enum FrameLayout {
    static let lengthFieldSize = 4
    static let kindSize = 1
    /// The largest payload that fits a frame of `maxFrameSize`.
    static func maxPayload(maxFrameSize: Int) -> Int { maxFrameSize - kindSize }
}

extension ByteBuffer {
    /// Writes the frame header: the length (kind + payload) and the kind.
    @inlinable
    mutating func writeFrameHeader(kind: FrameKind, payloadSize: Int) {
        writeInteger(UInt32(payloadSize + 1))
        writeInteger(kind.rawValue)
    }
}

extension Message {
    /// The size of this message's frame length field value (kind byte + raftpb payload).
    var frameLength: Int { serializedSize + FrameLayout.kindSize }
}
