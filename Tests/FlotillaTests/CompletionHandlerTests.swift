import Flotilla
import Synchronization
import Testing

/// The outcomes a completion handler was called with, by request.
final class Outcomes: Sendable {
    private let state = Mutex<(outcomes: [Int: [Result<UInt64, FlotillaError>]], calls: Int)>(([:], 0))

    /// A handler that records its outcome under `request`.
    func handler(_ request: Int) -> @Sendable (Result<UInt64, FlotillaError>) -> Void {
        { outcome in self.state.withLock { $0.outcomes[request, default: []].append(outcome); $0.calls += 1 } }
    }

    var calls: Int { state.withLock { $0.calls } }
    var all: [Int: [Result<UInt64, FlotillaError>]] { state.withLock { $0.outcomes } }

    /// Waits until `count` handlers were called.
    func waitFor(_ count: Int, timeout: Duration = .seconds(20)) async throws {
        try await eventually("\(count) completion handlers are called", timeout: timeout) { self.calls >= count }
    }
}

/// `FlotillaNode.apply(_:completion:)`, the entry for callers on an event loop: every handler
/// is called exactly once, with what `apply(_:)` would return or throw.
@Suite("Writes with a completion handler", .serialized)
struct CompletionHandlerTests {
    @Test("writes from many threads, to the leader and a follower, each complete once with their own index", .timeLimit(.minutes(1)))
    func manyWritesCompleteOnce() async throws {
        let cluster = try await TestCluster.start()
        let leader = try await cluster.leader()
        let follower = cluster.nodes.keys.first { $0 != leader }!
        try await applyRetrying(cluster.nodes[leader]!, command("warm", "up"))

        let outcomes = Outcomes()
        let count = 300
        await withTaskGroup(of: Void.self) { group in
            for request in 0..<count {
                let node = cluster.nodes[request % 3 == 0 ? follower : leader]!
                group.addTask { node.apply(command("k\(request)", "v\(request)"), completion: outcomes.handler(request)) }
            }
        }
        try await outcomes.waitFor(count)
        try await Task.sleep(for: .milliseconds(100))  // a second call would show up now
        let all = outcomes.all
        #expect(all.count == count && all.values.allSatisfy { $0.count == 1 })
        let indexes = all.values.compactMap { try? $0.first?.get() }
        #expect(indexes.count == count, "failures: \(all.values.filter { (try? $0.first?.get()) == nil })")
        #expect(Set(indexes).count == count, "each write has its own entry")

        // Every node applied every write.
        for node in cluster.nodes.values {
            try await eventually("every write is applied") {
                try await node.readLocal { machine in (0..<count).allSatisfy { machine.values["k\($0)"] == "v\($0)" } }
            }
        }
        await cluster.shutdown()
    }

    @Test("before start: notStarted; over the size limit: proposalTooLarge; after shutdown: stopped", .timeLimit(.minutes(1)))
    func refusals() async throws {
        let cluster = TestCluster { $0.maxProposalSize = 64 }
        let node = try Node(configuration: cluster.configuration(1, members: [1]), stateMachine: KeyValues(), logger: quiet)
        cluster.nodes[1] = node
        let outcomes = Outcomes()
        node.apply(command("early", "1"), completion: outcomes.handler(0))
        #expect(outcomes.all[0] == [.failure(.notStarted)], "refused at once, before start")

        try await node.start()
        try await applyRetrying(node, command("k", "v"))
        node.apply([UInt8](repeating: 0x61, count: 100), completion: outcomes.handler(1))
        node.apply(command("small", "1"), completion: outcomes.handler(2))
        try await outcomes.waitFor(3)
        #expect(outcomes.all[1] == [.failure(.proposalTooLarge(size: 100, limit: 64))])
        #expect((try? outcomes.all[2]?.first?.get()) != nil)
        #expect(try await node.readLocal { $0.values["early"] } == nil, "the refused write was not applied later")

        await node.shutdown()
        node.apply(command("late", "1"), completion: outcomes.handler(3))
        #expect(outcomes.all[3] == [.failure(.stopped)], "refused at once, after shutdown")
    }

    @Test("writes that cannot commit fail with stopped at shutdown, each once", .timeLimit(.minutes(1)))
    func pendingWritesFailAtShutdown() async throws {
        let (cluster, node) = try await TestCluster.isolatedLeader()

        let outcomes = Outcomes()
        for request in 0..<20 { node.apply(command("k", "\(request)"), completion: outcomes.handler(request)) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(outcomes.calls == 0, "nothing can commit")
        await node.shutdown()
        try await outcomes.waitFor(20, timeout: .seconds(5))
        #expect(outcomes.all.values.allSatisfy { $0 == [.failure(.stopped)] })
        await cluster.shutdown()
    }

    @Test("with no leader known, a write waits leaderWait for one, then fails with noLeader", .timeLimit(.minutes(1)))
    func noLeader() async throws {
        let cluster = TestCluster { $0.leaderWait = .milliseconds(300) }
        let node = try Node(configuration: cluster.configuration(1, members: [1, 2, 3]), stateMachine: KeyValues(), logger: quiet)
        cluster.nodes[1] = node
        try await node.start()
        let outcomes = Outcomes()
        let start = ContinuousClock.now
        node.apply(command("k", "v"), completion: outcomes.handler(0))
        try await outcomes.waitFor(1, timeout: .seconds(5))
        #expect(outcomes.all[0] == [.failure(.noLeader)])
        #expect(ContinuousClock.now - start >= .milliseconds(250))
        await cluster.shutdown()
    }

    @Test("a write that times out fails with timeout", .timeLimit(.minutes(1)))
    func timeout() async throws {
        let cluster = try await TestCluster.start {
            $0.raftOptions.checkQuorum = false
            $0.requestTimeout = .milliseconds(400)
        }
        let leader = try await cluster.leader()
        let node = cluster.nodes[leader]!
        try await applyRetrying(node, command("k", "v"))
        for id in cluster.nodes.keys where id != leader { await cluster.stop(id) }
        let outcomes = Outcomes()
        node.apply(command("k", "w"), completion: outcomes.handler(0))
        try await outcomes.waitFor(1, timeout: .seconds(5))
        #expect(outcomes.all[0] == [.failure(.timeout)])
        await cluster.shutdown()
    }
}
