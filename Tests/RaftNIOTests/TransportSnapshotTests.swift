import NIOCore
import Raft
import RaftNIO
import Testing

/// Snapshots streamed in chunks on their own connection.
@Suite("Transport snapshots")
struct TransportSnapshotTests {
    func snapshotMessage(size: Int, to: UInt64 = 2, from: UInt64 = 1) -> Message {
        var generator = SplitMix64(seed: UInt64(size))
        let data = (0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let metadata = SnapshotMetadata(confState: ConfState(voters: [1, 2, 3], learners: [4]), index: 1234, term: 7)
        return Message(type: .snapshot, to: to, from: from, term: 7, snapshot: Snapshot(data: data, metadata: metadata))
    }

    @Test(.timeLimit(.minutes(1)))
    func snapshotLargerThanTheFrameLimitArrivesIntact() async throws {
        try await withCluster(2, configure: { $0.maxFrameSize = 1 << 20 }) { nodes, _ in
            let (a, b) = (nodes[0], nodes[1])
            let message = snapshotMessage(size: 10 << 20)
            a.transport.send([message])
            try await a.events.wait("snapshot finish") { $0.contains(.snapshot(2, .finish)) }
            let received = try await b.received.wait { $0.count == 1 }
            #expect(received[0].snapshot?.data.count == 10 << 20)
            #expect(received[0] == message)
            #expect(!a.events.snapshot.contains(.unreachable(2)))
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func snapshotAndMessagesTravelSideBySide() async throws {
        try await withCluster(2, configure: { $0.maxFrameSize = 64 << 10 }) { nodes, _ in
            let (a, b) = (nodes[0], nodes[1])
            a.transport.send([Message(type: .heartbeat, to: 2, from: 1, commit: 1), snapshotMessage(size: 1 << 20),
                              Message(type: .heartbeat, to: 2, from: 1, commit: 2)])
            try await a.events.wait { $0.contains(.snapshot(2, .finish)) }
            let received = try await b.received.wait { $0.count == 3 }
            #expect(received.filter { $0.type == .heartbeat }.map(\.commit) == [1, 2])
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func snapshotToADeadPeerFails() async throws {
        try await withCluster(2) { nodes, _ in
            let (a, b) = (nodes[0], nodes[1])
            await b.transport.shutdown()
            a.transport.send([snapshotMessage(size: 100_000)])
            let events = try await a.events.wait { $0.contains(.snapshot(2, .failure)) }
            #expect(events.contains(.unreachable(2)))
            #expect(!events.contains(.snapshot(2, .finish)))
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func snapshotBeyondTheReceiversLimitIsRefused() async throws {
        try await withCluster(2, configure: { $0.maxSnapshotSize = 1 << 20 }) { nodes, _ in
            let (a, b) = (nodes[0], nodes[1])
            a.transport.send([snapshotMessage(size: (1 << 20) + 1)])
            try await a.events.wait { $0.contains(.snapshot(2, .failure)) }
            // Refused cleanly: nothing delivered, and the node still takes messages and snapshots.
            a.transport.send([Message(type: .heartbeat, to: 2, from: 1, commit: 5), snapshotMessage(size: 1 << 20)])
            try await a.events.wait { $0.contains(.snapshot(2, .finish)) }
            let received = try await b.received.wait { $0.count == 2 }
            #expect(received.contains { $0.type == .heartbeat && $0.commit == 5 })
            #expect(received.contains { $0.type == .snapshot && $0.snapshot?.data.count == 1 << 20 })
        }
    }
}

