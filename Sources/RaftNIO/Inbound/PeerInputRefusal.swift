import Raft

/// A message a peer stream carried that the listener did not deliver (Docs/TRANSPORT.md §3):
/// dropped, logged and reported through `TransportDelivery.refused`, while the stream goes on
/// carrying the peer's good traffic.
public struct PeerInputRefusal: Hashable, Sendable, CustomStringConvertible {
    public enum Reason: String, Hashable, Sendable, CaseIterable {
        /// `to` is not this node.
        case wrongReceiver = "wrong_receiver"
        /// `from` is not the stream's peer, for a kind that is never forwarded.
        case senderMismatch = "sender_mismatch"
        /// A forwarded request (proposal, readIndex, transferLeader) whose `from` is not a member.
        case notAMember = "not_a_member"
        /// The stream's peer was removed from the cluster after the stream was accepted.
        case peerRemoved = "peer_removed"
        /// A kind that never crosses the network (hup, beat, unreachable, snapshotStatus,
        /// checkQuorum), or a snapshot on a message stream (snapshots have their own streams).
        case wrongKind = "wrong_kind"
    }

    /// The stream's peer (the preamble's `from`).
    public var peer: UInt64
    public var reason: Reason
    public var type: MessageType
    public var from: UInt64
    public var to: UInt64

    public init(peer: UInt64, reason: Reason, type: MessageType, from: UInt64, to: UInt64) {
        self.peer = peer
        self.reason = reason
        self.type = type
        self.from = from
        self.to = to
    }

    public var description: String {
        let what = "\(type) from \(hex(from)) to \(hex(to)) on the stream of \(hex(peer))"
        switch reason {
        case .wrongReceiver: return "\(what): not addressed to this node"
        case .senderMismatch: return "\(what): its sender is not the stream's peer"
        case .notAMember: return "\(what): forwarded for a node that is not a member"
        case .peerRemoved: return "\(what): the peer was removed from the cluster"
        case .wrongKind: return "\(what): this kind never travels on a message stream"
        }
    }
}
