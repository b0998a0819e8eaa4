import Raft

/// The cluster of the etcd anchor (`/work/shared/etcd-anchors/rawnode_bench_go/main.go`): `size`
/// voters in one process, each a `RawNode` over a `MemoryStorage`, messages delivered in memory.
/// Node `id` lives at index `id - 1`. Shared by the package-benchmark suite (`RaftBenchmarks`)
/// and the plain executable run beside the Go anchor (`RawNodeBench`).
///
/// The loops mirror the Go code step for step so the figures can be put side by side. One
/// deliberate difference: the Go harness allocates a fresh message slice per delivery round
/// (`c.inflight = nil`); this one swaps two buffers that keep their capacity, so what the malloc
/// counter sees here is the library's own allocations, not the harness's. A struct, not a
/// class: a class's array properties pay a runtime exclusivity check on every access, a cost
/// Go's harness does not have and that is not the library's.
public struct Cluster {
    public private(set) var nodes: [RawNode] = []
    public let stores: [MemoryStorage]
    /// Index of the last committed entry each node has seen in a Ready.
    public private(set) var applied: [UInt64]
    /// The messages of each Ready, in order: queued as the Ready's arrays (the Go harness
    /// appends the messages to one slice; in Swift that would copy each one, retaining its
    /// arrays, which is the harness's cost, not the library's).
    private var inflight: [[Message]] = []
    private var delivering: [[Message]] = []

    public init(size: Int) throws {
        let peers = (1...UInt64(size)).map { $0 }
        var stores: [MemoryStorage] = []
        for id in peers {
            // Bootstrap exactly as the Go code does: a snapshot at index 1, term 1, holding the
            // configuration, then a node that has never voted.
            let storage = MemoryStorage()
            try storage.applySnapshot(
                Snapshot(metadata: SnapshotMetadata(confState: ConfState(voters: peers), index: 1, term: 1))
            )
            var config = Config(id: id, electionTick: 10, heartbeatTick: 1, storage: storage)
            config.maxSizePerMsg = 1 << 20
            config.maxInflightMsgs = 256
            config.maxUncommittedEntriesSize = 0
            nodes.append(try RawNode(config: config))
            stores.append(storage)
        }
        self.stores = stores
        self.applied = Array(repeating: 0, count: size)
        inflight.reserveCapacity(64)
        delivering.reserveCapacity(64)

        try nodes[0].campaign()
        try pump()
        guard nodes[0].status.raftState == .leader else {
            fatalError("node 1 is not leader after campaigning: \(nodes[0].status.raftState)")
        }
    }

    /// Proposes `data` on node 1, the leader.
    @inlinable
    public func propose(_ data: [UInt8]) throws {
        try nodes[0].propose(data)
    }

    /// Processes Ready on every node and delivers messages until the cluster is quiet.
    public mutating func pump() throws {
        while true {
            var progress = false
            for i in nodes.indices {
                // One read of the node, as the Go loop's `rn := c.nodes[id]`.
                let node = nodes[i]
                while node.hasReady {
                    progress = true
                    let rd = node.ready()
                    if let hardState = rd.hardState {
                        try stores[i].setHardState(hardState)
                    }
                    try stores[i].append(rd.entries)
                    if !rd.messages.isEmpty { inflight.append(rd.messages) }
                    if let last = rd.committedEntries.last {
                        applied[i] = last.index
                    }
                    node.advance(rd)
                }
            }
            if !inflight.isEmpty {
                progress = true
                swap(&inflight, &delivering)
                for batch in delivering {
                    for message in batch {
                        try nodes[Int(message.to) - 1].step(message)
                    }
                }
                delivering.removeAll(keepingCapacity: true)
            }
            if !progress {
                return
            }
        }
    }

    /// Traps unless every node has applied exactly up to `index`: the benchmark committed what
    /// it claims to have committed.
    public func expectApplied(_ index: UInt64) {
        for (i, seen) in applied.enumerated() where seen != index {
            fatalError("node \(i + 1) applied up to \(seen), expected \(index) (applied: \(applied))")
        }
    }
}
