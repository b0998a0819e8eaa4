import NIOCore
import Raft

/// A host and port to listen on or dial. The host is resolved at connect time, so it may be a
/// name as well as an IP address.
public struct TransportAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// What the runtime feeds back into raft (`RawNode.reportUnreachable` / `reportSnapshot`).
public enum TransportEvent: Hashable, Sendable {
    /// Messages to this peer were dropped: its queue was full, or its stream failed.
    case unreachable(UInt64)
    /// A snapshot stream to this peer ended: acknowledged (`.finish`) or not (`.failure`).
    case snapshot(UInt64, SnapshotStatus)
}

/// Everything a `RaftTransport` is told at creation (Docs/TRANSPORT.md).
public struct RaftTransportConfiguration: Sendable {
    /// Peers of another cluster are refused at the handshake.
    public var clusterID: UInt64
    /// This node's raft id: the `from` of its streams, and the `to` it accepts.
    public var localID: UInt64
    /// Where to listen; port 0 picks a free port (see `RaftTransport.start()`).
    public var listenAddress: TransportAddress
    /// The largest frame length (kind byte + payload) sent or accepted. Default 4 MiB.
    public var maxFrameSize: Int
    /// The largest snapshot data this node accepts. Default 1 GiB.
    public var maxSnapshotSize: Int
    /// Messages waiting per peer before new ones are dropped. Default 4096 (etcd's).
    public var peerQueueCapacity: Int
    /// The first reconnection delay, doubled per consecutive failure up to `backoffMax`.
    public var backoffMin: TimeAmount
    public var backoffMax: TimeAmount
    /// How long a dial may take before it counts as failed.
    public var connectTimeout: TimeAmount
    /// How long an accepted connection may take to send its preamble (after its TLS handshake,
    /// with TLS) before it is refused.
    public var handshakeTimeout: TimeAmount
    /// An accepted stream that carries nothing for a whole period of this is closed, between one
    /// and two periods after its last frame (its peer is dead or gone; a live leader's
    /// heartbeats keep the streams that matter busy). TCP keepalive is on as well, for peers
    /// that vanish without a reset.
    public var peerIdleTimeout: TimeAmount
    /// How long a snapshot sender waits for the receiver's acknowledgement after the last chunk.
    public var snapshotAckTimeout: TimeAmount
    /// The jitter source for reconnection delays (inject a fixed one in tests).
    public var jitter: Jitter
    /// Mutual TLS on every stream, both ways; nil for plaintext (loopback or a private network
    /// only: anyone who reaches the port can then pose as a member).
    public var tls: PeerTLS?

    public init(
        clusterID: UInt64,
        localID: UInt64,
        listenAddress: TransportAddress,
        maxFrameSize: Int = 4 << 20,
        maxSnapshotSize: Int = 1 << 30,
        peerQueueCapacity: Int = 4096,
        backoffMin: TimeAmount = .milliseconds(100),
        backoffMax: TimeAmount = .seconds(5),
        connectTimeout: TimeAmount = .seconds(3),
        handshakeTimeout: TimeAmount = .seconds(10),
        peerIdleTimeout: TimeAmount = .seconds(60),
        snapshotAckTimeout: TimeAmount = .seconds(30),
        jitter: Jitter = .random,
        tls: PeerTLS? = nil
    ) {
        precondition(clusterID != 0 && localID != 0, "cluster and node ids must be non-zero")
        precondition(maxFrameSize >= 64 && maxFrameSize <= Int(UInt32.max), "maxFrameSize must be in 64...2^32-1")
        self.clusterID = clusterID
        self.localID = localID
        self.listenAddress = listenAddress
        self.maxFrameSize = maxFrameSize
        self.maxSnapshotSize = maxSnapshotSize
        self.peerQueueCapacity = peerQueueCapacity
        self.backoffMin = backoffMin
        self.backoffMax = backoffMax
        self.connectTimeout = connectTimeout
        self.handshakeTimeout = handshakeTimeout
        self.peerIdleTimeout = peerIdleTimeout
        self.snapshotAckTimeout = snapshotAckTimeout
        self.jitter = jitter
        self.tls = tls
    }
}
