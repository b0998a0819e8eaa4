import Flotilla
import Logging
import Metrics
import Raft
import RaftNIO
import RaftWAL

/// One simulated member: its disk (which survives its crashes) and, while it is up, its
/// runtime instance and the queue of its disk.
final class SimulatedNode<Store: SimulatedKeyValueStore> {
    let id: UInt64
    let fileSystem = SimulatedFileSystem()
    /// How many snapshot files and WAL segments this node keeps: drawn per node, from 1 (the
    /// least a user may set, where nothing older is left to fall back on) to etcd's default 5.
    let retention: Int
    var instance: NodeInstance<LedgeredStore<Store>>?
    var storage: DiskStorage?
    var incarnation = 0
    /// Writes asked of the disk, in order; the first is under way when `diskBusy`.
    var diskQueue: [DiskJob] = []
    var diskBusy = false
    /// The client requests this life of the node owes an answer, by request id.
    var requests: [UInt64: PendingRequest] = [:]
    /// A spare starts only once the operator adds it (`joined`), empty, to join the cluster.
    let isSpare: Bool
    var joined = false
    /// Removed from the cluster and decommissioned: it never starts again (raft ids are never
    /// reused).
    var removed = false
    /// It has seen itself a member (in the configuration it applied).
    var wasMember = false

    /// Whether the node runs at all (when it is not down): a first member or a joined spare,
    /// not removed.
    var inService: Bool { !removed && (!isSpare || joined) }

    init(id: UInt64, retention: Int, isSpare: Bool) {
        self.id = id
        self.retention = retention
        self.isSpare = isSpare
    }
}

enum DiskJob {
    case persist(Ready)
    case snapshot(SnapshotJob)
}

/// A client request a node is working on.
enum PendingRequest {
    /// A put or delete: history entry `operation`.
    case write(operation: Int)
    /// A get waiting for its read index, then for the node to apply it.
    case readIndex(operation: Int)
    case readApplied(operation: Int)
    /// The operator's membership change.
    case membership(MembershipChange)
}

/// A membership change the operator asked of the leader.
struct MembershipChange: CustomStringConvertible {
    var type: ConfChangeType
    var member: UInt64

    var description: String {
        switch type {
        case .addLearnerNode: "add n\(member) as a learner"
        case .addNode: "make n\(member) a voter"
        case .removeNode: "remove n\(member)"
        case .updateNode: "update n\(member)"
        }
    }
}

extension NodeSimulator {
    // MARK: - Starting and stopping nodes

    func configuration(for id: UInt64) -> FlotillaConfiguration {
        // The first members bootstrap the cluster; a spare joins it, told where they are.
        let peers = Dictionary(uniqueKeysWithValues: (1...UInt64(options.nodeCount)).filter { $0 != id }.map {
            ($0, Self.address(of: $0))
        })
        return FlotillaConfiguration(
            nodeID: id, clusterID: Self.clusterID, peers: peers, listenAddress: Self.address(of: id),
            dataDirectory: Self.directory, bootstrap: nodes[id]!.isSpare ? .join : .newCluster, tickInterval: .nanoseconds(Int64(options.tickInterval)), electionTicks: 10,
            heartbeatTicks: 1, snapshotInterval: options.snapshotInterval, entriesKeptAfterCompaction: options.snapshotInterval / 2,
            requestTimeout: .seconds(2), raftOptions: RaftOptions(maxSizePerMsg: 4096), fileSystem: nodes[id]!.fileSystem)
    }

    static func address(of id: UInt64) -> TransportAddress { TransportAddress(host: "10.0.0.\(id)", port: 2380) }

    /// Starts node `id` from its disk (bootstrapping the cluster, or joining it, the first
    /// time), if it is in service and down.
    func boot(_ id: UInt64) {
        guard let node = nodes[id], node.inService, node.instance == nil else { return }
        let configuration = configuration(for: id)
        let logger = Logger(label: "flotilla.sim", factory: { _ in SwiftLogNoOpLogHandler() })
        do {
            let storage = try DiskStorage(
                directory: Self.directory, metadata: NodeInstance<Store>.storageMetadata(configuration),
                options: DiskStorageOptions(segmentSize: 8 * 1024, snapshotsToKeep: node.retention, segmentsToKeep: node.retention),
                fileSystem: node.fileSystem, logger: logger)
            node.incarnation += 1
            let instance = try NodeInstance(
                configuration: configuration, storage: storage, stateMachine: LedgeredStore(inner: Store(), ledger: ledger, node: id), logger: logger,
                metrics: FlotillaMetrics(nodeID: id, factory: NOOPMetricsHandler.instance),
                seed: seed &* 31 &+ id &* 1_000_003 &+ UInt64(node.incarnation))
            node.storage = storage
            node.instance = instance
            if node.incarnation > 1 { stats.restarts += 1 }
            record("n\(id) started (life \(node.incarnation)): applied \(instance.applied), commit \(instance.committed)")
        } catch {
            // A node that cannot start from what its disk kept: data lost, or a crash loop.
            fail("n\(id) cannot start from its disk: \(error)")
        }
    }

    /// Node `id` stops: what it was doing is lost, its disk stays as it is. `closing`: the way
    /// the shell stops a node after an error, closing (and so syncing) its storage; otherwise
    /// the process just dies and nothing more reaches the disk.
    func stop(_ id: UInt64, closing: Bool) {
        guard let node = nodes[id] else { return }
        for (requestID, request) in node.requests.sorted(by: { $0.key < $1.key }) { abandon(requestID, request) }
        node.requests = [:]
        node.instance = nil
        if closing { try? node.storage?.close() }
        node.storage = nil
        node.diskQueue = []
        node.diskBusy = false
    }

    /// Node `id` crashes: the process dies and its disk keeps what `mode` says of the writes
    /// not synced.
    func crash(_ id: UInt64, mode: SimulatedFileSystem.CrashMode) {
        guard let node = nodes[id] else { return }
        stop(id, closing: false)
        node.fileSystem.crash(mode)
        stats.crashes += 1
    }

    // MARK: - Performing what an instance asks

    func perform(_ actions: [NodeAction<Store.Response>], on node: SimulatedNode<Store>) {
        for action in actions {
            switch action {
            case .send(let messages):
                for message in messages { send(message) }
            case .persist(let ready):
                if options.plantedBugs.contains(.acknowledgeBeforeSync) {
                    // The planted bug: what the write promises leaves before the write is done.
                    for message in ready.messagesAfterPersist { send(message) }
                }
                node.diskQueue.append(.persist(ready))
                startDisk(node)
            case .snapshot(let job):
                node.diskQueue.append(.snapshot(job))
                startDisk(node)
            case .addPeer, .removePeer:
                break  // the simulated network reaches every id
            case .complete(let requestID, let outcome):
                answered(requestID, outcome, on: node)
            }
        }
    }

    /// Starts the disk on its next job: it takes a fraction of a millisecond, and now and
    /// then (a slow disk) tens of milliseconds.
    func startDisk(_ node: SimulatedNode<Store>) {
        guard !node.diskBusy, !node.diskQueue.isEmpty else { return }
        node.diskBusy = true
        let slow = options.faults.contains(.slowDisks) && faultsOn && rng.chance(0.02)
        let latency = slow ? 10_000_000 + rng.below(90_000_000) : 50_000 + rng.below(950_000)
        schedule(after: latency, .diskDone(node.id, incarnation: node.incarnation))
    }

    func completeDiskJob(_ node: SimulatedNode<Store>) {
        node.diskBusy = false
        guard !node.diskQueue.isEmpty, let storage = node.storage else { return }
        let job = node.diskQueue.removeFirst()
        if options.faults.contains(.fsyncErrors) && faultsOn && rng.chance(0.003) {
            node.fileSystem.failNext(.fdatasync)
            record("n\(node.id): the next fdatasync fails")
        }
        switch job {
        case .persist(let ready):
            onNode(node.id) { instance, _ in
                try storage.save(ready)
                instance.persisted(PersistedReady(ready))
            }
            if let snapshot = ready.snapshot, !snapshot.isEmpty, strikesAfterSnapshotInstall(node) {
                // A moment of interest, not left to chance: the node has installed a leader's
                // snapshot and sent what that promises; power fails before its next write. A
                // HardState written unsynced is lost now, and older snapshots and segments purged
                // before it was synced stay purged (etcd #10219: the node acknowledged the
                // snapshot and cannot restart from it).
                record("power loss of n\(node.id) right after it installed the snapshot at \(snapshot.metadata.index) (dropUnsyncedData; it keeps \(node.retention) snapshots)")
                crash(node.id, mode: .dropUnsyncedData)
                schedule(after: 50_000_000 + rng.below(500_000_000), .restart(node.id))
                return
            }
        case .snapshot(let snapshotJob):
            onNode(node.id) { instance, _ in
                let result = Result<UInt64, any Error> {
                    guard let file = try snapshotJob.writeFile(to: storage) else { return 0 }
                    return try snapshotJob.record(file, in: storage)
                }
                if case .success(let index) = result, index > 0 { self.stats.snapshots += 1 }
                try instance.snapshotTaken(result)
            }
        }
        if let again = nodes[node.id], again === node, node.instance != nil { startDisk(node) }
    }

    /// Whether node `node` loses power right after installing a snapshot: often, while the
    /// faults are on and crashes are enabled.
    func strikesAfterSnapshotInstall(_ node: SimulatedNode<Store>) -> Bool {
        guard faultsOn, options.faults.contains(.crashes), node.instance != nil else { return false }
        return rng.chance(0.5)
    }

    // MARK: - The network

    /// Sends `message` through the simulated network: lost to a partition or a cut, dropped,
    /// delayed (so reordered), duplicated.
    func send(_ message: Message) {
        stats.sent += 1
        if faultsOn {
            if let a = side[message.from], let b = side[message.to], a != b { return }
            if cuts.contains([message.from, message.to]) { return }
            if options.faults.contains(.drops) && rng.chance(0.03) {
                stats.dropped += 1
                return
            }
        }
        schedule(after: networkDelay(), .deliver(message))
        // A forwarded proposal is not duplicated: raft appends each copy, and the state machine
        // applies the write twice (at-least-once; the same happens to a client that retries).
        // Peers talk over TCP, which does not duplicate; exactly-once writes need client
        // sessions in the state machine.
        if faultsOn && options.faults.contains(.duplicates) && message.type != .proposal && rng.chance(0.02) {
            stats.duplicated += 1
            schedule(after: networkDelay(), .deliver(message))
        }
    }

    func networkDelay() -> UInt64 {
        guard faultsOn, options.faults.contains(.delays) else { return 200_000 }
        return rng.chance(0.05) ? 5_000_000 + rng.below(45_000_000) : 100_000 + rng.below(1_900_000)
    }
}
