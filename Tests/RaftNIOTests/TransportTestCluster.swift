import Logging
import NIOCore
import NIOPosix
import Raft
import RaftNIO

/// A few transports on loopback, each delivering into collectors.
final class TransportNode: Sendable {
    let id: UInt64
    let transport: RaftTransport
    let port: Int
    let received: Collector<Message>
    let events: Collector<TransportEvent>

    init(id: UInt64, transport: RaftTransport, port: Int, received: Collector<Message>, events: Collector<TransportEvent>) {
        self.id = id
        self.transport = transport
        self.port = port
        self.received = received
        self.events = events
    }

    var address: TransportAddress { TransportAddress(host: "127.0.0.1", port: port) }

    static func start(
        id: UInt64, clusterID: UInt64 = 0xC1, port: Int = 0, group: any EventLoopGroup,
        configure: (inout RaftTransportConfiguration) -> Void = { _ in }
    ) async throws -> TransportNode {
        var configuration = RaftTransportConfiguration(
            clusterID: clusterID, localID: id, listenAddress: TransportAddress(host: "127.0.0.1", port: port),
            backoffMin: .milliseconds(20), backoffMax: .milliseconds(200), connectTimeout: .seconds(2),
            jitter: .fixed(1))
        configure(&configuration)
        let (received, events) = (Collector<Message>(), Collector<TransportEvent>())
        let transport = RaftTransport(
            configuration: configuration, eventLoopGroup: group, logger: .quiet,
            delivery: TransportDelivery(message: received.add, event: events.add))
        let bound = try await transport.start()
        return TransportNode(id: id, transport: transport, port: bound, received: received, events: events)
    }

    /// Messages received from `peer`.
    func received(from peer: UInt64) -> [Message] { received.snapshot.filter { $0.from == peer } }
}

/// Starts `count` transports (ids 1...count) that know each other; runs `body`; shuts all down.
func withCluster(
    _ count: Int, configure: (inout RaftTransportConfiguration) -> Void = { _ in },
    _ body: ([TransportNode], any EventLoopGroup) async throws -> Void
) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var nodes: [TransportNode] = []
    do {
        for id in 1...UInt64(count) {
            nodes.append(try await TransportNode.start(id: id, group: group, configure: configure))
        }
        for node in nodes {
            for peer in nodes where peer.id != node.id { node.transport.addPeer(id: peer.id, address: peer.address) }
        }
        try await body(nodes, group)
    } catch {
        for node in nodes { await node.transport.shutdown() }
        try await group.shutdownGracefully()
        throw error
    }
    for node in nodes { await node.transport.shutdown() }
    try await group.shutdownGracefully()
}

/// One message of every type that crosses the network, with every field set, from → to.
func everyMessageType(from: UInt64, to: UInt64) -> [Message] {
    MessageType.allCases.filter { !$0.isLocal }.enumerated().map { offset, type in
        let i = UInt64(offset + 1)
        var message = Message(
            type: type, to: to, from: from, term: 10 + i, logTerm: 9 + i, index: 100 + i,
            entries: [Entry(term: 9, index: 100 + i, type: .normal, data: Array("entry \(i)".utf8)),
                      Entry(term: 9, index: 101 + i, type: .confChange, data: [1, 2, 3])],
            commit: 50 + i, reject: offset % 2 == 0, rejectHint: 7 * i, context: [UInt8(i), 0xff])
        if type == .snapshot { message.type = .append }  // snapshots travel on their own streams
        return message
    }
}
