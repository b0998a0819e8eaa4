import Testing
@testable import Raft

/// The asynchronous `Node` driver, run for real: tasks, an AsyncSequence of Ready, advance.
@Suite struct NodeTests {
    /// A single-node cluster: bootstrap, campaign, propose, and see the entries come back
    /// committed through `readies`.
    @Test(.timeLimit(.minutes(1))) func singleNodeCommitsProposals() async throws {
        let storage = MemoryStorage()
        let node = try Node.start(config: Config(id: 1, storage: storage), peers: [Peer(id: 1)])
        var committed: [[UInt8]] = []
        var proposed = false
        var campaigned = false
        for await rd in node.readies {
            if let hs = rd.hardState { try storage.setHardState(hs) }
            try storage.append(rd.entries)
            for e in rd.committedEntries {
                switch e.type {
                case .confChange: try await node.applyConfChange(try ConfChange(serializedBytes: e.data))
                case .normal where !e.data.isEmpty: committed.append(e.data)
                default: break
                }
            }
            try await node.advance()
            // A node campaigns only once its bootstrap configuration is applied.
            if !campaigned {
                campaigned = true
                try await node.campaign()
            }
            let leading = await node.status.raftState == .leader
            if !proposed, leading {
                proposed = true
                for i in 0..<5 { try await node.propose([UInt8(i)]) }
            }
            if committed.count == 5 { break }
        }
        #expect(committed == (0..<5).map { [UInt8($0)] })
        #expect(await node.status.raftState == .leader)
        await node.stop()
        await #expect(throws: RaftError.stopped) { try await node.propose([9]) }
    }

    /// Three nodes, each driven by its own task, messages routed through an actor: the cluster
    /// elects a leader by ticking and commits a proposal made on a follower.
    @Test(.timeLimit(.minutes(1))) func threeNodesElectAndReplicateConcurrently() async throws {
        let ids: [UInt64] = [1, 2, 3]
        var nodes: [UInt64: Node] = [:]
        var storages: [UInt64: MemoryStorage] = [:]
        for id in ids {
            let storage = MemoryStorage()
            var config = Config(id: id, storage: storage)
            config.randomSeed = 42
            storages[id] = storage
            nodes[id] = try Node.start(config: config, peers: ids.map { Peer(id: $0) })
        }
        let router = Router(nodes: nodes)
        let applied = AppliedLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in ids {
                let node = nodes[id]!
                let storage = storages[id]!
                group.addTask {
                    do {
                        for await rd in node.readies {
                            if let hs = rd.hardState { try storage.setHardState(hs) }
                            try storage.append(rd.entries)
                            for m in rd.messages { await router.deliver(m) }
                            for e in rd.committedEntries {
                                if e.type == .confChange {
                                    try await node.applyConfChange(try ConfChange(serializedBytes: e.data))
                                } else if !e.data.isEmpty {
                                    await applied.record(id, e.data)
                                }
                            }
                            try await node.advance()
                        }
                    } catch RaftError.stopped {
                        // The test stops the nodes at the end, maybe between a Ready and its
                        // advance (seen on a loaded machine): that is this task's end too.
                    }
                }
            }
            // Tick until some node leads, then propose through a follower.
            var leader: UInt64 = 0
            for _ in 0..<500 where leader == 0 {
                for id in ids { try await nodes[id]!.tick() }
                await Task.yield()
                for id in ids where await nodes[id]!.status.raftState == .leader { leader = id }
            }
            #expect(leader != 0)
            let follower = ids.first { $0 != leader }!
            // The follower may not know the leader yet: retry until forwarded.
            while (try? await nodes[follower]!.propose(Array("hello".utf8))) == nil {
                try await nodes[follower]!.tick()
                await Task.yield()
            }
            while await applied.count(of: Array("hello".utf8)) < 3 {
                for id in ids { try await nodes[id]!.tick() }
                try await Task.sleep(for: .milliseconds(1))
            }
            for id in ids { await nodes[id]!.stop() }
            try await group.waitForAll()
        }
        #expect(await applied.count(of: Array("hello".utf8)) == 3)
    }
}

private actor Router {
    let nodes: [UInt64: Node]
    init(nodes: [UInt64: Node]) { self.nodes = nodes }
    func deliver(_ m: Message) async {
        try? await nodes[m.to]?.step(m)
    }
}

private actor AppliedLog {
    var entries: [UInt64: [[UInt8]]] = [:]
    func record(_ id: UInt64, _ data: [UInt8]) { entries[id, default: []].append(data) }
    func count(of data: [UInt8]) -> Int { entries.values.filter { $0.contains(data) }.count }
}
