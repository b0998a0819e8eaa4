import Raft

/// A deterministic, seeded cluster simulator (FoundationDB / Jepsen style, without threads or
/// clocks): real `RawNode`s on `MemoryStorage`s, driven by a random schedule of ticks,
/// deliveries, reordering, duplication and loss of messages, proposals, ReadIndex reads,
/// membership changes (single and joint), leader transfers, partitions, crashes that lose what
/// was not persisted, restarts from storage and log compaction.
///
/// After every step it checks, through `InvariantChecker`: at most one leader per term, log
/// matching, leader completeness, state machine safety (every node applies the same entry at
/// each index, and each node's state machine — the list of payloads it applied, carried in its
/// snapshots — is a prefix of one history), commit and applied never going back within an
/// incarnation; and that every `ReadState` is linearizable: it answers a read that was issued,
/// once, on that node, at an index at or above every write acknowledged (applied by the node
/// that proposed it) before the read was issued.
///
/// After the random phase it heals everything, restarts crashed nodes, stops the faults and
/// requires a fresh write to commit and apply on every voter within 50 election timeouts.
///
/// The same seed, options and features always produce the same run; `replay(seed:steps:)`
/// prints every step.
public final class ClusterSimulator {
    public let seed: UInt64
    public let options: SimulationOptions
    public let features: SimulationFeatures
    public internal(set) var stats = SimulationStats()
    public internal(set) var checker = InvariantChecker()

    var rng: TestRandom
    var nodes: [UInt64: SimNode] = [:]
    /// Messages in flight, oldest first.
    var queue: [Message] = []
    /// Partition side of each node; nodes on different sides cannot talk. Empty when healed.
    var side: [UInt64: Int] = [:]
    var trace = TraceRing(capacity: 300)
    let log: ((String) -> Void)?
    var stepNumber = 0
    var touched: Set<UInt64> = []

    // Membership as the cluster decided it: the configuration of the highest conf-change
    // entry applied anywhere.
    var latestConfIndex: UInt64 = 1
    var latestConf: ConfState
    var nextNodeID: UInt64

    // Writes and reads.
    var nextWrite: UInt64 = 1
    /// Proposer of each write.
    var writeProposer: [UInt64: UInt64] = [:]
    var acked: Set<UInt64> = []
    var maxAckedIndex: UInt64 = 0
    /// Every applied payload in index order, as first applied anywhere: (index, write id).
    var history: [(index: UInt64, write: UInt64)] = []
    var nextRead: UInt64 = 1
    var reads: [UInt64: PendingRead] = [:]
    var leaderTermsSeen: Set<UInt64> = []

    struct PendingRead {
        var node: UInt64
        var step: Int
        /// The highest index of a write acknowledged before the read was issued.
        var mustSee: UInt64
        var answered = false
    }

    final class SimNode {
        let id: UInt64
        var raw: RawNode?
        let storage: MemoryStorage
        /// The state machine: ids of the writes applied, in order.
        var state: [UInt64] = []
        var applied: UInt64 = 0
        var confState = ConfState()
        var incarnation = 0
        /// The highest commit index this incarnation reported.
        var volatileCommit: UInt64 = 0
        var removed = false
        var cachedLog: [Entry]?
        /// Asynchronous storage writes: the Readies handed out whose writes have not completed,
        /// oldest first.
        var writesInFlight: [Ready] = []

        init(id: UInt64, storage: MemoryStorage) {
            self.id = id
            self.storage = storage
        }
    }

    /// A simulator for `seed`; the options are drawn from the seed unless given.
    public init(
        seed: UInt64, options: SimulationOptions? = nil, features: SimulationFeatures = .all,
        log: ((String) -> Void)? = nil
    ) {
        self.seed = seed
        self.features = features
        self.log = log
        var rng = TestRandom(seed: seed)
        let drawn = SimulationOptions.random(using: &rng, features: features)
        let chosen = options ?? drawn
        self.options = chosen
        self.rng = rng
        let ids = (1...UInt64(chosen.nodeCount)).map { $0 }
        latestConf = ConfState(voters: ids)
        nextNodeID = UInt64(chosen.nodeCount) + 1
        for id in ids {
            let storage = MemoryStorage()
            try! storage.applySnapshot(Snapshot(metadata: SnapshotMetadata(confState: latestConf, index: 1, term: 1)))
            let node = SimNode(id: id, storage: storage)
            nodes[id] = node
            start(node)
        }
    }

    /// Runs `steps` random steps, then the liveness phase. Stops at the first violation.
    public static func run(
        seed: UInt64, steps: Int, features: SimulationFeatures = .all, log: ((String) -> Void)? = nil
    ) -> SimulationResult {
        ClusterSimulator(seed: seed, features: features, log: log).run(steps: steps)
    }

    /// Runs a seed again, printing every step (and the failure, if any).
    @discardableResult
    public static func replay(seed: UInt64, steps: Int, features: SimulationFeatures = .all) -> SimulationResult {
        let result = run(seed: seed, steps: steps, features: features, log: { print($0) })
        if let failure = result.failure { print(failure) } else { print("seed \(seed): passed; \(result.stats)") }
        return result
    }

    public func run(steps: Int) -> SimulationResult {
        note("seed \(seed): \(options)")
        for _ in 0..<steps {
            stepNumber += 1
            stats.steps += 1
            randomStep()
            handleReadies(all: false)
            if let failure = checkAfterStep(steps: steps) { return result(failure) }
        }
        return result(livenessPhase(steps: steps))
    }

    func result(_ failure: SimulationFailure?) -> SimulationResult {
        stats.leaderTerms = leaderTermsSeen.count
        return SimulationResult(seed: seed, options: options, stats: stats, failure: failure)
    }

    // MARK: - The random schedule

    enum Action: CaseIterable {
        case tickOne, tickAll, deliverOldest, deliverRandom, deliverBurst, duplicate, drop, propose, read,
            confChange, transfer, partition, heal, crash, restart, compact, forge, completeWrites
    }

    func weight(_ a: Action) -> UInt64 {
        let f = features
        let lockstep = options.readOnlyOption == .leaseBased || !f.contains(.clockDrift)
        switch a {
        case .tickOne: return lockstep ? 0 : 12
        case .tickAll: return lockstep ? 14 : 6
        case .deliverOldest: return 30
        case .deliverRandom: return f.contains(.reordering) ? 12 : 0
        case .deliverBurst: return 4
        case .duplicate: return f.contains(.duplication) ? 2 : 0
        case .drop: return f.contains(.drops) ? 3 : 0
        case .propose: return 10
        case .read: return 5
        case .confChange: return f.contains(.membership) || f.contains(.jointConsensus) ? 2 : 0
        case .transfer:
            // A transfer voids a lease without the leader noticing (see .leaseReadsDuringTransfer).
            let leaseRisk = options.readOnlyOption == .leaseBased && !f.contains(.leaseReadsDuringTransfer)
            return f.contains(.leaderTransfer) && !leaseRisk ? 1 : 0
        case .partition: return f.contains(.partitions) && side.isEmpty ? 1 : 0
        case .heal: return side.isEmpty ? 0 : 3
        case .crash: return f.contains(.crashes) ? 1 : 0
        case .restart: return nodes.values.contains { $0.raw == nil && !$0.removed } ? 4 : 0
        case .compact: return f.contains(.compaction) ? 2 : 0
        case .forge: return f.contains(.forgedMessages) ? 10 : 0
        case .completeWrites: return nodes.values.contains { !$0.writesInFlight.isEmpty } ? 20 : 0
        }
    }

    func randomStep() {
        let actions = Action.allCases
        let weights = actions.map(weight)
        var r = rng.below(weights.reduce(0, +))
        var action = actions[0]
        for (a, w) in zip(actions, weights) {
            if r < w {
                action = a
                break
            }
            r -= w
        }
        perform(action)
    }

    var liveIDs: [UInt64] { nodes.values.filter { $0.raw != nil }.map(\.id).sorted() }

    func perform(_ action: Action) {
        switch action {
        case .tickOne:
            if let id = rng.pick(liveIDs) {
                record("tick n\(id)")
                tick(id)
            }
        case .tickAll:
            record("tick all")
            for id in liveIDs { tick(id) }
        case .deliverOldest:
            if !queue.isEmpty { deliver(at: 0) }
        case .deliverRandom:
            if !queue.isEmpty {
                let i = Int(rng.below(UInt64(queue.count)))
                if i > 0 { stats.reordered += 1 }
                deliver(at: i)
            }
        case .deliverBurst:
            let n = min(queue.count, 1 + Int(rng.below(16)))
            if n > 0 { record("deliver \(n)") }
            for _ in 0..<n {
                deliver(at: 0)
                handleReadies(all: false)
            }
        case .duplicate:
            // Reads are matched by context: a transport that duplicated them would make the
            // application see two answers, which it must (and does) tolerate; keep them single.
            let candidates = queue.indices.filter { queue[$0].type != .readIndex && queue[$0].type != .readIndexResponse }
            if let i = rng.pick(candidates) {
                let m = queue[i]
                let at = Int(rng.below(UInt64(queue.count + 1)))
                queue.insert(m, at: at)
                stats.duplicated += 1
                record("duplicate \(describe(m))")
            }
        case .drop:
            if !queue.isEmpty {
                let m = queue.remove(at: Int(rng.below(UInt64(queue.count))))
                record("drop \(describe(m))")
                lost(m)
            }
        case .propose:
            propose()
        case .read:
            read()
        case .confChange:
            changeMembership()
        case .transfer:
            transfer()
        case .partition:
            partition()
        case .heal:
            side.removeAll()
            record("heal")
        case .crash:
            crash()
        case .restart:
            if let node = rng.pick(nodes.values.filter { $0.raw == nil && !$0.removed }.sorted { $0.id < $1.id }) {
                record("restart n\(node.id)")
                start(node)
            }
        case .compact:
            compact()
        case .forge:
            forge()
        case .completeWrites:
            let writing = nodes.values.filter { !$0.writesInFlight.isEmpty }.sorted { $0.id < $1.id }
            if let node = rng.pick(writing) {
                completeWrites(node, count: 1 + Int(rng.below(UInt64(node.writesInFlight.count))))
            }
        }
    }

    func tick(_ id: UInt64) {
        guard let raw = nodes[id]?.raw else { return }
        raw.tick()
        touched.insert(id)
    }

    // MARK: - The network

    func deliver(at i: Int) {
        let m = queue.remove(at: i)
        guard let node = nodes[m.to], let raw = node.raw, !partitioned(m.from, m.to) else {
            record("lost \(describe(m))")
            lost(m)
            return
        }
        record("deliver \(describe(m))")
        stats.delivered += 1
        do {
            try raw.step(m)
        } catch {
            note("  n\(m.to) refused it: \(error)")
        }
        touched.insert(m.to)
        // A transport tells the sender how a snapshot send ended (etcd's rafthttp does).
        if m.type == .snapshot, let sender = nodes[m.from]?.raw {
            sender.reportSnapshot(m.to, status: .finish)
            touched.insert(m.from)
        }
    }

    /// A message that will never arrive: a transport notices for snapshots (always) and
    /// sometimes for the rest (unreachable).
    func lost(_ m: Message) {
        stats.dropped += 1
        guard let sender = nodes[m.from]?.raw else { return }
        if m.type == .snapshot {
            sender.reportSnapshot(m.to, status: .failure)
            touched.insert(m.from)
        } else if rng.chance(0.3) {
            sender.reportUnreachable(m.to)
            touched.insert(m.from)
        }
    }

    func partitioned(_ a: UInt64, _ b: UInt64) -> Bool {
        guard !side.isEmpty else { return false }
        return (side[a] ?? 0) != (side[b] ?? 0)
    }

    func partition() {
        let ids = nodes.values.filter { !$0.removed }.map(\.id).sorted()
        guard ids.count > 1 else { return }
        for id in ids { side[id] = Int(rng.below(2)) }
        if Set(side.values).count == 1 { side[ids[Int(rng.below(UInt64(ids.count)))]] = 1 - side[ids[0]]! }
        stats.partitions += 1
        let a = ids.filter { side[$0] == 0 }, b = ids.filter { side[$0] == 1 }
        record("partition \(a) | \(b)")
    }

    // MARK: - Readies

    /// Handles the Ready of every node that has one; in the random phase each is left pending
    /// with some probability (so that several events pile into one Ready, and a crash can
    /// lose it).
    func handleReadies(all: Bool) {
        var progress = true
        while progress {
            progress = false
            for id in nodes.keys.sorted() {
                guard let node = nodes[id], node.raw != nil else { continue }
                if all && !node.writesInFlight.isEmpty {
                    completeWrites(node, count: node.writesInFlight.count)
                    progress = true
                }
                guard let raw = node.raw, raw.hasReady else { continue }
                if !all && rng.chance(0.15) { continue }
                handleReady(node, raw)
                progress = true
            }
            if !all { break }
        }
    }

    func handleReady(_ node: SimNode, _ raw: RawNode) {
        let rd = raw.ready()
        touched.insert(node.id)
        if options.asyncStorageWrites {
            // Written later, in order (`completeWrites`); what it promises leaves then.
            if rd.hardState != nil || !rd.entries.isEmpty || rd.snapshot != nil || !rd.messagesAfterPersist.isEmpty {
                node.writesInFlight.append(rd)
            }
        } else {
            persist(rd, node)
        }
        if let snapshot = rd.snapshot {
            node.state = decodeState(snapshot.data)
            node.applied = snapshot.metadata.index
            node.confState = snapshot.metadata.confState
            stats.snapshotsRestored += 1
            checker.nodeRestoredSnapshot(node.id, snapshot)
            note("  n\(node.id) restored snapshot at \(snapshot.metadata.index) (term \(snapshot.metadata.term)), \(node.state.count) writes")
            checkRestoredState(node)
        }
        if let ss = rd.softState, ss.raftState == .leader {
            note("  n\(node.id) became leader at term \(raw.status.hardState.term)")
            leaderTermsSeen.insert(raw.status.hardState.term)
        }
        for rs in rd.readStates { answered(rs, on: node) }
        for m in rd.messages {
            if m.type == .snapshot { stats.snapshotsSent += 1 }
            queue.append(m)
        }
        apply(rd.committedEntries, node, raw)
        if options.asyncStorageWrites {
            let upTo = max(rd.committedEntries.last?.index ?? 0, rd.snapshot?.metadata.index ?? 0)
            if upTo > 0 { raw.advanceApply(to: upTo) }
        } else {
            raw.advance(rd)
        }
    }

    /// Asynchronous storage writes: the oldest `count` writes of `node` complete, then the node
    /// is told, and what they promised is sent.
    func completeWrites(_ node: SimNode, count: Int) {
        let done = node.writesInFlight.prefix(count)
        node.writesInFlight.removeFirst(count)
        for rd in done { persist(rd, node) }
        guard let last = done.last, let raw = node.raw else { return }
        raw.onPersistReady(last.number)
        touched.insert(node.id)
        for rd in done { queue.append(contentsOf: rd.messagesAfterPersist) }
    }

    func persist(_ rd: Ready, _ node: SimNode) {
        do {
            if let snapshot = rd.snapshot { try node.storage.applySnapshot(snapshot) }
            if var hs = rd.hardState {
                // As `DiskStorage` does: the commit a snapshot recorded is never lowered by a
                // HardState handed out before it and written after (asynchronous writes).
                hs.commit = max(hs.commit, try node.storage.initialState().0.commit)
                try node.storage.setHardState(hs)
            }
            if !rd.entries.isEmpty { try node.storage.append(rd.entries) }
        } catch {
            checker.record("node \(node.id): storage rejected a Ready: \(error)")
        }
        if rd.snapshot != nil || !rd.entries.isEmpty { node.cachedLog = nil }
    }

    func apply(_ entries: [Entry], _ node: SimNode, _ raw: RawNode) {
        guard !entries.isEmpty else { return }
        note("  n\(node.id) applies \(entries.first!.index)...\(entries.last!.index)")
        for e in entries {
            switch e.type {
            case .normal:
                if let w = decodeWrite(e.data) { applyWrite(w, at: e.index, node) }
            case .confChange, .confChangeV2:
                let cc: ConfChangeV2
                do {
                    cc = e.type == .confChange ? try ConfChange(serializedBytes: e.data).asV2 : try ConfChangeV2(serializedBytes: e.data)
                } catch {
                    checker.record("node \(node.id): committed conf change at \(e.index) does not decode: \(error)")
                    continue
                }
                do {
                    node.confState = try raw.applyConfChangeChecked(cc)
                } catch {
                    // etcd panics here: a committed change that cannot apply means the leader
                    // let an invalid one through.
                    checker.record("node \(node.id): committed conf change \(cc) at \(e.index) cannot apply: \(error)")
                }
                stats.confChangesApplied += 1
                if e.index > latestConfIndex {
                    latestConfIndex = e.index
                    latestConf = node.confState
                    note("  configuration at \(e.index): \(describe(latestConf))")
                    reconcileMembership()
                }
            }
            node.applied = e.index
        }
        checker.nodeApplied(node.id, entries)
    }

    func applyWrite(_ w: UInt64, at index: UInt64, _ node: SimNode) {
        let k = node.state.count
        if k < history.count {
            if history[k].index != index || history[k].write != w {
                checker.record(
                    "state machine safety: node \(node.id) applied write \(w) at \(index) as its write #\(k), where the history has write \(history[k].write) at \(history[k].index)")
            }
        } else if k == history.count {
            history.append((index, w))
        } else {
            checker.record("state machine safety: node \(node.id) holds \(k) writes, beyond the \(history.count) ever applied")
        }
        node.state.append(w)
        if writeProposer[w] == node.id, !acked.contains(w) {
            acked.insert(w)
            stats.acknowledgedWrites += 1
            maxAckedIndex = max(maxAckedIndex, index)
        }
    }

    /// A state restored from a snapshot must be the history up to the snapshot's index.
    func checkRestoredState(_ node: SimNode) {
        let count = history.prefix { $0.index <= node.applied }.count
        let expected = history.prefix(count).map(\.write)
        if node.state != expected {
            checker.record(
                "state machine safety: node \(node.id) restored a snapshot at \(node.applied) holding \(node.state.count) writes \(node.state.suffix(5)); the history up to there has \(expected.count) \(expected.suffix(5))")
        }
    }

    /// Shuts down nodes the cluster removed (a removed member stops, as etcd's server does) and
    /// creates nodes it added (empty; the leader sends them a snapshot).
    func reconcileMembership() {
        let members = Set(latestConf.voters + latestConf.learners + latestConf.votersOutgoing + latestConf.learnersNext)
        for id in members where nodes[id] == nil {
            let node = SimNode(id: id, storage: MemoryStorage())
            nodes[id] = node
            note("  n\(id) created")
            start(node)
        }
        for node in nodes.values where !members.contains(node.id) && !node.removed {
            node.removed = true
            node.raw = nil
            note("  n\(node.id) removed and shut down")
        }
    }

    // MARK: - Clients

    func propose() {
        guard let id = rng.pick(liveIDs), let raw = nodes[id]?.raw else { return }
        let w = nextWrite
        nextWrite += 1
        writeProposer[w] = id
        stats.proposals += 1
        do {
            try raw.propose(encodeWrite(w))
            record("propose w\(w) on n\(id)")
        } catch {
            record("propose w\(w) on n\(id): \(error)")
        }
        touched.insert(id)
    }

    func read() {
        guard let id = rng.pick(liveIDs), let raw = nodes[id]?.raw else { return }
        let r = nextRead
        nextRead += 1
        reads[r] = PendingRead(node: id, step: stepNumber, mustSee: maxAckedIndex)
        stats.readsIssued += 1
        raw.readIndex(encodeRead(r))
        record("read r\(r) on n\(id) (must see \(maxAckedIndex))")
        touched.insert(id)
    }

    func answered(_ rs: ReadState, on node: SimNode) {
        guard let r = decodeRead(rs.requestContext), var read = reads[r] else {
            checker.record("read: node \(node.id) answered a read that was never issued (context \(rs.requestContext))")
            return
        }
        note("  n\(node.id) read r\(r) at index \(rs.index)")
        if read.answered {
            checker.record("read: r\(r) answered twice (now on node \(node.id) at \(rs.index))")
        }
        if read.node != node.id {
            checker.record("read: r\(r) was issued on node \(read.node) but answered on node \(node.id)")
        }
        if rs.index < read.mustSee {
            checker.record(
                "linearizability: r\(r), issued on node \(read.node) at step \(read.step) after a write was acknowledged at index \(read.mustSee), was answered on node \(node.id) with index \(rs.index)")
        }
        read.answered = true
        reads[r] = read
        stats.readsAnswered += 1
    }

}

extension ClusterSimulator: InvariantSubject {
    public var nodeIDs: [UInt64] { nodes.keys.sorted() }

    /// The node's status, with the hard state it persisted: the checker reads the persisted
    /// log, and the commit index must describe that log (a node's volatile commit may cover
    /// entries that replace persisted ones in its next Ready).
    public func status(_ id: UInt64) -> Status? {
        guard let node = nodes[id], let raw = node.raw else { return nil }
        var status = raw.status
        if let (hs, _) = try? node.storage.initialState() { status.hardState = hs }
        return status
    }

    public func log(_ id: UInt64) -> [Entry] {
        guard let node = nodes[id] else { return [] }
        if let cached = node.cachedLog { return cached }
        let storage = node.storage
        guard let first = try? storage.firstIndex(), let last = try? storage.lastIndex(), last >= first else {
            node.cachedLog = []
            return []
        }
        let entries = (try? storage.entries(first, last + 1, maxSize: .max)) ?? []
        node.cachedLog = entries
        return entries
    }
}

// MARK: - Payloads

/// Writes are 9 bytes: "w" and the write id; read contexts "r" and the read id; a state machine
/// (snapshot data) is the applied write ids, 8 bytes each.
func encodeWrite(_ w: UInt64) -> [UInt8] { [0x77] + encode(w) }
func encodeRead(_ r: UInt64) -> [UInt8] { [0x72] + encode(r) }

func decodeWrite(_ data: [UInt8]) -> UInt64? {
    data.count == 9 && data[0] == 0x77 ? decode(data[1...]) : nil
}

func decodeRead(_ data: [UInt8]) -> UInt64? {
    data.count == 9 && data[0] == 0x72 ? decode(data[1...]) : nil
}

func encodeState(_ writes: [UInt64]) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(writes.count * 8)
    for w in writes { bytes += encode(w) }
    return bytes
}

func decodeState(_ data: [UInt8]) -> [UInt64] {
    stride(from: 0, to: data.count - data.count % 8, by: 8).map { decode(data[$0..<$0 + 8]) }
}

func encode(_ v: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
}

func decode(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    var v: UInt64 = 0
    for (i, b) in bytes.enumerated() { v |= UInt64(b) << (8 * i) }
    return v
}
