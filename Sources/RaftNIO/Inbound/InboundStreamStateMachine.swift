import NIOCore
import Raft

/// What one accepted connection may carry, step by step (Docs/TRANSPORT.md §3–§5).
///
/// A value type with one method per event, each returning what the handler must do, in the
/// SwiftNIO style: the handler owns the channel, this owns the rules, and tests can drive the
/// rules without a socket.
struct InboundStreamStateMachine {
    enum State {
        case awaitingPreamble
        case messages(peer: UInt64)
        case snapshotAwaitingHeader(peer: UInt64)
        case snapshotReceiving(peer: UInt64, header: Message, announced: UInt64, data: [UInt8])
        /// The snapshot was delivered; only the close is left.
        case snapshotDone(peer: UInt64)
        /// Refused: the handler is closing the connection, and ignores whatever still arrives.
        case refused
    }

    enum Action: Equatable {
        case none
        /// Hand the message to the local node.
        case deliver(Message)
        /// Hand the reassembled `.snapshot` message to the local node, then write the ack.
        case deliverSnapshotAndAcknowledge(Message)
        /// Drop one message, log and report it; the stream goes on.
        case drop(PeerInputRefusal)
        /// Log the reason and close the connection.
        case refuse(TransportProtocolError)
    }

    private(set) var state: State = .awaitingPreamble
    let clusterID: UInt64
    let localID: UInt64
    let maxSnapshotSize: Int
    /// Whether an id is a current member (or a node being added): asked on every preamble and
    /// message, so that a removal takes effect on streams already open.
    let isMember: (UInt64) -> Bool

    init(clusterID: UInt64, localID: UInt64, maxSnapshotSize: Int, isMember: @escaping (UInt64) -> Bool) {
        self.clusterID = clusterID
        self.localID = localID
        self.maxSnapshotSize = maxSnapshotSize
        self.isMember = isMember
    }

    /// The peer this stream comes from, once its preamble was accepted.
    var peer: UInt64? {
        switch state {
        case .awaitingPreamble, .refused: return nil
        case .messages(let peer), .snapshotAwaitingHeader(let peer), .snapshotReceiving(let peer, _, _, _),
             .snapshotDone(let peer):
            return peer
        }
    }

    mutating func preambleReceived(_ preamble: Preamble) -> Action {
        guard case .awaitingPreamble = state else { return refuse(.unexpectedFrame(.message)) }
        do {
            try preamble.validate(clusterID: clusterID, localID: localID)
        } catch {
            return refuse(error)
        }
        guard isMember(preamble.from) else { return refuse(.unknownPeer(preamble.from)) }
        switch preamble.kind {
        case .messages: state = .messages(peer: preamble.from)
        case .snapshot: state = .snapshotAwaitingHeader(peer: preamble.from)
        }
        return .none
    }

    mutating func frameReceived(_ frame: Frame) -> Action {
        switch state {
        case .awaitingPreamble:
            // The decoder produces the preamble first; a frame here is a wiring bug, refuse anyway.
            return refuse(.unexpectedFrame(frame.kind))
        case .refused:
            return .none
        case .messages(let peer):
            guard frame.kind == .message else { return refuse(.unexpectedFrame(frame.kind)) }
            let message: Message
            switch decodeMessage(frame.payload) {
            case .success(let decoded): message = decoded
            case .failure(let error): return refuse(error)
            }
            if let reason = refusal(of: message, peer: peer) {
                return .drop(PeerInputRefusal(peer: peer, reason: reason, type: message.type, from: message.from, to: message.to))
            }
            return .deliver(message)
        case .snapshotAwaitingHeader(let peer):
            guard frame.kind == .snapshotHeader else { return refuse(.unexpectedFrame(frame.kind)) }
            var payload = frame.payload
            guard let announced = payload.readInteger(as: UInt64.self) else { return refuse(.malformedSnapshotHeader) }
            guard announced <= UInt64(maxSnapshotSize) else {
                return refuse(.snapshotTooLarge(size: announced, limit: maxSnapshotSize))
            }
            let header: Message
            switch decodeMessage(payload) {
            case .success(let decoded): header = decoded
            case .failure(let error): return refuse(error)
            }
            guard header.type == .snapshot, let snapshot = header.snapshot, snapshot.data.isEmpty else {
                return refuse(.malformedSnapshotHeader)
            }
            guard header.to == localID, header.from == peer else {
                return refuse(.misaddressedMessage(type: "\(header.type)", from: header.from, to: header.to))
            }
            var data: [UInt8] = []
            // Memory is taken as bytes arrive, not as announced: a sender that announces the
            // limit and sends nothing holds nothing. The first chunk's worth is reserved.
            data.reserveCapacity(Int(min(announced, 1 << 20)))
            state = .snapshotReceiving(peer: peer, header: header, announced: announced, data: data)
            return .none
        case .snapshotReceiving(let peer, var header, let announced, var data):
            switch frame.kind {
            case .snapshotChunk:
                guard UInt64(data.count + frame.payload.readableBytes) <= announced else {
                    return refuse(.snapshotSizeMismatch(
                        announced: announced, received: UInt64(data.count + frame.payload.readableBytes)))
                }
                state = .refused  // release `data` so the append below does not copy it
                frame.payload.withUnsafeReadableBytes { data.append(contentsOf: $0) }
                state = .snapshotReceiving(peer: peer, header: header, announced: announced, data: data)
                return .none
            case .snapshotEnd:
                guard UInt64(data.count) == announced else {
                    return refuse(.snapshotSizeMismatch(announced: announced, received: UInt64(data.count)))
                }
                state = .snapshotDone(peer: peer)
                header.snapshot!.data = data
                return .deliverSnapshotAndAcknowledge(header)
            default:
                return refuse(.unexpectedFrame(frame.kind))
            }
        case .snapshotDone:
            return refuse(.unexpectedFrame(frame.kind))
        }
    }

    /// The handshake timer fired: a connection that has not said who it is by now is refused,
    /// so strangers cannot hold sockets open for free.
    mutating func handshakeTimedOut() -> Action {
        guard case .awaitingPreamble = state else { return .none }
        return refuse(.handshakeTimeout)
    }

    /// The decoder or the connection failed: nothing more is delivered.
    mutating func errorCaught(_ error: TransportProtocolError) -> Action {
        if case .refused = state { return .none }
        return refuse(error)
    }

    private mutating func refuse(_ error: TransportProtocolError.Kind) -> Action {
        refuse(TransportProtocolError(error))
    }

    private mutating func refuse(_ error: TransportProtocolError) -> Action {
        state = .refused
        return .refuse(error)
    }

    private func decodeMessage(_ payload: ByteBuffer) -> Result<Message, TransportProtocolError> {
        do {
            return .success(try Message(serializedBytes: Array(payload.readableBytesView)))
        } catch {
            return .failure(TransportProtocolError(.undecodableMessage(error.description)))
        }
    }

    /// Raft trusts `from`; the stream already proved who it is, so the two must agree, except
    /// for the requests a node forwards as they are: a follower forwards proposals, read
    /// requests and transfer requests to its leader (a former leader to the new one), their
    /// `from` still the node that asked (for a transfer, the transferee), and it must be a
    /// member. Local kinds never cross the network, and snapshots travel on their own streams
    /// (so message frames stay bounded by the frame limit).
    private func refusal(of message: Message, peer: UInt64) -> PeerInputRefusal.Reason? {
        if message.type.isLocal || message.type == .snapshot { return .wrongKind }
        if message.to != localID { return .wrongReceiver }
        guard isMember(peer) else { return .peerRemoved }
        if message.from == peer { return nil }
        switch message.type {
        case .proposal, .readIndex, .transferLeader:
            return message.from == localID || isMember(message.from) ? nil : .notAMember
        default:
            return .senderMismatch
        }
    }
}
