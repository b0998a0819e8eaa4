import NIOCore
import Raft

/// What the transport writes on a connection. Each case becomes one `ByteBuffer` write, so a
/// batch of messages leaves in one write (and the caller flushes once).
public enum OutboundFrame: Sendable {
    case preamble(Preamble)
    /// Several messages, one frame each, coalesced into one buffer.
    case messages([Message])
    /// The snapshot header: the data size, then the `.snapshot` message with its data emptied.
    case snapshotHeader(Message, dataSize: UInt64)
    /// A slice of the snapshot's data; at most the frame limit minus the kind byte.
    case snapshotChunk(ArraySlice<UInt8>)
    case snapshotEnd
    case snapshotAck
}

/// Encodes `OutboundFrame`s (Docs/TRANSPORT.md §2). Frame limits are the sender's job (it
/// refuses oversized messages before they get here); the encoder writes what it is given.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = OutboundFrame

    public init() {}

    public func encode(data: OutboundFrame, out: inout ByteBuffer) throws {
        switch data {
        case .preamble(let preamble):
            preamble.write(to: &out)
        case .messages(let messages):
            FrameEncoder.writeMessages(messages, to: &out)
        case .snapshotHeader(let message, let dataSize):
            let bytes = message.serializedBytes()
            out.writeFrameHeader(kind: .snapshotHeader, payloadSize: 8 + bytes.count)
            out.writeInteger(dataSize)
            out.writeBytes(bytes)
        case .snapshotChunk(let chunk):
            out.writeFrameHeader(kind: .snapshotChunk, payloadSize: chunk.count)
            out.writeBytes(chunk)
        case .snapshotEnd:
            out.writeFrameHeader(kind: .snapshotEnd, payloadSize: 0)
        case .snapshotAck:
            out.writeFrameHeader(kind: .snapshotAck, payloadSize: 0)
        }
    }

    /// Frames every message into one contiguous run of bytes: the raftpb encoder appends to a
    /// `[UInt8]`, so the batch is built there once and copied into the buffer once.
    static func writeMessages(_ messages: [Message], to out: inout ByteBuffer) {
        var size = 0
        for message in messages { size += FrameLayout.lengthFieldSize + message.frameLength }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(size)
        for message in messages {
            let length = UInt32(message.frameLength)
            bytes.append(UInt8(truncatingIfNeeded: length >> 24))
            bytes.append(UInt8(truncatingIfNeeded: length >> 16))
            bytes.append(UInt8(truncatingIfNeeded: length >> 8))
            bytes.append(UInt8(truncatingIfNeeded: length))
            bytes.append(FrameKind.message.rawValue)
            message.appendSerializedBytes(to: &bytes)
        }
        out.writeBytes(bytes)
    }
}
