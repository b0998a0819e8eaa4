import NIOCore
import NIOPosix
import Raft
import RaftNIO
import Testing

/// Transports exchanging messages over real loopback sockets.
@Suite("Transport messaging")
struct TransportMessagingTests {
    @Test(.timeLimit(.minutes(1)))
    func everyMessageTypeRoundTripsBetweenTwoTransports() async throws {
        try await withCluster(2) { nodes, _ in
            let (a, b) = (nodes[0], nodes[1])
            let toB = everyMessageType(from: 1, to: 2)
            let toA = everyMessageType(from: 2, to: 1)
            a.transport.send(toB)
            b.transport.send(toA)
            let atB = try await b.received.wait("all messages at b") { $0.count == toB.count }
            let atA = try await a.received.wait("all messages at a") { $0.count == toA.count }
            #expect(atB == toB)
            #expect(atA == toA)
            #expect(a.events.snapshot.isEmpty && b.events.snapshot.isEmpty)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func manyMessagesArriveInOrder() async throws {
        // `send` does not wait, so the whole run may queue before the first write: room for it.
        try await withCluster(2, configure: { $0.peerQueueCapacity = 20_000 }) { nodes, _ in
            let (a, b) = (nodes[0], nodes[1])
            // 20,000 messages in bursts of 100: while one write is in flight the next ones queue
            // and leave coalesced (PeerStreamStateMachineTests checks the batching itself).
            var sent: [Message] = []
            for burst in 0..<200 {
                let messages = (0..<100).map { i in
                    Message(type: .append, to: 2, from: 1, term: 1, index: UInt64(burst * 100 + i),
                            entries: [Entry(term: 1, index: UInt64(burst * 100 + i + 1), data: [UInt8(i)])])
                }
                a.transport.send(messages)
                sent += messages
            }
            let received = try await b.received.wait("20,000 messages") { $0.count == sent.count }
            #expect(received == sent)
            #expect(a.events.snapshot.isEmpty)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func threeTransportsTalkToEachOther() async throws {
        try await withCluster(3) { nodes, _ in
            for node in nodes {
                let messages = nodes.filter { $0.id != node.id }.flatMap { peer in
                    (1...50).map { Message(type: .heartbeat, to: peer.id, from: node.id, term: 2, commit: $0) }
                }
                node.transport.send(messages)
            }
            for node in nodes {
                try await node.received.wait("100 heartbeats at \(node.id)") { $0.count == 100 }
                for peer in nodes where peer.id != node.id {
                    #expect(node.received(from: peer.id).map(\.commit) == Array(1...50))
                    #expect(node.received(from: peer.id).allSatisfy { $0.to == node.id })
                }
            }
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func messagesToUnknownPeersAreDroppedQuietly() async throws {
        try await withCluster(2) { nodes, _ in
            let (a, b) = (nodes[0], nodes[1])
            a.transport.send([Message(type: .heartbeat, to: 9, from: 1), Message(type: .heartbeat, to: 2, from: 1)])
            try await b.received.wait { $0.count == 1 }
            #expect(a.events.snapshot.isEmpty)
        }
    }
}

/// A transport hands messages to its `TransportDelivery` in the order sent, and reports a peer
/// that went away as unreachable.
@Suite("Transport delivery handlers")
struct TransportDeliveryTests {
    @Test(.timeLimit(.minutes(1)))
    func messagesAndEventsGoToTheHandlers() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let received = Locked<[Message]>([])
        let events = Locked<[TransportEvent]>([])
        let configuration = { (id: UInt64) in
            RaftTransportConfiguration(
                clusterID: 0xC1, localID: id, listenAddress: TransportAddress(host: "127.0.0.1", port: 0),
                backoffMin: .milliseconds(20), backoffMax: .milliseconds(200), connectTimeout: .seconds(2),
                jitter: .fixed(1))
        }
        let a = RaftTransport(
            configuration: configuration(1), eventLoopGroup: group, logger: .quiet,
            delivery: TransportDelivery(message: { _ in }, event: { event in events.withLock { $0.append(event) } }))
        let b = RaftTransport(
            configuration: configuration(2), eventLoopGroup: group, logger: .quiet,
            delivery: TransportDelivery(message: { message in received.withLock { $0.append(message) } }, event: { _ in }))
        let aPort = try await a.start()
        let bPort = try await b.start()
        a.addPeer(id: 2, address: TransportAddress(host: "127.0.0.1", port: bPort))
        b.addPeer(id: 1, address: TransportAddress(host: "127.0.0.1", port: aPort))

        let sent = (1...50).map { Message(type: .append, to: 2, from: 1, term: 3, index: UInt64($0)) }
        a.send(sent)
        try await eventuallyTrue("50 messages delivered") { received.withLock { $0.count } == 50 }
        #expect(received.withLock { $0.map(\.index) } == Array(1...50))

        await b.shutdown()
        try await eventuallyTrue("node 2 reported unreachable") {
            a.send([Message(type: .heartbeat, to: 2, from: 1, term: 3)])
            return events.withLock { $0.contains(.unreachable(2)) }
        }
        await a.shutdown()
        try await group.shutdownGracefully()
    }
}

private func eventuallyTrue(_ what: String, timeout: Duration = .seconds(20), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TestFailure("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(5))
    }
}
