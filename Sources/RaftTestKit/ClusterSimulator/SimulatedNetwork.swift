import Raft

/// A deterministic in-memory network of `RawNode`s, in the style of etcd's raft tests: messages
/// are delivered one at a time in FIFO order; links can be dropped, cut and healed, nodes
/// isolated, message types ignored. Every node's Ready is handled at once: persisted to its
/// `MemoryStorage`, its messages queued, its committed entries applied (membership changes
/// included), then advanced. After every delivery the `InvariantChecker` checks the Raft safety
/// properties; a violation is recorded in `violations` (and tests expect it to stay empty).
public final class SimulatedNetwork {
    public private(set) var nodes: [UInt64: RawNode] = [:]
    public private(set) var storages: [UInt64: MemoryStorage] = [:]
    /// Entries each node applied, in order (normal and configuration entries alike).
    public private(set) var applied: [UInt64: [Entry]] = [:]
    /// ReadStates each node's Readies handed out, in order: the answers to `readIndex`.
    public private(set) var readStates: [UInt64: [ReadState]] = [:]
    /// Messages queued for delivery, oldest first.
    public private(set) var queue: [Message] = []
    public var checker = InvariantChecker()
    /// Messages delivered so far.
    public private(set) var delivered = 0

    /// Probability (0…1) that a message on the link from → to is dropped.
    private var dropRates: [Link: Double] = [:]
    private var ignoredTypes: Set<MessageType> = []
    private var rng: TestRandom
    /// Called for each message before delivery; return false to drop it.
    public var filter: ((Message) -> Bool)?

    struct Link: Hashable {
        var from: UInt64
        var to: UInt64
    }

    /// Builds one node per id, bootstrapped like etcd's tests: storage holds a snapshot at
    /// index 1 (term 1) whose configuration is `ids`, unless `configure` says otherwise.
    public init(ids: [UInt64], seed: UInt64 = 1, configure: (inout Config) -> Void = { _ in }) throws {
        rng = TestRandom(seed: seed)
        for id in ids {
            let storage = MemoryStorage()
            try storage.applySnapshot(
                Snapshot(metadata: SnapshotMetadata(confState: ConfState(voters: ids), index: 1, term: 1)))
            try add(id: id, storage: storage, configure: configure)
        }
    }

    /// Adds (or replaces, as a restart does) node `id` on `storage`.
    public func add(id: UInt64, storage: MemoryStorage, configure: (inout Config) -> Void = { _ in }) throws {
        var config = Config(id: id, electionTick: 10, heartbeatTick: 1, storage: storage)
        config.maxSizePerMsg = .max
        config.maxInflightMsgs = 256
        configure(&config)
        let node = try RawNode(config: config)
        nodes[id] = node
        storages[id] = storage
        if applied[id] == nil { applied[id] = [] }
        drain(id)
    }

    /// Removes a node from the network (a crash): queued messages to it are lost.
    public func remove(id: UInt64) {
        nodes[id] = nil
        queue.removeAll { $0.to == id }
    }

    // MARK: - Faults

    /// Drops messages from → to with probability `rate`.
    public func drop(from: UInt64, to: UInt64, rate: Double = 1) {
        dropRates[Link(from: from, to: to)] = rate
    }

    /// Cuts the link between a and b in both directions.
    public func cut(_ a: UInt64, _ b: UInt64) {
        drop(from: a, to: b)
        drop(from: b, to: a)
    }

    /// Cuts every link of `id`.
    public func isolate(_ id: UInt64) {
        for other in nodes.keys where other != id { cut(id, other) }
    }

    /// Drops every message of this type.
    public func ignore(_ type: MessageType) {
        ignoredTypes.insert(type)
    }

    /// Heals every link and stops ignoring message types.
    public func heal() {
        dropRates.removeAll()
        ignoredTypes.removeAll()
    }

    // MARK: - Driving

    /// Ticks node `id` once and handles its Ready.
    public func tick(_ id: UInt64) {
        nodes[id]?.tick()
        drain(id)
    }

    /// Ticks every node once.
    public func tickAll() {
        for id in nodes.keys.sorted() { tick(id) }
    }

    /// Runs `body` on node `id` (propose, campaign, readIndex…) and handles its Ready.
    @discardableResult
    public func with<T>(_ id: UInt64, _ body: (RawNode) throws -> T) rethrows -> T {
        guard let node = nodes[id] else { preconditionFailure("no node \(id)") }
        defer { drain(id) }
        return try body(node)
    }

    /// Injects messages (as if they arrived from the network) and delivers until quiet.
    public func send(_ messages: [Message]) {
        for m in messages { enqueue(m) }
        deliverAll()
    }

    /// Delivers queued messages until none are left (or `limit` deliveries happened).
    public func deliverAll(limit: Int = 1_000_000) {
        var n = 0
        while !queue.isEmpty && n < limit {
            deliverNext()
            n += 1
        }
    }

    /// Delivers the oldest queued message.
    public func deliverNext() {
        guard !queue.isEmpty else { return }
        let m = queue.removeFirst()
        guard let node = nodes[m.to] else {
            if m.type == .snapshot { reportSnapshot(m, .failure) }
            return
        }
        delivered += 1
        do {
            try node.step(m)
        } catch {
            // Proposals dropped by a follower without a leader, responses from removed peers: the
            // network does not care, the sender times out as in a real deployment.
        }
        drain(m.to)
        // A transport tells the leader how a snapshot send ended (etcd's rafthttp does).
        if m.type == .snapshot { reportSnapshot(m, .finish) }
    }

    /// Tells the sender of snapshot message `m` how sending it ended.
    private func reportSnapshot(_ m: Message, _ status: SnapshotStatus) {
        guard let sender = nodes[m.from] else { return }
        sender.reportSnapshot(m.to, status: status)
        drain(m.from)
    }

    /// Handles every Ready node `id` has: persist, queue messages, apply, advance; then checks
    /// the invariants.
    public func drain(_ id: UInt64) {
        guard let node = nodes[id], let storage = storages[id] else { return }
        while node.hasReady {
            let rd = node.ready()
            do {
                if let snapshot = rd.snapshot { try storage.applySnapshot(snapshot) }
                if let hs = rd.hardState { try storage.setHardState(hs) }
                if !rd.entries.isEmpty { try storage.append(rd.entries) }
            } catch {
                checker.record("node \(id): storage rejected a Ready: \(error)")
            }
            if let snapshot = rd.snapshot {
                applied[id, default: []].removeAll()
                checker.nodeRestoredSnapshot(id, snapshot)
            }
            for entry in rd.committedEntries {
                applied[id, default: []].append(entry)
                switch entry.type {
                case .confChange:
                    if let cc = try? ConfChange(serializedBytes: entry.data) { node.applyConfChange(cc) }
                case .confChangeV2:
                    if let cc = try? ConfChangeV2(serializedBytes: entry.data) { node.applyConfChange(cc) }
                case .normal:
                    break
                }
            }
            checker.nodeApplied(id, rd.committedEntries)
            if !rd.readStates.isEmpty { readStates[id, default: []].append(contentsOf: rd.readStates) }
            for m in rd.messages { enqueue(m) }
            node.advance(rd)
        }
        checker.check(self, changed: id)
    }

    private func enqueue(_ m: Message) {
        if isDropped(m) {
            // A lost snapshot is reported as failed, so the leader retries instead of waiting forever.
            if m.type == .snapshot { nodes[m.from]?.reportSnapshot(m.to, status: .failure) }
            return
        }
        queue.append(m)
    }

    private func isDropped(_ m: Message) -> Bool {
        if ignoredTypes.contains(m.type) { return true }
        if let rate = dropRates[Link(from: m.from, to: m.to)], rate > 0 {
            if rate >= 1 || rng.nextDouble() < rate { return true }
        }
        if let filter, !filter(m) { return true }
        return false
    }

    // MARK: - Observations

    public func status(_ id: UInt64) -> Status? { nodes[id]?.status }

    /// The ids of nodes that believe they lead, with their terms.
    public var leaders: [(id: UInt64, term: UInt64)] {
        nodes.keys.sorted().compactMap { id in
            guard let s = nodes[id]?.status, s.raftState == .leader else { return nil }
            return (id, s.hardState.term)
        }
    }

    /// The persisted log of node `id` (after its snapshot).
    public func log(_ id: UInt64) -> [Entry] {
        guard let storage = storages[id], let first = try? storage.firstIndex(), let last = try? storage.lastIndex(),
            last >= first
        else { return [] }
        return (try? storage.entries(first, last + 1, maxSize: .max)) ?? []
    }

    /// Normal entries' data applied by node `id`, in order.
    public func appliedData(_ id: UInt64) -> [[UInt8]] {
        (applied[id] ?? []).filter { $0.type == .normal && !$0.data.isEmpty }.map(\.data)
    }
}

/// The deterministic generator of fault injection and simulated schedules.
package typealias TestRandom = SplitMix64

extension SplitMix64 {
    /// Uniform in [0, 1).
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) / Double(1 << 53)
    }

}
