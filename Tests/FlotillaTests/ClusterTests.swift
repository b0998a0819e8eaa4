import Flotilla
import Foundation
import Testing

@Suite("Flotilla clusters over loopback", .serialized)
struct ClusterTests {
    @Test("writes and reads on every node", .timeLimit(.minutes(1)))
    func writesAndReadsEverywhere() async throws {
        let cluster = try await TestCluster.start()
        _ = try await cluster.leader()
        for (id, node) in cluster.nodes {
            let index = try await applyRetrying(node, command("k\(id)", "v\(id)"))
            #expect(index > 0)
        }
        for (_, node) in cluster.nodes {
            for id in cluster.nodes.keys {
                let value = try await node.read { $0.values["k\(id)"] }
                #expect(value == "v\(id)")
            }
        }
        for (_, node) in cluster.nodes {
            try await eventually("local reads see every write") {
                try await node.readLocal { $0.values.count } == 3
            }
        }
        await cluster.shutdown()
    }

    // Requests used to register their waiters and propose off the node's actor, racing the
    // Ready loop: under concurrent writes the node crashed (heap corruption, or raft's "appending
    // after N is out of range"). `park` now runs them on the actor and checks it.
    @Test("concurrent writes on the leader all apply", .timeLimit(.minutes(1)))
    func concurrentWrites() async throws {
        let cluster = try await TestCluster.start()
        let leader = cluster.nodes[try await cluster.leader()]!
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask { _ = try await applyRetrying(leader, command("c\(i)", "\(i)")) }
            }
            try await group.waitForAll()
        }
        let count = try await leader.read { $0.values.keys.filter { $0.hasPrefix("c") }.count }
        #expect(count == 200)
        await cluster.shutdown()
    }

    @Test("the leader is stopped and writes continue on the new leader", .timeLimit(.minutes(1)))
    func leaderFailover() async throws {
        let cluster = try await TestCluster.start()
        let first = try await cluster.leader()
        try await applyRetrying(cluster.nodes[first]!, command("before", "1"))
        await cluster.stop(first)
        let rest = cluster.nodes.keys.filter { $0 != first }
        let second = try await cluster.leader(among: rest)
        #expect(second != first)
        for id in rest { try await applyRetrying(cluster.nodes[id]!, command("after\(id)", "2")) }
        for id in rest {
            let values = try await cluster.nodes[id]!.read { $0.values }
            #expect(values["before"] == "1")
            for other in rest { #expect(values["after\(other)"] == "2") }
        }
        await cluster.shutdown()
    }

    /// A follower forwards a read-index request to a leader that dies before answering: the
    /// round is asked again of the new leader, and the read completes soon after the election
    /// instead of failing at the request timeout.
    @Test("a read asked of a leader that dies is asked again of the next", .timeLimit(.minutes(1)))
    func readSurvivesLeaderDeath() async throws {
        let cluster = try await TestCluster.start { $0.requestTimeout = .seconds(20) }
        let first = try await cluster.leader()
        let follower = cluster.nodes.keys.first { $0 != first }!
        try await applyRetrying(cluster.nodes[first]!, command("k", "v"))
        try await eventually("the follower applied the write") { try await cluster.nodes[follower]!.readLocal { $0.values["k"] } == "v" }

        await cluster.stop(first)
        let started = ContinuousClock.now
        let value = try await cluster.nodes[follower]!.read { $0.values["k"] }
        let took = ContinuousClock.now - started
        #expect(value == "v")
        // Elections here take a few hundred milliseconds; without the retry the read waited
        // for the 20 s request timeout.
        #expect(took < .seconds(10), "the read took \(took)")
        await cluster.shutdown()
    }

    @Test("a node restarted from its data directory recovers and catches up", .timeLimit(.minutes(1)))
    func restartFromDisk() async throws {
        let cluster = try await TestCluster.start { $0.snapshotInterval = 10; $0.entriesKeptAfterCompaction = 5 }
        _ = try await cluster.leader()
        let node = cluster.nodes[2]!
        for i in 0..<25 { try await applyRetrying(node, command("a\(i)", "\(i)")) }
        // Snapshots are written off the loop: let the second one land before stopping.
        try await eventually("node 2 has a snapshot at 20 or later") { await node.status.snapshotIndex >= 20 }
        await cluster.stop(2)
        for i in 0..<10 { try await applyRetrying(cluster.nodes[1]!, command("b\(i)", "\(i)")) }
        let restarted = try await cluster.restart(2)
        #expect(await restarted.status.snapshotIndex >= 20)  // restored from its own snapshot
        try await eventually("the restarted node has every write") {
            try await restarted.readLocal { $0.values.count } == 35
        }
        let value = try await restarted.read { $0.values["b9"] }
        #expect(value == "9")
        try await applyRetrying(restarted, command("c", "3"))
        await cluster.shutdown()
    }

    @Test("a node is added and one removed", .timeLimit(.minutes(1)))
    func addAndRemove() async throws {
        let cluster = try await TestCluster.start()
        let leader = try await cluster.leader()
        try await applyRetrying(cluster.nodes[leader]!, command("x", "1"))
        let joiner = try await cluster.startJoining(4)
        try await cluster.nodes[1]!.addMember(id: 4, address: cluster.address(4))
        try await eventually("the new node has caught up") {
            try await joiner.readLocal { $0.values["x"] } == "1"
        }
        try await applyRetrying(joiner, command("y", "2"))
        let removed: UInt64 = leader == 3 ? 2 : 3
        try await cluster.nodes[4]!.removeMember(id: removed)
        await cluster.stop(removed)
        let rest = [UInt64(1), 2, 3, 4].filter { $0 != removed }
        for id in rest {
            try await eventually("every member sees the new membership") {
                await cluster.nodes[id]!.status.voters == rest
            }
        }
        // `members` lists them with the addresses the conf changes carried.
        #expect(await joiner.members == rest.map { FlotillaMember(id: $0, address: cluster.address($0), isLearner: false) })
        try await applyRetrying(cluster.nodes[rest[0]]!, command("z", "3"))
        let values = try await joiner.read { $0.values }
        #expect(values == ["x": "1", "y": "2", "z": "3"])
        await cluster.shutdown()
    }

    @Test("a new node catches up through a snapshot", .timeLimit(.minutes(1)))
    func snapshotInstall() async throws {
        let cluster = try await TestCluster.start { $0.snapshotInterval = 20; $0.entriesKeptAfterCompaction = 5 }
        let leader = try await cluster.leader()
        for i in 0..<60 { try await applyRetrying(cluster.nodes[leader]!, command("k\(i)", "\(i)")) }
        try await eventually("the leader has compacted its log") {
            await cluster.nodes[leader]!.status.snapshotIndex >= 40
        }
        let joiner = try await cluster.startJoining(4)
        try await cluster.nodes[leader]!.addMember(id: 4, address: cluster.address(4), asLearner: true)
        try await eventually("the learner has every write") {
            try await joiner.readLocal { $0.values.count } == 60
        }
        #expect(await joiner.status.snapshotIndex >= 40)  // it got there through a snapshot
        try await cluster.nodes[leader]!.promoteMember(id: 4)
        try await eventually("the learner is a voter") { await joiner.status.voters == [1, 2, 3, 4] }
        try await applyRetrying(joiner, command("last", "1"))
        #expect(try await joiner.read { $0.values.count } == 61)
        await cluster.shutdown()
    }

    @Test("leadership is transferred", .timeLimit(.minutes(1)))
    func transfer() async throws {
        let cluster = try await TestCluster.start()
        let leader = try await cluster.leader()
        let target: UInt64 = leader == 1 ? 2 : 1
        try await cluster.nodes[leader]!.transferLeadership(to: target)
        #expect(try await cluster.leader() == target)
        try await applyRetrying(cluster.nodes[leader]!, command("k", "v"))
        // Asked on a follower, for a third node: the follower forwards the request to the
        // leader (its `from` is the transferee, not the follower).
        let next = [UInt64(1), 2, 3].first { $0 != target && $0 != leader }!
        try await cluster.nodes[leader]!.transferLeadership(to: next)
        #expect(try await cluster.leader() == next)
        await cluster.shutdown()
    }

    /// The leader is cut off (its messages go nowhere) with a write appended but not
    /// committed; the others elect a new leader, which commits its own entry at that index.
    /// When the old leader hears of it, the write fails with `.leaderChanged` at once, not at
    /// the request timeout, and it is applied nowhere.
    @Test("a write lost in a change of leader fails at once", .timeLimit(.minutes(1)))
    func writeLostInLeaderChange() async throws {
        let cluster = try await TestCluster.start { $0.requestTimeout = .seconds(30) }
        let old = try await cluster.leader()
        let oldLeader = cluster.nodes[old]!
        try await applyRetrying(oldLeader, command("before", "1"))
        let others = cluster.nodes.keys.filter { $0 != old }
        for id in others {
            await oldLeader.updatePeer(id: id, address: TransportAddress(host: "127.0.0.1", port: 1))
        }

        let started = ContinuousClock.now
        let lost = Task { () -> Result<UInt64, FlotillaError> in
            do throws(FlotillaError) { return .success(try await oldLeader.apply(command("lost", "1"))) } catch { return .failure(error) }
        }
        let next = try await cluster.leader(among: others)
        #expect(next != old)
        // The old leader's messages reach the others again: it hears of the new term, drops
        // its uncommitted entry for the new leader's, and applies that.
        for id in others { await oldLeader.updatePeer(id: id, address: cluster.address(id)) }

        let result = await lost.value
        let took = ContinuousClock.now - started
        #expect(result == .failure(.leaderChanged), "\(result)")
        #expect(took < .seconds(15), "failed after \(took), the request timeout is 30 s")
        try await applyRetrying(cluster.nodes[next]!, command("after", "2"))
        for id in cluster.nodes.keys {
            let node = cluster.nodes[id]!
            try await eventually("node \(id) applied the write after") { try await node.readLocal { $0.values["after"] } == "2" }
            #expect(try await node.readLocal { $0.values["lost"] } == nil)
            #expect(try await node.readLocal { $0.values["before"] } == "1")
        }
        await cluster.shutdown()
    }
}

/// The key-value machine, but refusing every snapshot: a leader's snapshot it cannot restore.
struct RefusingValues: StateMachine {
    var inner = KeyValues()
    struct Refused: Error {}
    mutating func apply(_ command: [UInt8], index: UInt64) -> UInt64 { inner.apply(command, index: index) }
    func snapshot() throws -> [UInt8] { try inner.snapshot() }
    mutating func restore(from snapshot: [UInt8]) throws { throw Refused() }
}

@Suite("Snapshots a node cannot restore", .serialized)
struct UnrestorableSnapshotTests {
    /// A snapshot the state machine refuses stops the node before anything of it is persisted:
    /// its data directory starts again (with a machine that can restore it) and catches up.
    @Test("the node stops, its data directory unchanged, and starts again", .timeLimit(.minutes(1)))
    func aRefusedSnapshotIsNotPersisted() async throws {
        let cluster = try await TestCluster.start { $0.snapshotInterval = 20; $0.entriesKeptAfterCompaction = 5 }
        let leader = try await cluster.leader()
        for i in 0..<60 { try await applyRetrying(cluster.nodes[leader]!, command("k\(i)", "\(i)")) }
        try await eventually("the leader has compacted its log") { await cluster.nodes[leader]!.status.snapshotIndex >= 40 }

        let configuration = cluster.configuration(4, members: Array(cluster.nodes.keys), bootstrap: .join)
        let refusing = try FlotillaNode(configuration: configuration, stateMachine: RefusingValues(), logger: quiet)
        cluster.ports[4] = try await refusing.start()
        try await cluster.nodes[leader]!.addMember(id: 4, address: cluster.address(4), asLearner: true)
        try await eventually("the node stopped on the snapshot") { await !refusing.status.isRunning }
        await refusing.shutdown()  // waits until it has closed its WAL and let go of the data directory
        let snapshots = (try? FileManager.default.contentsOfDirectory(atPath: configuration.dataDirectory + "/snap")) ?? []
        #expect(!snapshots.contains { $0.hasSuffix(".snap") }, "the refused snapshot was persisted: \(snapshots)")

        // The same data directory, with a machine that can restore the snapshot.
        let restarted = try Node(configuration: cluster.configuration(4, members: Array(cluster.nodes.keys), bootstrap: .join),
                                 stateMachine: KeyValues(), logger: quiet)
        cluster.nodes[4] = restarted
        _ = try await restarted.start()
        try await eventually("the restarted node has every write") { try await restarted.readLocal { $0.values.count } == 60 }
        await cluster.shutdown()
    }
}
