import Flotilla
import Raft
import RaftNIO
import Synchronization

/// Peer transports between `FlotillaNode`s of one process, without sockets: a message sent is
/// handed to its receiver's delivery at once, unless the receiver is not started (or was shut
/// down). What `FlotillaConfiguration.transport` takes:
/// `{ network.transport(for: id, delivery: $0) }`.
public final class InProcessNetwork: Sendable {
    struct State {
        var deliveries: [UInt64: TransportDelivery] = [:]
        var delivered = 0
    }

    let state = Mutex(State())

    public init() {}

    public func transport(for id: UInt64, delivery: TransportDelivery) -> any PeerTransport {
        InProcessTransport(network: self, id: id, delivery: delivery)
    }

    /// Messages handed to a receiver so far.
    public var delivered: Int { state.withLock { $0.delivered } }

    func attach(_ id: UInt64, _ delivery: TransportDelivery?) {
        state.withLock { $0.deliveries[id] = delivery }
    }

    func send(_ messages: [Message]) {
        for message in messages {
            let delivery: TransportDelivery? = state.withLock { state in
                guard let delivery = state.deliveries[message.to] else { return nil }
                state.delivered += 1
                return delivery
            }
            delivery?.message(message)
        }
    }
}

/// One node's end of an `InProcessNetwork`.
final class InProcessTransport: PeerTransport {
    let network: InProcessNetwork
    let id: UInt64
    let delivery: TransportDelivery

    init(network: InProcessNetwork, id: UInt64, delivery: TransportDelivery) {
        self.network = network
        self.id = id
        self.delivery = delivery
    }

    func start() async throws -> Int {
        network.attach(id, delivery)
        return 0
    }

    func send(_ messages: [Message]) { network.send(messages) }
    // Every node of the network is reachable by its id: addresses play no part.
    func addPeer(id: UInt64, address: TransportAddress) {}
    func updatePeer(id: UInt64, address: TransportAddress) {}
    func removePeer(id: UInt64) {}

    func shutdown() async { network.attach(id, nil) }
}
