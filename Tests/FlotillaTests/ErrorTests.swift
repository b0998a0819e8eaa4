import Flotilla
import Logging
import MetricsTestKit
import ServiceLifecycle
import Testing

/// Apply's error, as a value (the typed `FlotillaError`).
func applyOutcome(_ node: Node, _ command: [UInt8]) async -> Result<UInt64, FlotillaError> {
    do {
        return .success(try await node.apply(command))
    } catch {
        return .failure(error)
    }
}

@Suite("Flotilla errors, metrics and lifecycle", .serialized)
struct ErrorTests {
    @Test("a command over maxProposalSize fails with proposalTooLarge", .timeLimit(.minutes(1)))
    func proposalTooLarge() async throws {
        let cluster = try await TestCluster.start([1]) { $0.maxProposalSize = 64 }
        let node = cluster.nodes[1]!
        let outcome = await applyOutcome(node, [UInt8](repeating: 0x61, count: 100))
        #expect(outcome == .failure(.proposalTooLarge(size: 100, limit: 64)))
        try await applyRetrying(node, command("small", "1"))
        await cluster.shutdown()
    }

    @Test("requests to a stopped node fail with stopped", .timeLimit(.minutes(1)))
    func stopped() async throws {
        let cluster = try await TestCluster.start([1])
        let node = cluster.nodes[1]!
        try await applyRetrying(node, command("k", "v"))
        await node.shutdown()
        #expect(await applyOutcome(node, command("k", "w")) == .failure(.stopped))
        await #expect(throws: FlotillaError.stopped) { try await node.read { $0.values.count } }
        await #expect(throws: FlotillaError.stopped) { try await node.readLocal { $0.values.count } }
        #expect(await node.status.isRunning == false)
    }

    @Test("without a leader, apply fails with noLeader", .timeLimit(.minutes(1)))
    func noLeader() async throws {
        // Node 1 of a three-node cluster whose other members never start.
        let cluster = TestCluster { $0.leaderWait = .milliseconds(300) }
        let node = try Node(configuration: cluster.configuration(1, members: [1, 2, 3]), stateMachine: KeyValues(), logger: quiet)
        cluster.nodes[1] = node
        try await node.start()
        #expect(await applyOutcome(node, command("k", "v")) == .failure(.noLeader))
        await #expect(throws: FlotillaError.noLeader) { try await node.read { $0.values.count } }
        await cluster.shutdown()
    }

    @Test("a leader without a quorum times out; a cancelled request fails with cancelled", .timeLimit(.minutes(1)))
    func timeoutAndCancellation() async throws {
        // Without checkQuorum the leader keeps leading alone: its proposals never commit.
        let cluster = try await TestCluster.start {
            $0.raftOptions.checkQuorum = false
            $0.requestTimeout = .milliseconds(500)
        }
        let leader = try await cluster.leader()
        let node = cluster.nodes[leader]!
        try await applyRetrying(node, command("k", "v"))
        for id in cluster.nodes.keys where id != leader { await cluster.stop(id) }
        #expect(await applyOutcome(node, command("k", "w")) == .failure(.timeout))

        let task = Task { await applyOutcome(node, command("k", "x")) }
        try await Task.sleep(for: .milliseconds(50))
        task.cancel()
        #expect(await task.value == .failure(.cancelled))
        await cluster.shutdown()
    }

    @Test("with forwarding off, apply on a follower fails with notLeader naming the leader", .timeLimit(.minutes(1)))
    func notLeader() async throws {
        let cluster = try await TestCluster.start { $0.raftOptions.forwardProposals = false }
        let leader = try await cluster.leader()
        let follower = cluster.nodes.keys.first { $0 != leader }!
        #expect(await applyOutcome(cluster.nodes[follower]!, command("k", "v")) == .failure(.notLeader(leaderID: leader)))
        try await applyRetrying(cluster.nodes[leader]!, command("k", "v"))
        // Reads still work on the follower (ReadIndex is forwarded).
        #expect(try await cluster.nodes[follower]!.read { $0.values["k"] } == "v")
        await cluster.shutdown()
    }

    @Test("metrics count proposals, commits, leader changes, WAL saves and snapshots", .timeLimit(.minutes(1)))
    func metrics() async throws {
        let metrics = TestMetrics()
        let cluster = try await TestCluster.start([1], metrics: metrics) { $0.snapshotInterval = 5 }
        let node = cluster.nodes[1]!
        for i in 0..<10 { try await applyRetrying(node, command("k\(i)", "v")) }
        let dimensions = [("node", "1")]
        #expect(try metrics.expectCounter("flotilla_proposals_total", dimensions).totalValue >= 10)
        #expect(try metrics.expectCounter("flotilla_commits_total", dimensions).totalValue >= 11)
        #expect(try metrics.expectCounter("flotilla_leader_changes_total", dimensions).totalValue >= 1)
        // Snapshots are encoded and written off the loop: the count follows a moment later.
        try await eventually("a snapshot is counted") {
            try metrics.expectCounter("flotilla_snapshots_total", dimensions).totalValue >= 1
        }
        #expect(try metrics.expectTimer("flotilla_wal_save_duration", dimensions).values.count >= 10)
        #expect(try metrics.expectGauge("flotilla_applied_index", dimensions).lastValue ?? 0 >= 11)
        #expect(try metrics.expectGauge("flotilla_is_leader", dimensions).lastValue == 1)
        await cluster.shutdown()
    }

    /// The WAL is written on the disk thread while the loop keeps taking requests: concurrent
    /// writes gathered meanwhile go to raft as one proposal and to the disk in one save.
    @Test("concurrent writes share WAL saves", .timeLimit(.minutes(1)))
    func concurrentWritesShareSaves() async throws {
        let metrics = TestMetrics()
        let cluster = try await TestCluster.start([1], metrics: metrics)
        let node = cluster.nodes[1]!
        _ = try await applyRetrying(node, command("first", "1"))
        let saves = try metrics.expectTimer("flotilla_wal_save_duration", [("node", "1")])
        let savesBefore = saves.values.count
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<400 {
                group.addTask { _ = try await applyRetrying(node, command("b\(i)", "\(i)")) }
            }
            try await group.waitForAll()
        }
        let savesDuring = saves.values.count - savesBefore
        #expect(try await node.readLocal { $0.values.keys.filter { $0.hasPrefix("b") }.count } == 400)
        #expect(savesDuring < 200, "400 concurrent writes took \(savesDuring) WAL saves")
        await cluster.shutdown()
    }

    @Test("as a Service, the node runs until graceful shutdown", .timeLimit(.minutes(1)))
    func service() async throws {
        let cluster = TestCluster()
        let node = try Node(configuration: cluster.configuration(1, members: [1]), stateMachine: KeyValues(), logger: quiet)
        cluster.nodes[1] = node
        let group = ServiceGroup(configuration: .init(services: [node], logger: quiet))
        let run = Task { try await group.run() }
        try await eventually("the node serves") { await node.status.isRunning }
        try await applyRetrying(node, command("k", "v"))
        await group.triggerGracefulShutdown()
        try await run.value
        #expect(await node.status.isRunning == false)
        #expect(await applyOutcome(node, command("k", "w")) == .failure(.stopped))
        // The data directory is closed cleanly: a new node restarts from it.
        let restarted = try Node(configuration: cluster.configuration(1, members: [1]), stateMachine: KeyValues(), logger: quiet)
        cluster.nodes[1] = restarted
        try await restarted.start()
        try await eventually("the restarted node has the write") { try await restarted.readLocal { $0.values["k"] } == "v" }
        await cluster.shutdown()
    }
}
