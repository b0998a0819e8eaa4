import Logging
import Metrics
import NIOCore
import NIOPosix
import Raft
import RaftNIO
import RaftWAL
import Synchronization

/// One member of a replicated state machine: the `Flotilla` runtime (Docs/DESIGN.md).
///
/// A node is a thin shell around a `NodeInstance` — the deterministic part: the raft node, your
/// `StateMachine`, and the bookkeeping of requests — that performs what the instance decides:
/// it owns the `DiskStorage` (the WAL and snapshots of `configuration.dataDirectory`), a
/// `RaftTransport` to the other members, a ticker, the threads that write to disk, and the
/// requests' continuations. One serial loop on this actor feeds the instance each tick,
/// received message, transport event and report of the disk, then performs the actions it
/// queued: messages to send, Readies to write, snapshots to take, answers to give.
///
/// Raft runs with asynchronous storage writes: every WAL write of leader and follower happens
/// on a thread of the node's own, in order, while the loop goes on stepping messages and
/// gathering requests; the leader sends its appends before its own write (thesis §10.2.1), a
/// follower's acknowledgements leave once its write is durable, and committed entries are
/// applied once durable here. Proposals gathered while a write of entries is under way go to
/// raft together when it is done, one fdatasync for all of them. Every
/// `configuration.snapshotInterval` applied entries the state machine is captured in the loop
/// and encoded and written on another thread, then the log compacted.
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

    /// Everything the node decides.
    var instance: NodeInstance<Machine>
    let storage: DiskStorage
    let transport: any PeerTransport
    /// `configuration.clock`: the ticks and every deadline go by it.
    nonisolated var clock: any NodeClock { configuration.clock }
    /// WAL saves and snapshot writes, in order, off the actor.
    let disk: BlockingWorkThread
    /// Snapshot encoding, so that a big one does not hold up the WAL.
    let snapshotThread: BlockingWorkThread
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
    var wakeQueued = false
    /// The port this node's transport listens on: `configuration.listenAddress.port` until
    /// `start()` knows the one it bound (port 0 picks one).
    var listenPort: Int
    /// Who waits for each request the instance will answer, by request id.
    var parked: [UInt64: Parked<Machine.Response>] = [:]
    /// Writes submitted with a completion handler, from any thread (`apply(_:completion:)`).
    nonisolated let submissions = Mutex(SubmissionInbox<Machine.Response>())

    /// Opens (or creates) the data directory, restores the state machine from the newest
    /// snapshot, and creates the raft node: bootstrapped with `peers` and this node when the
    /// directory is new and `bootstrap` is `.newCluster`, empty when joining, restarted from
    /// the log otherwise. Nothing runs until `start()` (or `run()`).
    ///
    /// - Parameters:
    ///   - configuration: the node's ids, members, data directory and options.
    ///   - stateMachine: the state to replicate, as it is before any entry is applied (a
    ///     snapshot in the data directory replaces it).
    ///   - logger: where the node logs; it adds the metadata `flotilla.node`.
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
        let metrics = FlotillaMetrics(nodeID: id, factory: metricsFactory ?? MetricsSystem.factory)
        self.metrics = metrics
        let storage = try DiskStorage(
            directory: configuration.dataDirectory, metadata: NodeInstance<Machine>.storageMetadata(configuration),
            fileSystem: configuration.fileSystem, logger: logger)
        var rng = SystemRandomNumberGenerator()
        instance = try NodeInstance(
            configuration: configuration, storage: storage, stateMachine: stateMachine, logger: logger, metrics: metrics,
            seed: rng.next())
        self.storage = storage
        self.listenPort = configuration.listenAddress.port
        disk = BlockingWorkThread(name: "flotilla-disk")
        // Encoding a big snapshot takes tens of milliseconds of CPU: let requests go first.
        snapshotThread = BlockingWorkThread(name: "flotilla-snap", niceness: 10)
        let (stream, inputs) = AsyncStream.makeStream(of: LoopInput.self)
        self.inputs = inputs
        inputStream = stream
        let delivery = TransportDelivery(
            message: { inputs.yield(.message($0)) }, event: { inputs.yield(.transport($0)) },
            refused: { [metrics] in metrics.refusedByTransport[$0.reason]?.increment() })
        transport = configuration.transport?(delivery) ?? RaftTransport(
            configuration: RaftTransportConfiguration(
                clusterID: configuration.clusterID, localID: id, listenAddress: configuration.listenAddress,
                maxFrameSize: configuration.maxFrameSize, tls: configuration.peerTLS),
            eventLoopGroup: eventLoopGroup, logger: logger, delivery: delivery)
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
        for (peer, address) in instance.addresses { transport.addPeer(id: peer, address: address) }
        disk.start()
        snapshotThread.start()
        guard let stream = inputStream else { preconditionFailure("start() runs once") }
        inputStream = nil
        let interval = configuration.tickInterval
        let inputs = inputs
        let clock = clock
        helperTasks = [
            Task {
                // Ticks on a grid from the start: a late wake-up does not push the next ones.
                var next = clock.now + interval
                while !Task.isCancelled {
                    do { try await clock.sleep(until: next) } catch { return }
                    next = max(next + interval, clock.now)
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
        logger.info("flotilla node stopped", metadata: ["applied": "\(instance.applied)"])
    }

    /// Returns once the node has stopped (after `shutdown()`, or a fatal error).
    public func waitUntilStopped() async {
        if case .stopped = lifecycle { return }
        await withCheckedContinuation { stopWaiters.append($0) }
    }

    func failAllWaiters(_ error: FlotillaError) {
        closeSubmissions(error)
        instance.failAll(error)
        perform(instance.takeActions())
    }

    /// Tells the node where a peer listens now (the transport reconnects there). The address
    /// is also recorded in the next snapshot.
    public func updatePeer(id: UInt64, address: TransportAddress) {
        guard id != nodeID else { return }
        instance.updatePeer(id: id, address: address)
        if case .running = lifecycle { transport.updatePeer(id: id, address: address) }
    }

    // MARK: Status

    /// What this node knows now.
    public var status: FlotillaStatus {
        let raft = instance.raw.status
        return FlotillaStatus(
            nodeID: nodeID, leaderID: raft.lead, role: raft.raftState, term: raft.hardState.term,
            commitIndex: raft.hardState.commit, appliedIndex: instance.applied, snapshotIndex: instance.snapshotIndex,
            voters: instance.confState.voters.sorted(), learners: instance.confState.learners.sorted(),
            writesInFlight: instance.writesInFlight, isRunning: { if case .running = lifecycle { return true } else { return false } }())
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
            return instance.addresses[id]
        }
        return instance.confState.voters.sorted().map { FlotillaMember(id: $0, address: address($0), isLearner: false) }
            + instance.confState.learners.sorted().map { FlotillaMember(id: $0, address: address($0), isLearner: true) }
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
    /// Readies handed to the disk thread and not yet reported written (what this node has
    /// promised nobody yet: its acknowledgements and votes wait for them).
    public var writesInFlight: Int
    public var isRunning: Bool
}
