import NIOCore
import NIOPosix
import Raft
import RaftNIO
import Testing

/// Peers that die, come back, or never answer.
@Suite("Transport failures")
struct TransportFailureTests {
    @Test(.timeLimit(.minutes(1)))
    func killedPeerIsReportedAndReconnectedAfterRestart() async throws {
        try await withCluster(2) { nodes, group in
            let (a, b) = (nodes[0], nodes[1])
            a.transport.send([Message(type: .heartbeat, to: 2, from: 1, term: 1)])
            try await b.received.wait { $0.count == 1 }

            await b.transport.shutdown()
            // Keep sending: the stream's loss, or the refused redials, are reported.
            var commit: UInt64 = 0
            try await a.events.wait("unreachable(2)") { events in
                commit += 1
                a.transport.send([Message(type: .heartbeat, to: 2, from: 1, term: 1, commit: commit)])
                return events.contains(.unreachable(2))
            }

            // A new node 2 on the same port: the stream redials (with backoff) and flows again.
            let restarted = try await TransportNode.start(id: 2, port: b.port, group: group)
            restarted.transport.addPeer(id: 1, address: a.address)  // accepts streams from members only
            try await restarted.received.wait("a message after the restart") { received in
                commit += 1
                a.transport.send([Message(type: .heartbeat, to: 2, from: 1, term: 2, commit: commit)])
                return !received.isEmpty
            }
            #expect(restarted.received.snapshot.allSatisfy { $0.from == 1 && $0.to == 2 })
            await restarted.transport.shutdown()
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func burstToADownPeerIsDroppedBeyondCapacityWithoutBlocking() async throws {
        try await withCluster(1, configure: { $0.peerQueueCapacity = 10 }) { nodes, group in
            let a = nodes[0]
            // A port with nothing behind it: bind a listener, note its port, close it.
            let dead = try await TransportNode.start(id: 2, group: group)
            await dead.transport.shutdown()
            a.transport.addPeer(id: 2, address: dead.address)

            let burst = (0..<10_000).map { Message(type: .append, to: 2, from: 1, index: UInt64($0)) }
            let clock = ContinuousClock()
            let elapsed = clock.measure { a.transport.send(burst) }
            // `send` queues ten and drops the rest; it never waits for the dial.
            #expect(elapsed < .seconds(2))
            try await a.events.wait("unreachable(2)") { $0.contains(.unreachable(2)) }
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func removedPeerGetsNothing() async throws {
        try await withCluster(2) { nodes, _ in
            let (a, b) = (nodes[0], nodes[1])
            a.transport.send([Message(type: .heartbeat, to: 2, from: 1, commit: 1)])
            try await b.received.wait { $0.count == 1 }
            a.transport.removePeer(id: 2)
            a.transport.send([Message(type: .heartbeat, to: 2, from: 1, commit: 2)])
            // Re-adding it works, and only the message sent after re-adding arrives.
            a.transport.addPeer(id: 2, address: b.address)
            a.transport.send([Message(type: .heartbeat, to: 2, from: 1, commit: 3)])
            let received = try await b.received.wait { $0.count == 2 }
            #expect(received.map(\.commit) == [1, 3])
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func updatedAddressIsDialled() async throws {
        try await withCluster(3) { nodes, _ in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            a.transport.send([Message(type: .heartbeat, to: 2, from: 1, commit: 1)])
            try await b.received.wait { $0.count == 1 }
            // Point "2" at node 3's port: node 3 refuses the stream (wrong receiver id), so the
            // message is lost and the peer reported unreachable; nothing reaches node 3.
            a.transport.updatePeer(id: 2, address: c.address)
            a.transport.send([Message(type: .heartbeat, to: 2, from: 1, commit: 2)])
            try await a.events.wait { $0.contains(.unreachable(2)) }
            #expect(c.received.snapshot.isEmpty)
            // And back: it flows again.
            a.transport.updatePeer(id: 2, address: b.address)
            try await b.received.wait { received in
                a.transport.send([Message(type: .heartbeat, to: 2, from: 1, commit: 3)])
                return received.contains { $0.commit == 3 }
            }
        }
    }
}
