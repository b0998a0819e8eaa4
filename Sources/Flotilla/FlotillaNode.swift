import Logging
import Metrics
import NIOCore
import NIOPosix
import Raft
import RaftNIO
import RaftWAL
import Synchronization

/// One member of a replicated state machine: the `Flotilla` runtime (DESIGN.md).
///
/// A node owns a `RawNode`, its `DiskStorage` (the WAL and snapshots of
/// `configuration.dataDirectory`), a `RaftTransport` to the other members, a ticker, and your
/// `StateMachine`. One serial loop on this actor drives them: each tick, received message and
/// transport event is given to raft, then each `Ready` is handled in etcd's order — the leader
/// sends its messages first and writes its WAL while they travel (thesis §10.2.1), a follower
/// writes first and then acknowledges; snapshots are restored, committed entries applied and
/// the requests waiting for them resumed; then `advance`.
///
/// A leader's WAL is written on a thread of the node's own (`fdatasync` blocks): while a Ready
/// is being saved the loop goes on stepping messages and gathering requests, which go to raft
/// as one proposal (and one read-index round) when the save is done, and to the disk in the
/// next save. A follower, which has nothing to gather while it saves (its next append waits
/// for this one's acknowledgement), and any Ready that needs no fdatasync, save in the loop.
/// Committed entries that an earlier save made durable are applied at once, before the next
/// save. Every `configuration.snapshotInterval` applied entries the state machine is captured
/// in the loop and encoded and written on another thread, then the log compacted.
///
/// ```swift
/// let node = try FlotillaNode(configuration: config, stateMachine: Counter(), logger: logger)
/// try await node.start()                    // or run it in a ServiceGroup: it is a Service
/// let value = try await node.apply([1])     // returns once applied on this node
/// let now = try await node.read { $0.value } // linearizable
/// await node.shutdown()
/// ```
///
/// Requests work on every member: followers forward proposals and read-index requests to the
/// leader. They fail with a `FlotillaError`.
public actor FlotillaNode<Machine: StateMachine> {
    public nonisolated let configuration: FlotillaConfiguration
    public nonisolated var nodeID: UInt64 { configuration.nodeID }

    enum Lifecycle { case idle, starting, running, stopping, stopped }

    var machine: Machine
    let raw: RawNode
    let storage: DiskStorage
    let transport: RaftTransport
    /// WAL saves and snapshot writes, in order, off the actor.
    let disk: SerialThread
    /// Snapshot encoding, so that a big one does not hold up the WAL.
    let snapshotThread: SerialThread
    let logger: Logger
    let metrics: FlotillaMetrics

    var lifecycle: Lifecycle = .idle
    var failure: String?
    /// The Ready loop's queue: ticks, requests' wakes, the disk thread's reports, and (straight
    /// from the transport's event loops) messages and transport events.
    let inputs: AsyncStream<LoopInput>.Continuation
    private var inputStream: AsyncStream<LoopInput>?
    var helperTasks: [Task<Void, Never>] = []
    var loopTask: Task<Void, Never>?
    var stopWaiters: [CheckedContinuation<Void, Never>] = []

    // What the Ready loop has done.
    var applied: UInt64
    var committed: UInt64
    var snapshotIndex: UInt64
    /// Snapshot after this Ready, whatever the interval (a member was added).
    var snapshotSoon = false
    var snapshotUnderWay = false
    /// Readies handed to the disk thread and not yet reported written; those of them that
    /// carry entries or a snapshot (proposals gather while one is under way).
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
    var wakeQueued = false
    /// Peer messages raft refused for their values, for logging the first few and then one in a
    /// thousand (a flood of forgeries must not flood the log; the metric counts every one).
    var refusedMessages = 0
    var confState: ConfState
    var leader: UInt64 = 0
    var role: StateType = .follower
    /// Where the members listen, as learned from the configuration, conf changes, snapshots
    /// and `updatePeer`.
    var addresses: [UInt64: TransportAddress]
    /// The port this node's transport listens on: `configuration.listenAddress.port` until
    /// `start()` knows the one it bound (port 0 picks one).
    var listenPort: Int
    var ids = RequestIDs()

    // Requests waiting for the loop, by request id.
    var writes = Waiters<Machine.Response>()
    var readIndexes = Waiters<UInt64>()
    /// key: the index that must be applied.
    var appliedWaits = Waiters<Void>()
    /// key: the leader waited for (0: any).
    var leaderWaits = Waiters<UInt64>()
    var memberships = Waiters<Void>()
    /// Writes submitted with a completion handler, from any thread (`apply(_:completion:)`).
    nonisolated let submissions = Mutex(SubmissionInbox<Machine.Response>())

    /// Opens (or creates) the data directory, restores the state machine from the newest
    /// snapshot, and creates the raft node: bootstrapped with `peers` and this node when the
    /// directory is new and `bootstrap` is `.newCluster`, empty when joining, restarted from
    /// the log otherwise. Nothing runs until `start()` (or `run()`).
    ///
    /// - Parameters:
    ///   - metricsFactory: where the metrics go (see `FlotillaMetrics`); nil uses
    ///     `MetricsSystem.factory`, the process-wide bootstrap.
    ///   - eventLoopGroup: the transport's; the NIO singleton by default.
    /// - Throws: `FlotillaError.failed` if the directory belongs to another cluster or node, and
    ///   the storage's errors (a corrupt WAL, …), or what `stateMachine.restore` throws.
    public init(
        configuration: FlotillaConfiguration,
        stateMachine: sending Machine,
        logger: Logger,
        metricsFactory: (any MetricsFactory)? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        let id = configuration.nodeID
        precondition(id != 0 && configuration.clusterID != 0, "node and cluster ids must be non-zero")
        var logger = logger
        logger[metadataKey: "flotilla.node"] = "\(id)"
        self.configuration = configuration
        self.logger = logger
        metrics = FlotillaMetrics(nodeID: id, factory: metricsFactory ?? MetricsSystem.factory)

        let metadata = Self.storageMetadata(configuration)
        let storage = try DiskStorage(directory: configuration.dataDirectory, metadata: metadata, logger: logger)
        if !storage.isNew && storage.metadata != metadata {
            throw FlotillaError.failed(
                "the data directory \(configuration.dataDirectory) belongs to another cluster or node (WAL metadata \(storage.metadata), expected \(metadata))")
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
        // The order of persistence is raft's (ReadyLoop.driveReady): writes run on the disk
        // thread while the loop goes on.
        config.asyncStorageWrites = true
        var rng = SystemRandomNumberGenerator()
        config.randomSeed = rng.next()
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
                "snapshot": "\(snapshot.metadata.index)", "commit": "\(storage.hardState.commit)", "directory": "\(configuration.dataDirectory)",
            ])
        }
        self.raw = raw
        self.storage = storage
        self.addresses = addresses
        self.listenPort = configuration.listenAddress.port
        self.machine = machine
        disk = SerialThread(name: "flotilla-disk")
        // Encoding a big snapshot takes tens of milliseconds of CPU: let requests go first.
        snapshotThread = SerialThread(name: "flotilla-snap", niceness: 10)
        let (stream, inputs) = AsyncStream.makeStream(of: LoopInput.self)
        self.inputs = inputs
        inputStream = stream
        transport = RaftTransport(
            configuration: RaftTransportConfiguration(
                clusterID: configuration.clusterID, localID: id, listenAddress: configuration.listenAddress,
                maxFrameSize: configuration.maxFrameSize, tls: configuration.peerTLS),
            eventLoopGroup: eventLoopGroup, logger: logger,
            delivery: TransportDelivery(
                message: { inputs.yield(.message($0)) }, event: { inputs.yield(.transport($0)) },
                refused: { [metrics] in metrics.refusedByTransport[$0.reason]?.increment() }))
    }

    /// The WAL metadata: `[1][cluster id: 8][node id: 8]`.
    static func storageMetadata(_ configuration: FlotillaConfiguration) -> [UInt8] {
        var out = ByteWriter(capacity: 17)
        out.byte(1)
        out.u64(configuration.clusterID)
        out.u64(configuration.nodeID)
        return out.buffer
    }

    // MARK: Starting and stopping

    /// Starts the transport (returning the port it listens on: useful with port 0), the ticker
    /// and the Ready loop. Requests are served from now on.
    @discardableResult
    public func start() async throws -> Int {
        guard case .idle = lifecycle else {
            throw FlotillaError.failed("start() called twice, or after shutdown()")
        }
        lifecycle = .starting
        let port: Int
        do {
            port = try await transport.start()
        } catch {
            lifecycle = .idle
            throw error
        }
        listenPort = port
        guard case .starting = lifecycle else {  // shut down while starting
            await transport.shutdown()
            throw FlotillaError.stopped
        }
        for (peer, address) in addresses { transport.addPeer(id: peer, address: address) }
        disk.start()
        snapshotThread.start()
        guard let stream = inputStream else { preconditionFailure("start() runs once") }
        inputStream = nil
        let interval = configuration.tickInterval
        let inputs = inputs
        helperTasks = [
            Task {
                while !Task.isCancelled {
                    do { try await Task.sleep(for: interval) } catch { return }
                    inputs.yield(.tick)
                }
            }
        ]
        loopTask = Task { await self.loop(stream) }
        lifecycle = .running
        openSubmissions()
        inputs.yield(.wake)
        logger.info("flotilla node started", metadata: ["port": "\(port)"])
        return port
    }

    /// Stops taking requests, lets the loop finish the Ready in hand, fails the waiting
    /// requests with `.stopped`, shuts the transport down and closes the WAL. Idempotent;
    /// returns once everything is closed.
    public func shutdown() async {
        switch lifecycle {
        case .stopped:
            return
        case .stopping:
            await withCheckedContinuation { stopWaiters.append($0) }
            return
        case .idle, .starting, .running:
            break
        }
        lifecycle = .stopping
        inputs.finish()
        for task in helperTasks { task.cancel() }
        await loopTask?.value
        failAllWaiters(failure.map { .failed($0) } ?? .stopped)
        await transport.shutdown()
        // A save or snapshot write under way finishes, queued ones are dropped (as in a crash,
        // nothing was acknowledged on them); then the WAL closes.
        await snapshotThread.shutdown()
        await disk.shutdown()
        do {
            try storage.close()
        } catch {
            logger.warning("closing the WAL failed", metadata: ["error": "\(error)"])
        }
        lifecycle = .stopped
        for waiter in stopWaiters { waiter.resume() }
        stopWaiters.removeAll()
        logger.info("flotilla node stopped", metadata: ["applied": "\(applied)"])
    }

    /// Returns once the node has stopped (after `shutdown()`, or a fatal error).
    public func waitUntilStopped() async {
        if case .stopped = lifecycle { return }
        await withCheckedContinuation { stopWaiters.append($0) }
    }

    func failAllWaiters(_ error: FlotillaError) {
        closeSubmissions(error)
        writes.failAll(error)
        readIndexes.failAll(error)
        appliedWaits.failAll(error)
        leaderWaits.failAll(error)
        memberships.failAll(error)
    }

    /// Tells the node where a peer listens now (the transport reconnects there). The address
    /// is also recorded in the next snapshot.
    public func updatePeer(id: UInt64, address: TransportAddress) {
        guard id != nodeID else { return }
        addresses[id] = address
        if case .running = lifecycle { transport.updatePeer(id: id, address: address) }
    }

    // MARK: Status

    /// What this node knows now.
    public var status: FlotillaStatus {
        let raft = raw.status
        return FlotillaStatus(
            nodeID: nodeID, leaderID: raft.lead, role: raft.raftState, term: raft.hardState.term,
            commitIndex: raft.hardState.commit, appliedIndex: applied, snapshotIndex: snapshotIndex,
            voters: confState.voters.sorted(), learners: confState.learners.sorted(),
            isRunning: { if case .running = lifecycle { return true } else { return false } }())
    }
}

extension FlotillaNode {
    /// The members of the configuration this node has applied — voters, then learners, each by
    /// ascending id — with where each listens, as this node knows it (from the configuration,
    /// conf changes, snapshots and `updatePeer`). This node's own address is its
    /// `listenAddress`, with the port it bound.
    public var members: [FlotillaMember] {
        func address(_ id: UInt64) -> TransportAddress? {
            if id == nodeID { return TransportAddress(host: configuration.listenAddress.host, port: listenPort) }
            return addresses[id]
        }
        return confState.voters.sorted().map { FlotillaMember(id: $0, address: address($0), isLearner: false) }
            + confState.learners.sorted().map { FlotillaMember(id: $0, address: address($0), isLearner: true) }
    }
}

/// A member of the cluster, as a node knows it (`FlotillaNode.members`).
public struct FlotillaMember: Sendable, Hashable {
    public var id: UInt64
    /// Where its transport listens; nil when this node has not learned it (a peer configured
    /// with port 0 and not yet told with `updatePeer`).
    public var address: TransportAddress?
    /// A learner receives the log but does not vote.
    public var isLearner: Bool

    public init(id: UInt64, address: TransportAddress?, isLearner: Bool) {
        self.id = id
        self.address = address
        self.isLearner = isLearner
    }
}

/// A snapshot of what a `FlotillaNode` knows (`FlotillaNode.status`).
public struct FlotillaStatus: Sendable, Hashable {
    public var nodeID: UInt64
    /// The leader this node knows of (0: none).
    public var leaderID: UInt64
    public var role: StateType
    public var term: UInt64
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    /// The index of the newest snapshot (taken or restored).
    public var snapshotIndex: UInt64
    public var voters: [UInt64]
    public var learners: [UInt64]
    public var isRunning: Bool
}
