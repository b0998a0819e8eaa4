import Flotilla
import Foundation
import Synchronization
import Testing

/// Bounded by default: writes beyond `maxQueuedWrites` fail at once with `overloaded` (they
/// are not queued without end), the ones taken are applied once the node can, and the node
/// goes on.
@Suite("Overload", .serialized)
struct OverloadTests {
    @Test("writes beyond maxQueuedWrites fail at once with overloaded; the rest are applied", .timeLimit(.minutes(1)))
    func queuedWritesAreBounded() async throws {
        let cluster = TestCluster { $0.maxQueuedWrites = 10 }
        let node = try Node(configuration: cluster.configuration(1, members: [1]), stateMachine: KeyValues(), logger: quiet)
        cluster.nodes[1] = node
        try await node.start()
        _ = try await applyRetrying(node, command("warm", "up"))

        // Submitted while this code holds the node's actor (`readLocal` runs there): the Ready
        // loop cannot take any of them meanwhile, so exactly the first ten wait in the inbox.
        let outcomes = Outcomes()
        try await node.readLocal { _ in
            for request in 0..<30 { node.apply(command("k\(request)", "v"), completion: outcomes.handler(request)) }
        }
        // The 20 beyond the limit were refused at once, on the submitting thread.
        #expect(outcomes.calls == 20)
        #expect((10..<30).allSatisfy { outcomes.all[$0] == [.failure(.overloaded(queued: 10, limit: 10))] })
        try await outcomes.waitFor(30)
        #expect((0..<10).allSatisfy { (try? outcomes.all[$0]?.first?.get()) != nil }, "the queued writes were applied")
        #expect(try await node.readLocal { machine in (0..<10).allSatisfy { machine.values["k\($0)"] == "v" } })
        #expect(try await node.readLocal { $0.values["k10"] } == nil)
        _ = try await node.apply(command("after", "1"))
        await node.shutdown()
    }

    @Test("a leader that cannot commit refuses writes once its uncommitted tail is full", .timeLimit(.minutes(1)))
    func theUncommittedTailIsBounded() async throws {
        #expect(RaftOptions().maxUncommittedEntriesSize == 64 << 20, "bounded by default")
        let (cluster, node) = try await TestCluster.isolatedLeader { $0.raftOptions.maxUncommittedEntriesSize = 4096 }
        // One write over the limit is admitted (raft always takes one into an empty tail)...
        let outcomes = Outcomes()
        node.apply(command("big", String(repeating: "x", count: 5000)), completion: outcomes.handler(0))
        // ...and every later one is dropped at once, never queued: it answers while the big one
        // still cannot commit. (A small one that rode in the big one's batch is admitted with it.)
        var refused = false
        for request in 1...20 where !refused {
            node.apply(command("k\(request)", "v"), completion: outcomes.handler(request))
            try? await eventually("write \(request) is answered", timeout: .milliseconds(500)) { outcomes.all[request] != nil }
            refused = outcomes.all[request] == [.failure(.proposalDropped)]
        }
        #expect(refused, "no write was refused: \(outcomes.all)")
        #expect(outcomes.all[0] == nil, "the big write is still waiting for a quorum")
        await node.shutdown()
        await cluster.shutdown()
    }
}
