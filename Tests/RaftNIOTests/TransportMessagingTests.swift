import NIOCore
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
