import Logging
import Raft
import RaftNIO
import RaftWAL

/// The deterministic core of a `FlotillaNode`, the way swift-cluster-membership's
/// `SWIM.Instance` is the core of its shell: the raft node, the state machine, and everything
/// the runtime keeps about requests (proposals in flight, waiters, batching, read rounds,
/// membership and addresses). Its event methods change it and queue `NodeAction`s — send,
/// persist, snapshot, connect, answer — that the shell performs and reports back
/// (`persisted`, `snapshotTaken`). It does no I/O, reads no clock (the time is passed in) and
/// draws no randomness but its seed, so the same events give the same actions: the whole-node
/// simulator of RaftTestKit runs this very type over a simulated network, disk and clock.
///
/// Invariants it keeps (with raft's asynchronous writes, `Config.asyncStorageWrites`): the
/// shell writes Readies in the order they are queued; what a Ready's messages promise leaves
/// only once it is written; committed entries are applied only once durable here; proposals
/// gather while a write of entries is under way.
package struct NodeInstance<Machine: StateMachine> {
    package let nodeID: UInt64
    let settings: Settings
    package var machine: Machine
    package let raw: RawNode
    package let storage: DiskStorage
    let logger: Logger
    let metrics: FlotillaMetrics

    /// What the instance needs of `FlotillaConfiguration`.
    struct Settings: Sendable {
        var tickInterval: Duration
        var electionTicks: Int
        var snapshotInterval: UInt64
        var entriesKeptAfterCompaction: UInt64
        var requestTimeout: Duration

        init(_ configuration: FlotillaConfiguration) {
            tickInterval = configuration.tickInterval
            electionTicks = configuration.electionTicks
            snapshotInterval = configuration.snapshotInterval
            entriesKeptAfterCompaction = configuration.entriesKeptAfterCompaction
            requestTimeout = configuration.requestTimeout
        }
    }

    // What the loop has done.
    package var applied: UInt64
    package var committed: UInt64
    package var snapshotIndex: UInt64
    /// A snapshot is wanted after this Ready, whatever the interval: a member was added, and the
    /// snapshot it may be sent must include it.
    var snapshotRequested = false
    /// A snapshot is being written; no other starts until `snapshotTaken`.
    var snapshotUnderWay = false
    /// Readies handed to the storage and not yet reported written; those of them that carry
    /// entries or a snapshot.
    var writesInFlight = 0
    var entryWritesInFlight = 0
    /// Requests for raft, gathered until the next Ready.
    var batch = RequestBatch()
    /// The writes this node just proposed as leader, to find in the next Ready's entries.
    var justProposed: [UInt64] = []
    /// Where this node, as leader, appended the writes waiting here: index → request id. The
    /// entry applied at that index says whether the write survived a change of leader.
    var proposedAt: [UInt64: UInt64] = [:]
    /// Read-index rounds asked of raft, by round id (the read context).
    var readRounds: [UInt64: ReadRound] = [:]
    /// Peer messages raft refused for their values, for logging the first few and then one in a
    /// thousand (a flood of forgeries must not flood the log; the metric counts every one).
    var refusedMessages = 0
    package var confState: ConfState
    package var leader: UInt64 = 0
    package var role: StateType = .follower
    /// Where the members listen, as learned from the configuration, conf changes, snapshots
    /// and `updatePeer`.
    var addresses: [UInt64: TransportAddress]
    package var ids: RequestIDs

    // Requests waiting, by request id.
    var writes = Waiters()
    var readIndexes = Waiters()
    /// key: the index that must be applied.
    var appliedWaits = Waiters()
    /// key: the leader waited for (0: any).
    var leaderWaits = Waiters()
    var memberships = Waiters()

    /// What the shell must do, in order (`takeActions`).
    private(set) var actions: [NodeAction<Machine.Response>] = []

    /// Restores the state machine from the newest snapshot in `storage` and creates the raft
    /// node: bootstrapped with `configuration.peers` and this node when the storage is new and
    /// `bootstrap` is `.newCluster`, empty when joining, restarted from the log otherwise.
    /// `seed` seeds raft's election jitter and the request ids.
    ///
    /// - Throws: `FlotillaError.failed` if the storage belongs to another cluster or node, or
    ///   holds a snapshot that is not a Flotilla snapshot; what `restore` throws.
    package init(
        configuration: FlotillaConfiguration, storage: DiskStorage, stateMachine: consuming Machine,
        logger: Logger, metrics: FlotillaMetrics, seed: UInt64
    ) throws {
        let id = configuration.nodeID
        precondition(id != 0 && configuration.clusterID != 0, "node and cluster ids must be non-zero")
        let metadata = Self.storageMetadata(configuration)
        if !storage.isNew && storage.metadata != metadata {
            let found = StorageMetadata(decoding: storage.metadata).map { "\($0)" } ?? "metadata \(storage.metadata) that is not Flotilla's"
            let expected = StorageMetadata(clusterID: configuration.clusterID, nodeID: id)
            throw FlotillaError.failed(
                "the data directory \(storage.directory) belongs to \(found), not to \(expected): give this node a data directory of its own, or the cluster and node ids it was created with")
        }
        var machine = stateMachine
        var addresses = configuration.peers.filter { $0.key != id && $0.value.port != 0 }
        let snapshot = try storage.snapshot()
        if !snapshot.isEmpty {
            guard let envelope = SnapshotEnvelope(decoding: snapshot.data) else {
                throw FlotillaError.failed("snapshot \(snapshot.metadata.index) is not a Flotilla snapshot")
            }
            try machine.restore(from: envelope.state)
            for (peer, address) in envelope.addresses where peer != id && addresses[peer] == nil {
                addresses[peer] = address
            }
            metrics.snapshotsRestored.increment()
        }
        applied = snapshot.metadata.index
        snapshotIndex = snapshot.metadata.index
        committed = storage.hardState.commit
        confState = try storage.initialState().1

        var config = Config(
            id: id, electionTick: configuration.electionTicks, heartbeatTick: configuration.heartbeatTicks,
            storage: storage)
        config.applied = applied
        let options = configuration.raftOptions
        config.checkQuorum = options.checkQuorum
        config.preVote = options.preVote
        config.readOnlyOption = options.readOnlyOption
        config.maxSizePerMsg = options.maxSizePerMsg
        config.maxInflightMsgs = options.maxInflightMsgs
        config.maxUncommittedEntriesSize = options.maxUncommittedEntriesSize
        config.disableProposalForwarding = !options.forwardProposals
        config.stepDownOnRemoval = true
        // The order of persistence is raft's (`drive`): writes run beside the loop.
        config.asyncStorageWrites = true
        config.randomSeed = seed
        config.logger = logger
        let raw = try RawNode(config: config)
        if storage.isNew {
            switch configuration.bootstrap {
            case .newCluster:
                var members = configuration.peers
                members[id] = configuration.listenAddress
                let peers = members.keys.sorted().map { member in
                    let address = members[member].flatMap { $0.port == 0 ? nil : $0 }
                    return Peer(id: member, context: MemberContext(requestID: 0, address: address).encoded())
                }
                try raw.bootstrap(peers)
                logger.info("bootstrapping a new cluster", metadata: ["members": "\(members.keys.sorted())"])
            case .join:
                logger.info("starting empty, to join a running cluster")
            }
        } else {
            logger.info("restarting from the data directory", metadata: [
                "snapshot": "\(snapshot.metadata.index)", "commit": "\(storage.hardState.commit)", "directory": "\(storage.directory)",
            ])
        }
        nodeID = id
        settings = Settings(configuration)
        self.raw = raw
        self.storage = storage
        self.addresses = addresses
        self.machine = machine
        self.logger = logger
        self.metrics = metrics
        // Request ids must not repeat across restarts: a proposal's id travels in its entry.
        var mix = SplitMix64(seed: seed)
        ids = RequestIDs(start: mix.next())
    }

    /// The WAL metadata (`StorageMetadata`).
    package static func storageMetadata(_ configuration: FlotillaConfiguration) -> [UInt8] {
        StorageMetadata(clusterID: configuration.clusterID, nodeID: configuration.nodeID).encoded()
    }

    /// The actions queued since the last call, in order.
    package mutating func takeActions() -> [NodeAction<Machine.Response>] {
        defer { actions = [] }
        return actions
    }

    mutating func emit(_ action: NodeAction<Machine.Response>) {
        actions.append(action)
    }

    /// Sends `messages`, if any.
    mutating func send(_ messages: [Message]) {
        if !messages.isEmpty { actions.append(.send(messages)) }
    }

    mutating func complete(_ id: UInt64, _ outcome: RequestOutcome<Machine.Response>) {
        actions.append(.complete(id, outcome))
    }
}
