import Raft
import RaftNIO

/// What a `FlotillaNode` needs of its peer transport: `RaftTransport` (SwiftNIO, TCP, mutual
/// TLS) by default; another one through `FlotillaConfiguration.transport` (an in-process one
/// for tests, or a user's own network). Messages and events it receives go to the
/// `TransportDelivery` it was made with.
///
/// `send`, `addPeer`, `updatePeer` and `removePeer` are called from the node's actor and must
/// not block: queue and return. `send` never fails; a message that cannot go is dropped (raft
/// retries), and a peer that cannot be reached is reported as `TransportEvent.unreachable`.
public protocol PeerTransport: AnyObject, Sendable {
    /// Starts listening; returns the port (what an address with port 0 picked).
    func start() async throws -> Int
    func send(_ messages: [Message])
    func addPeer(id: UInt64, address: TransportAddress)
    func updatePeer(id: UInt64, address: TransportAddress)
    func removePeer(id: UInt64)
    /// Stops: nothing is delivered once it returns.
    func shutdown() async
}

extension RaftTransport: PeerTransport {}

/// The clock a `FlotillaNode`'s ticks and request deadlines go by: the system's
/// (`SystemNodeClock`) by default; one a test moves by hand through
/// `FlotillaConfiguration.clock`, so that elections and timeouts happen when the test says.
public protocol NodeClock: Sendable {
    var now: ContinuousClock.Instant { get }
    /// Returns at `deadline` (throws `CancellationError` when the task is cancelled).
    func sleep(until deadline: ContinuousClock.Instant) async throws
}

/// The system's monotonic clock.
public struct SystemNodeClock: NodeClock {
    public init() {}
    public var now: ContinuousClock.Instant { ContinuousClock.now }
    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await Task.sleep(until: deadline, clock: .continuous)
    }
}
