import Logging

/// The synchronous driver of the raft state machine (etcd's RawNode). Not thread-safe: use it
/// from one thread or task at a time, or use `Node`.
///
/// The loop: call `tick()` at a steady rate and `step(_:)` with every message received; whenever
/// `hasReady`, take `ready()`, persist its hard state, entries and snapshot (syncing when
/// `mustSync`), send its messages, apply its committed entries (calling `applyConfChange` for
/// configuration entries), then call `advance(_:)`.
public final class RawNode {
    /// The state machine. Accessed once per call; RawNode is single-threaded by contract, so the
    /// runtime exclusivity check on this property (a measurable cost per call: see
    /// Benchmarks/README.md) is turned off.
    @exclusivity(unchecked) var core: RaftCore

    public init(config: Config) throws {
        core = try RaftCore(config: config)
    }

    /// This node's id.
    public var id: UInt64 { core.id }

    /// Advances the logical clock by one tick: elections and heartbeats are measured in ticks.
    public func tick() {
        core.tick()
    }

    /// Advances only the election clock, for quiesced groups that skip heartbeats (etcd's
    /// TickQuiesced). Use with care: a leader that is not ticked cannot notice a lost quorum.
    public func tickQuiesced() {
        core.electionElapsed += 1
    }

    /// Starts an election now (with a pre-election first when PreVote is on).
    public func campaign() throws {
        try core.step(Message(type: .hup))
    }

    /// Proposes data to be appended to the log. Throws `proposalDropped` when it cannot be
    /// accepted (no leader, a transfer in progress, the uncommitted tail full, forwarding off).
    public func propose(_ data: [UInt8]) throws {
        var entries = [Entry(data: data)]
        try propose(&entries)
    }

    private func propose(_ entries: inout [Entry]) throws {
        if core.state == .leader {
            // The leader appends directly: the same as stepping a proposal, minus a message and
            // a copy of the entries.
            try core.propose(&entries, from: core.id)
        } else {
            try core.step(Message(type: .proposal, from: core.id, entries: entries))
        }
    }

    /// Proposes several entries in one message (they are appended together).
    public func propose(batch: [[UInt8]]) throws {
        guard !batch.isEmpty else { return }
        var entries = batch.map { Entry(data: $0) }
        try propose(&entries)
    }

    /// Proposes a single-node membership change. It takes effect once applied: call
    /// `applyConfChange` when its entry comes back in `committedEntries`.
    public func proposeConfChange(_ cc: ConfChange) throws {
        var entries = [Entry(type: .confChange, data: cc.serializedBytes())]
        try propose(&entries)
    }

    /// Proposes a membership change of any number of nodes, through joint consensus when needed.
    public func proposeConfChange(_ cc: ConfChangeV2) throws {
        var entries = [Entry(type: .confChangeV2, data: cc.serializedBytes())]
        try propose(&entries)
    }

    /// Applies a committed membership change and returns the new configuration. An invalid
    /// change is logged and leaves the configuration as it is; use `applyConfChangeChecked` to
    /// get the error.
    @discardableResult
    public func applyConfChange(_ cc: ConfChange) -> ConfState {
        applyConfChange(cc.asV2)
    }

    @discardableResult
    public func applyConfChange(_ cc: ConfChangeV2) -> ConfState {
        do {
            return try core.applyConfChange(cc)
        } catch {
            core.logger.error("refused to apply an invalid configuration change", metadata: ["raft.id": "\(core.id)", "change": "\(cc)", "error": "\(error)"])
            return core.tracker.confState
        }
    }

    /// Applies a committed membership change, throwing `RaftError.invalidConfChange` if it
    /// cannot apply to the current configuration (which is then left unchanged).
    @discardableResult
    public func applyConfChangeChecked(_ cc: ConfChangeV2) throws -> ConfState {
        try core.applyConfChange(cc)
    }

    /// Steps a message received from a peer. Local message types are refused
    /// (`stepLocalMessage`), as are responses from nodes outside the configuration
    /// (`stepPeerNotFound`) and messages whose values no correct peer sends (`invalidMessage`,
    /// saying why): a term or index beyond any cluster's lifetime, an append whose entries do not
    /// follow it, a heartbeat committing beyond this log, an acknowledgement beyond what this
    /// leader sent, a second leader in a term. A refused message changes nothing.
    public func step(_ message: Message) throws {
        try core.stepReceived(message)
    }

    /// Whether there is anything to persist, send or apply.
    public var hasReady: Bool { core.hasReady }

    /// Collects what the application must do next. Call `advance` once it is done.
    public func ready() -> Ready { core.makeReady() }

    /// Tells the node the application has persisted, sent and applied what `ready` held.
    /// Not with `Config.asyncStorageWrites` (use `onPersistReady` and `advanceApply`).
    public func advance(_ ready: Ready) { core.advance(ready) }

    /// With `Config.asyncStorageWrites`: the writes of the Ready numbered `number`, and of every
    /// Ready before it, are durable (raft-rs's `on_persist_ready`). Send their
    /// `messagesAfterPersist` now. A leader counts its own entries from here on, which may
    /// commit them; the next Ready then carries them as committed.
    public func onPersistReady(_ number: UInt64) { core.persisted(through: number) }

    /// With `Config.asyncStorageWrites`: the application applied the committed entries (and any
    /// snapshot) handed out up to `index`.
    public func advanceApply(to index: UInt64) { core.advanceApply(to: index) }

    /// Asks the leader to hand leadership to `transferee`. Ignored for self, non-members and
    /// learners; abandoned after an election timeout.
    public func transferLeader(to transferee: UInt64) {
        // 0 is "none": forwarded by a follower it would be stamped with the follower's own id.
        guard transferee != 0 else { return }
        _ = try? core.step(Message(type: .transferLeader, from: transferee))
    }

    /// Requests a linearizable read: a `ReadState` with this context comes back in a later Ready
    /// with the index the application must have applied before serving the read.
    public func readIndex(_ context: [UInt8]) {
        _ = try? core.step(Message(type: .readIndex, entries: [Entry(data: context)]))
    }

    /// Tells the leader a message to `id` could not be delivered.
    public func reportUnreachable(_ id: UInt64) {
        _ = try? core.step(Message(type: .unreachable, from: id))
    }

    /// Tells the leader how sending a snapshot to `id` ended.
    public func reportSnapshot(_ id: UInt64, status: SnapshotStatus) {
        _ = try? core.step(Message(type: .snapshotStatus, from: id, reject: status == .failure))
    }

    /// Bootstraps a brand-new node with its initial members: their `addNode` changes become the
    /// first committed entries, which the application sees (and applies) in the first Ready.
    /// Throws `alreadyBootstrapped` if the storage holds any state.
    public func bootstrap(_ peers: [Peer]) throws {
        guard !peers.isEmpty else { throw RaftError.invalidConfig("bootstrap needs at least one peer") }
        let lastIndex = try core.log.storage.lastIndex()
        guard lastIndex == 0 else { throw RaftError.alreadyBootstrapped }
        // Nothing is persisted yet: make the first Ready carry the hard state.
        core.reportedHardState = HardState()
        core.becomeFollower(term: 1, lead: 0)
        var entries: [Entry] = []
        entries.reserveCapacity(peers.count)
        for (i, peer) in peers.enumerated() {
            let cc = ConfChange(type: .addNode, nodeID: peer.id, context: peer.context)
            entries.append(Entry(term: 1, index: UInt64(i + 1), type: .confChange, data: cc.serializedBytes()))
        }
        _ = core.log.append(entries)
        // Commit them, and apply them now too, so the application may campaign right away. They
        // are applied again by the application through Ready (adding a node twice is harmless);
        // `applied` stays behind so that it sees them.
        core.log.committed = UInt64(entries.count)
        for peer in peers {
            _ = try core.applyConfChange(ConfChange(type: .addNode, nodeID: peer.id).asV2)
        }
    }

    /// A snapshot of this node's state; `progress` is filled on the leader only.
    public var status: Status {
        Status(core: core)
    }
}
