import Synchronization

/// The peers the runtime added (the current members, and a node being added once its change is
/// applied) and where each listens: who may open streams to this node (and, with TLS, which
/// host its certificate must name), where snapshots to it go, and which of them are streaming a
/// snapshot in right now.
///
/// Read by every inbound connection, from the event loops, on each preamble and message frame;
/// written by `addPeer` / `removePeer`. A lock, not an actor: a check must not suspend.
final class PeerDirectory: Sendable {
    private struct State {
        var members: [UInt64: TransportAddress] = [:]
        var receivingSnapshot: Set<UInt64> = []
    }

    private let state = Mutex(State())

    func add(_ id: UInt64, address: TransportAddress) { state.withLock { $0.members[id] = address } }
    func remove(_ id: UInt64) { _ = state.withLock { $0.members.removeValue(forKey: id) } }
    func contains(_ id: UInt64) -> Bool { state.withLock { $0.members[id] != nil } }
    func address(of id: UInt64) -> TransportAddress? { state.withLock { $0.members[id] } }

    /// Claims the one inbound snapshot stream `peer` may have at a time: a second, while the
    /// first is still open, would hold a second snapshot's worth of memory for nothing (the
    /// first one's sender gave up on it, or it is an attack).
    func claimSnapshotStream(from peer: UInt64) -> Bool {
        state.withLock { $0.receivingSnapshot.insert(peer).inserted }
    }

    func releaseSnapshotStream(from peer: UInt64) {
        _ = state.withLock { $0.receivingSnapshot.remove(peer) }
    }
}
