/// The asynchronous driver (etcd's node.go): a `RawNode` owned by an actor, its Readies delivered
/// as an `AsyncSequence`.
///
/// ```swift
/// let node = try Node.start(config: config, peers: [Peer(id: 1)])
/// Task { while true { try await Task.sleep(for: .milliseconds(100)); try await node.tick() } }
/// for await ready in node.readies {
///     // persist ready.hardState / entries / snapshot, send messages, apply committed entries
///     try await node.advance()
/// }
/// ```
/// One Ready is outstanding at a time: the next is produced after `advance()`.
public actor Node {
    private let raw: RawNode
    /// The Ready handed out and not yet advanced.
    private var outstanding: Ready?
    private var stopped = false
    private let continuation: AsyncStream<Ready>.Continuation

    /// Every Ready, in order. Ends when the node is stopped. Iterate it from one task only.
    public nonisolated let readies: AsyncStream<Ready>

    private init(raw: sending RawNode) {
        self.raw = raw
        let (stream, continuation) = AsyncStream.makeStream(of: Ready.self, bufferingPolicy: .unbounded)
        readies = stream
        self.continuation = continuation
        // Publish the first Ready (a bootstrap's entries, a restart's unapplied commits) at once.
        if raw.hasReady {
            let rd = raw.ready()
            outstanding = rd
            continuation.yield(rd)
        }
    }

    /// Starts a new node. With `peers`, the node is bootstrapped with them as its first members
    /// (its storage must be empty); without, it waits to be added to a running cluster.
    public static func start(config: sending Config, peers: [Peer]) throws -> Node {
        let raw = try RawNode(config: config)
        if !peers.isEmpty { try raw.bootstrap(peers) }
        return Node(raw: raw)
    }

    /// Restarts a node from the state in its storage.
    public static func restart(config: sending Config) throws -> Node {
        Node(raw: try RawNode(config: config))
    }

    private func checkRunning() throws(RaftError) {
        if stopped { throw RaftError.stopped }
    }

    /// Hands out the next Ready if none is outstanding and there is work.
    private func emitReadyIfAny() {
        guard !stopped, outstanding == nil, raw.hasReady else { return }
        let rd = raw.ready()
        outstanding = rd
        continuation.yield(rd)
    }

    /// Runs a RawNode operation and then publishes the Ready it may have produced.
    private func perform<T>(_ body: (RawNode) throws -> T) throws -> T {
        try checkRunning()
        defer { emitReadyIfAny() }
        return try body(raw)
    }

    public func tick() throws {
        try perform { $0.tick() }
    }

    public func campaign() throws {
        try perform { try $0.campaign() }
    }

    /// Proposes data; returns once the node accepted it into its log (leader) or forwarded it
    /// (follower). Throws `proposalDropped` otherwise.
    public func propose(_ data: [UInt8]) throws {
        try perform { try $0.propose(data) }
    }

    public func proposeConfChange(_ cc: ConfChange) throws {
        try perform { try $0.proposeConfChange(cc) }
    }

    public func proposeConfChange(_ cc: ConfChangeV2) throws {
        try perform { try $0.proposeConfChange(cc) }
    }

    /// Steps a message received from a peer.
    public func step(_ message: Message) throws {
        try perform { try $0.step(message) }
    }

    /// Says the outstanding Ready has been handled; the next one follows when there is work.
    public func advance() throws {
        try checkRunning()
        guard let rd = outstanding else { return }
        raw.advance(rd)
        outstanding = nil
        emitReadyIfAny()
    }

    @discardableResult
    public func applyConfChange(_ cc: ConfChange) throws -> ConfState {
        try perform { $0.applyConfChange(cc) }
    }

    @discardableResult
    public func applyConfChange(_ cc: ConfChangeV2) throws -> ConfState {
        try perform { $0.applyConfChange(cc) }
    }

    public func transferLeadership(to transferee: UInt64) throws {
        try perform { $0.transferLeader(to: transferee) }
    }

    public func readIndex(_ context: [UInt8]) throws {
        try perform { $0.readIndex(context) }
    }

    public func reportUnreachable(_ id: UInt64) throws {
        try perform { $0.reportUnreachable(id) }
    }

    public func reportSnapshot(_ id: UInt64, status: SnapshotStatus) throws {
        try perform { $0.reportSnapshot(id, status: status) }
    }

    public var status: Status { raw.status }

    /// Stops the node: `readies` ends and every later call throws `RaftError.stopped`.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        continuation.finish()
    }
}
