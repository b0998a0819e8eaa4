import Logging
import Raft
import ServiceLifecycle

/// A one-node raft cluster holding a `KeyValueStore`, in memory: the first working `flotilla`.
///
/// It owns a `Raft.Node` bootstrapped with itself as the only voter and a `MemoryStorage`, and
/// runs, as a ServiceLifecycle `Service`, the two loops every raft application has:
///
/// - a ticker: `tick()` every `tickInterval` (100 ms), which also fails requests past their
///   deadline;
/// - the Ready loop, in etcd's order: persist the HardState and entries (to `MemoryStorage`
///   here; to the WAL once it lands), send messages (a one-node cluster has none), apply the
///   committed entries to the store and wake the requests waiting for them, apply conf changes,
///   serve ReadStates, snapshot and compact every `snapshotCount` entries, `advance()`.
///
/// Writes return once their entry is applied; reads are linearizable through ReadIndex. What it
/// is not, yet: durable (everything is lost when the process exits) or replicated to other
/// machines. Those arrive with the WAL, the transport and the `Flotilla` runtime, behind the
/// same `KeyValueReplica` protocol.
public actor SingleNodeReplica: KeyValueReplica, Service {
    public struct Configuration: Sendable {
        /// This node's raft id (never 0).
        public var id: UInt64
        /// How often raft's logical clock ticks.
        public var tickInterval: Duration
        /// Ticks without a leader before a follower campaigns (raft's `electionTick`).
        public var electionTick: Int
        /// Ticks between leader heartbeats.
        public var heartbeatTick: Int
        /// How long a request may take, from arrival to applied (writes) or served (reads).
        public var requestTimeout: Duration
        /// How long a request waits for a leader to be elected before failing with `noLeader`
        /// (never longer than `requestTimeout`).
        public var leaderWait: Duration
        /// Applied entries between snapshots of the store; the log before a snapshot (less
        /// `snapshotCatchUpEntries`) is then discarded. 0 turns snapshots off.
        public var snapshotCount: UInt64
        /// Entries kept behind a snapshot so that slow followers can catch up from the log.
        public var snapshotCatchUpEntries: UInt64

        public init(
            id: UInt64 = 1, tickInterval: Duration = .milliseconds(100), electionTick: Int = 10,
            heartbeatTick: Int = 1, requestTimeout: Duration = .seconds(5), leaderWait: Duration = .seconds(3),
            snapshotCount: UInt64 = 10_000, snapshotCatchUpEntries: UInt64 = 5_000
        ) {
            self.id = id
            self.tickInterval = tickInterval
            self.electionTick = electionTick
            self.heartbeatTick = heartbeatTick
            self.requestTimeout = requestTimeout
            self.leaderWait = leaderWait
            self.snapshotCount = snapshotCount
            self.snapshotCatchUpEntries = snapshotCatchUpEntries
        }
    }

    public let configuration: Configuration
    private let node: Node
    private let storage: MemoryStorage
    private let logger: Logger

    private var store = KeyValueStore()
    private var applied: UInt64 = 0
    private var confState = ConfState()
    private var lead: UInt64 = 0
    private var snapshotIndex: UInt64 = 0
    private var campaigned = false
    private var running = false
    private var stopped = false
    private var failure: String?
    private var ids = RequestIDGenerator()

    /// Writes waiting for their entry to be applied, by request id.
    private var writes = WaiterTable<KeyValueStore.Outcome>()
    /// Reads waiting for their ReadState, by request id (the ReadIndex context).
    private var readIndexes = WaiterTable<UInt64>()
    /// Reads waiting for the applied index to reach their read index.
    private var catchUps = WaiterTable<Void>()
    private var catchUpIndexes: [(index: UInt64, id: UInt64)] = []
    /// Requests waiting for a leader.
    private var leaderWaits = WaiterTable<Void>()

    /// Creates the node, bootstrapped as the only voter of a new cluster. Nothing happens until
    /// `run()`: run it in a `ServiceGroup` (or a task) for as long as the replica serves.
    public init(configuration: Configuration = Configuration(), logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let storage = MemoryStorage()
        self.storage = storage
        var config = Config(
            id: configuration.id, electionTick: configuration.electionTick,
            heartbeatTick: configuration.heartbeatTick, storage: storage)
        config.logger = logger
        var rng = SystemRandomNumberGenerator()
        config.randomSeed = rng.next()
        self.node = try Node.start(config: config, peers: [Peer(id: configuration.id)])
    }

    // MARK: Running

    /// Runs the ticker and the Ready loop until graceful shutdown, cancellation or `stop()`.
    /// Throws if the Ready loop fails (the store would no longer follow the log).
    public func run() async throws {
        guard !running, !stopped else {
            throw ReplicaError.failed("SingleNodeReplica.run() called twice, or after stop()")
        }
        running = true
        logger.info(
            "one-node raft replica starting (in memory)",
            metadata: ["raft.id": "\(configuration.id)", "tick": "\(configuration.tickInterval)"])
        let node = self.node
        do {
            try await withTaskCancellationOrGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await self.tickLoop() }
                    defer { group.cancelAll() }
                    for await ready in node.readies {
                        try await self.handle(ready)
                    }
                }
            } onCancelOrGracefulShutdown: {
                Task { await node.stop() }
            }
        } catch {
            let reason = "\(error)"
            logger.critical("the Ready loop failed; stopping the replica", metadata: ["error": "\(reason)"])
            failure = reason
            await node.stop()
            finish(with: .failed(reason))
            throw error
        }
        finish(with: .stopped)
        logger.info("one-node raft replica stopped", metadata: ["raft.id": "\(configuration.id)", "applied": "\(applied)"])
    }

    /// Stops the replica: the loops end and every waiting request fails with `stopped`.
    public func stop() async {
        await node.stop()
        finish(with: .stopped)
    }

    private func finish(with error: ReplicaError) {
        stopped = true
        writes.resolveAll(.failure(error))
        readIndexes.resolveAll(.failure(error))
        catchUps.resolveAll(.failure(error))
        catchUpIndexes.removeAll()
        leaderWaits.resolveAll(.failure(error))
    }

    private func tickLoop() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.tickInterval)
                try await node.tick()
            } catch {
                return  // cancelled, or the node stopped
            }
            expireWaiters()
        }
    }

    /// Fails the requests past their deadline (the ticker calls it every tick).
    func expireWaiters() {
        let now = ContinuousClock.now
        writes.expire(now: now)
        readIndexes.expire(now: now)
        catchUps.expire(now: now)
        catchUpIndexes.removeAll { !catchUps.contains($0.id) }
        leaderWaits.expire(now: now)
    }

    // MARK: The Ready loop

    private func handle(_ ready: Ready) async throws {
        if let soft = ready.softState { observe(soft) }

        // 1. Persist. MemoryStorage now; the WAL (with an fsync when `mustSync`) later.
        if let snapshot = ready.snapshot, !snapshot.isEmpty { try storage.applySnapshot(snapshot) }
        if let hardState = ready.hardState { try storage.setHardState(hardState) }
        try storage.append(ready.entries)

        // 2. Send. A one-node cluster has nobody to talk to.
        if !ready.messages.isEmpty {
            logger.debug("dropping messages: this is a one-node cluster", metadata: ["count": "\(ready.messages.count)"])
        }

        // 3. Apply.
        if let snapshot = ready.snapshot, !snapshot.isEmpty {
            try store.restore(from: snapshot.data)
            applied = snapshot.metadata.index
            snapshotIndex = snapshot.metadata.index
            confState = snapshot.metadata.confState
        }
        for entry in ready.committedEntries {
            try await apply(entry)
        }

        // 4. Reads: a ReadState says "serve this read once applied ≥ index".
        for readState in ready.readStates {
            guard let id = Self.requestID(fromContext: readState.requestContext) else { continue }
            readIndexes.resolve(id, .success(readState.index))
        }
        releaseCaughtUpReads()

        try maybeSnapshot()
        try await node.advance()

        // A node may campaign only once its bootstrap configuration is applied.
        if !campaigned, confState.voters.contains(configuration.id) {
            campaigned = true
            try await node.campaign()
        }
    }

    private func observe(_ soft: SoftState) {
        if soft.lead != lead {
            logger.info(
                soft.lead == 0 ? "no leader" : "leader elected",
                metadata: ["raft.id": "\(configuration.id)", "leader": "\(soft.lead)", "state": "\(soft.raftState)"])
        }
        lead = soft.lead
        if lead != 0 { leaderWaits.resolveAll(.success(())) }
    }

    private func apply(_ entry: Entry) async throws {
        switch entry.type {
        case .normal:
            // An empty entry is the one a new leader appends; there is nothing to apply.
            guard !entry.data.isEmpty else { break }
            do {
                let proposal = try Proposal(decoding: entry.data)
                let command = try KeyValueStore.Command(decoding: proposal.command)
                let outcome = store.apply(command)
                writes.resolve(proposal.requestID, .success(outcome))
            } catch {
                // Every replica sees the same bytes and skips them the same way, so the stores
                // stay identical. This node never proposes such an entry; log it loudly.
                logger.error(
                    "skipped a committed entry that is not a key-value command",
                    metadata: ["index": "\(entry.index)", "error": "\(error)"])
            }
        case .confChange:
            confState = try await node.applyConfChange(try ConfChange(serializedBytes: entry.data))
        case .confChangeV2:
            confState = try await node.applyConfChange(try ConfChangeV2(serializedBytes: entry.data))
        }
        applied = entry.index
    }

    private func releaseCaughtUpReads() {
        guard !catchUpIndexes.isEmpty else { return }
        let applied = self.applied
        catchUpIndexes.removeAll { waiting in
            guard waiting.index <= applied else { return false }
            catchUps.resolve(waiting.id, .success(()))
            return true
        }
    }

    /// Every `snapshotCount` applied entries: snapshot the store into storage and drop the log
    /// behind it, keeping `snapshotCatchUpEntries` for followers (etcd's raftexample does the same).
    private func maybeSnapshot() throws {
        let count = configuration.snapshotCount
        guard count > 0, applied >= snapshotIndex + count else { return }
        _ = try storage.createSnapshot(applied, confState: confState, data: store.snapshot())
        snapshotIndex = applied
        let keep = configuration.snapshotCatchUpEntries
        if applied > keep {
            let compactIndex = applied - keep
            if compactIndex >= (try storage.firstIndex()) { try storage.compact(compactIndex) }
        }
        logger.debug("snapshot taken", metadata: ["index": "\(applied)", "keys": "\(store.count)"])
    }

    // MARK: Requests

    public func put(key: [UInt8], value: [UInt8]) async throws -> KeyValueStore.Outcome {
        try await propose(.put(key: key, value: value))
    }

    public func delete(key: [UInt8]) async throws -> KeyValueStore.Outcome {
        try await propose(.delete(key: key))
    }

    public func get(key: [UInt8], consistency: ReadConsistency) async throws -> [UInt8]? {
        switch consistency {
        case .serializable:
            try checkRunning()
            return store.value(forKey: key)
        case .linearizable:
            let deadline = ContinuousClock.now + configuration.requestTimeout
            let index = try await readIndex(deadline: deadline)
            try await waitUntilApplied(index, deadline: deadline)
            return store.value(forKey: key)
        }
    }

    public func status() async -> ReplicaStatus {
        let status = await node.status
        return ReplicaStatus(
            id: status.id, term: status.hardState.term, leader: status.lead,
            commit: status.hardState.commit, applied: applied, state: "\(status.raftState)")
    }

    /// Waits until a leader is known (in a one-node cluster: until this node has elected itself).
    /// Throws `noLeader` after `timeout`.
    public func waitForLeader(timeout: Duration) async throws {
        try await waitForLeader(deadline: ContinuousClock.now + timeout)
    }

    private func checkRunning() throws(ReplicaError) {
        if let failure { throw .failed(failure) }
        if stopped { throw .stopped }
    }

    private func waitForLeader(deadline: ContinuousClock.Instant) async throws(ReplicaError) {
        try checkRunning()
        if lead != 0 { return }
        let id = ids.make()
        leaderWaits.register(
            id, deadline: min(deadline, ContinuousClock.now + configuration.leaderWait), expiry: .noLeader)
        try await withCheckedContinuation { leaderWaits.attach(id, $0) }.get()
    }

    /// Proposes a command and waits for it to be applied.
    private func propose(_ command: KeyValueStore.Command) async throws(ReplicaError) -> KeyValueStore.Outcome {
        let deadline = ContinuousClock.now + configuration.requestTimeout
        try await waitForLeader(deadline: deadline)
        let id = ids.make()
        let data = Proposal(requestID: id, command: command.encoded()).encoded()
        // Register before proposing: the entry may be applied before this task resumes.
        writes.register(id, deadline: deadline, expiry: .timeout)
        do {
            try await node.propose(data)
        } catch {
            writes.remove(id)
            throw ReplicaError(error)
        }
        return try await withCheckedContinuation { writes.attach(id, $0) }.get()
    }

    /// Asks raft for a read index (ReadIndex, thesis §6.4) and waits for its ReadState.
    private func readIndex(deadline: ContinuousClock.Instant) async throws(ReplicaError) -> UInt64 {
        try await waitForLeader(deadline: deadline)
        let id = ids.make()
        readIndexes.register(id, deadline: deadline, expiry: .timeout)
        do {
            try await node.readIndex(Self.context(forRequestID: id))
        } catch {
            readIndexes.remove(id)
            throw ReplicaError(error)
        }
        return try await withCheckedContinuation { readIndexes.attach(id, $0) }.get()
    }

    private func waitUntilApplied(_ index: UInt64, deadline: ContinuousClock.Instant) async throws(ReplicaError) {
        try checkRunning()
        if applied >= index { return }
        let id = ids.make()
        catchUps.register(id, deadline: deadline, expiry: .timeout)
        catchUpIndexes.append((index, id))
        try await withCheckedContinuation { catchUps.attach(id, $0) }.get()
    }

    /// A ReadIndex context is the request id, 8 bytes little-endian.
    static func context(forRequestID id: UInt64) -> [UInt8] {
        withUnsafeBytes(of: id.littleEndian) { Array($0) }
    }

    static func requestID(fromContext context: [UInt8]) -> UInt64? {
        guard context.count == 8 else { return nil }
        var id: UInt64 = 0
        for i in 0..<8 { id |= UInt64(context[i]) << (8 * UInt64(i)) }
        return id
    }
}
