import Flotilla
import RaftNIO
import RaftTestKit
import Synchronization
import Testing

/// `FlotillaNode` with its environment injected through the configuration: a simulated disk, an
/// in-process network (`InProcessNetwork`) and a clock the test moves (`ManualNodeClock`). The
/// real shell — its actor, its disk thread, its ticker — with nothing real under it, so that
/// elections and deadlines happen when the clock is moved, however loaded the machine.
@Suite(.timeLimit(.minutes(1))) struct InjectedEnvironmentTests {
    static let tick: Duration = .milliseconds(10)

    func makeNodes(_ ids: [UInt64], network: InProcessNetwork, clock: ManualNodeClock) throws -> [UInt64: Node] {
        var nodes: [UInt64: Node] = [:]
        for id in ids {
            let peers = Dictionary(uniqueKeysWithValues: ids.filter { $0 != id }.map { ($0, TransportAddress(host: "n\($0)", port: 2380)) })
            let configuration = FlotillaConfiguration(
                nodeID: id, clusterID: 7, peers: peers, listenAddress: TransportAddress(host: "n\(id)", port: 2380),
                dataDirectory: "/node", tickInterval: Self.tick, electionTicks: 30, heartbeatTicks: 1,
                requestTimeout: .seconds(5), leaderWait: .seconds(3), fileSystem: SimulatedFileSystem(),
                transport: { network.transport(for: id, delivery: $0) }, clock: clock)
            nodes[id] = try Node(configuration: configuration, stateMachine: KeyValues(), logger: quiet)
        }
        return nodes
    }

    /// Runs `body` in a task and moves the clock a tick at a time until it returns; returns its
    /// result and how far the clock moved. The clock moves only here: what `body` waits for
    /// happens at the simulated time it is due.
    func whileTicking<T: Sendable>(
        _ clock: ManualNodeClock, _ nodes: [Node], _ network: InProcessNetwork, limit: Int = 6_000, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> (T, Duration) {
        let start = clock.now
        let result = Mutex<Result<T, any Error>?>(nil)
        let task = Task {
            let outcome: Result<T, any Error>
            do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
            result.withLock { $0 = outcome }
        }
        var ticks = 0
        while result.withLock({ $0 == nil }) {
            try #require(ticks < limit, "still waiting after \(ticks) ticks of the manual clock")
            clock.advance(by: Self.tick)
            ticks += 1
            await settle(nodes, network)
        }
        await task.value
        return (try result.withLock { $0! }.get(), clock.now - start)
    }

    /// Lets the nodes take a tick and what follows from it before the next: waits until no
    /// node has a write on its disk thread and no message has moved for a few rounds. Pacing
    /// only: the clock stands still meanwhile, so nothing times out; without it the test would
    /// move the clock on faster than the disk threads answer, and no vote would ever count.
    func settle(_ nodes: [Node], _ network: InProcessNetwork) async {
        var quiet = 0
        var last = network.delivered
        for _ in 0..<10_000 where quiet < 3 {
            var writing = false
            for node in nodes where await node.status.writesInFlight > 0 { writing = true }
            await Task.yield()
            let now = network.delivered
            quiet = !writing && now == last ? quiet + 1 : 0
            last = now
        }
    }

    @Test func aClusterOnAnInjectedNetworkAndClockElectsAndCommits() async throws {
        let network = InProcessNetwork()
        let clock = ManualNodeClock()
        let nodes = try makeNodes([1, 2, 3], network: network, clock: clock)
        let nodeList = nodes.keys.sorted().map { nodes[$0]! }
        for node in nodeList { try await node.start() }
        #expect(await nodes[1]!.status.leaderID == 0, "no election before the clock moves")

        let (leader, elapsed) = try await whileTicking(clock, nodeList, network) { try await nodes[1]!.waitForLeader(timeout: .seconds(30)) }
        #expect([1, 2, 3].contains(leader))
        // An election timeout is 30–60 ticks: elected after at least one of them.
        #expect(elapsed >= Self.tick * 30)
        #expect(network.delivered > 0)

        let (index, _) = try await whileTicking(clock, nodeList, network) { try await nodes[leader]!.apply(command("a", "1")) }
        for node in nodes.values {
            _ = try await whileTicking(clock, nodeList, network) { try await node.waitUntilApplied(index, timeout: .seconds(5)) }
            #expect(try await node.readLocal { $0.values["a"] } == "1")
        }
        for node in nodes.values { await node.shutdown() }
    }

    /// A deadline is the injected clock's: a wait for an index that never comes fails with
    /// `.timeout` once the clock has moved past it, not before.
    @Test func aDeadlineExpiresWhenTheInjectedClockPassesIt() async throws {
        let clock = ManualNodeClock()
        let network = InProcessNetwork()
        let node = try #require(try makeNodes([1], network: network, clock: clock)[1])
        try await node.start()
        let nodeList = [node]
        _ = try await whileTicking(clock, nodeList, network) { try await node.waitForLeader(timeout: .seconds(30)) }
        let (outcome, elapsed) = try await whileTicking(clock, nodeList, network) { () -> FlotillaError? in
            do throws(FlotillaError) {
                try await node.waitUntilApplied(1_000, timeout: .seconds(1))
                return nil
            } catch {
                return error
            }
        }
        #expect(outcome == .timeout)
        #expect(elapsed >= Duration.seconds(1) && elapsed <= Duration.seconds(1) + Self.tick * 3, "\(elapsed)")
        await node.shutdown()
    }
}
