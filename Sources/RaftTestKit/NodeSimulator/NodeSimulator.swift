import Flotilla
import Logging
import Raft
import RaftNIO
import RaftWAL

/// A key-value state machine the whole-node simulator can drive: how to write a put and a
/// delete, and how to read a key. The server's `KeyValueStore` conforms in the tests.
public protocol SimulatedKeyValueStore: StateMachine {
    init()
    static func putCommand(key: [UInt8], value: [UInt8]) -> [UInt8]
    static func deleteCommand(key: [UInt8]) -> [UInt8]
    func value(forKey key: [UInt8]) -> [UInt8]?
}

/// A deterministic simulator of whole Flotilla nodes (FoundationDB's and TigerBeetle's idea,
/// for Raft): several nodes run the runtime's own `NodeInstance` — the same type, the same code
/// as `flotilla serve`, over `DiskStorage` and the WAL — on a simulated network (drops, delays
/// and so reordering, duplicates, partitions, one-way cuts), simulated disks (each node's
/// `SimulatedFileSystem`: torn writes, power loss that drops what was not synced, fsync errors,
/// slow syncs) and a simulated clock, all drawn from one seed. Clients put, get (linearizable
/// reads, through ReadIndex) and delete; nodes crash and restart from their disks; an operator
/// changes the membership through the leader (spares join as learners and are promoted, voters
/// are removed, the leader among them, and shut down for good).
///
/// After the faulty phase: everything heals, every node loses power at once and restarts from
/// what its disk kept, the cluster must elect a leader, a final read of every key joins the
/// history, and every node must catch up with the leader. The history must be linearizable
/// (`Linearizability`): so every write acknowledged before the power loss is still there.
/// Throughout, no two nodes (nor two lives of one node) may apply different commands at one
/// index (`AppliedLedger`).
///
/// The same seed and options give the same run, bit for bit (`NodeSimulationResult.digest`).
public final class NodeSimulator<Store: SimulatedKeyValueStore> {
    public let seed: UInt64
    public let options: NodeSimulationOptions
    var rng: TestRandom
    /// Simulated time, in nanoseconds since the start.
    var now: UInt64 = 0
    let origin = ContinuousClock.now
    var events = EventQueue()
    var nodes: [UInt64: SimulatedNode<Store>] = [:]
    var stats = NodeSimulationStats()
    var history: [KeyValueOperation] = []
    var clients: [SimulatedClient] = []
    /// Partition side of each node (empty: healed), and one-way cuts (from → to).
    var side: [UInt64: Int] = [:]
    var cuts: Set<[UInt64]> = []
    var faultsOn = true
    var trace = TraceRing(capacity: 400)
    var digest = Digest()
    let log: ((String) -> Void)?
    var failure: String?
    /// What every node applied at every index, over all their lives (State Machine Safety).
    let ledger = AppliedLedger()
    /// Armed: the next acknowledged write ends `runUntil` (the final power loss strikes then).
    var strikeAtNextAcknowledgement = false
    var struck = false
    /// The operator's membership change under way (one at a time).
    var membershipInFlight: MembershipChange?

    static var clusterID: UInt64 { 0xF10_7111A }
    static var directory: String { "/node" }

    public init(seed: UInt64, options: NodeSimulationOptions = NodeSimulationOptions(), log: ((String) -> Void)? = nil) {
        self.seed = seed
        self.options = options
        self.log = log
        rng = TestRandom(seed: seed)
        let spares = options.faults.contains(.membershipChanges) ? options.spareNodes : 0
        let ids = (1...UInt64(options.nodeCount + spares)).map { $0 }
        for id in ids {
            nodes[id] = SimulatedNode(id: id, retention: [1, 2, 5][Int(rng.below(3))], isSpare: id > UInt64(options.nodeCount))
        }
        for id in ids { boot(id) }
        for id in ids { schedule(after: tickJitter(), .tick(id)) }
        clients = (0..<options.clientCount).map { SimulatedClient(id: $0) }
        for client in clients { schedule(after: rng.below(20_000_000), .clientNext(client.id)) }
        schedule(after: faultGap(), .fault)
        if spares > 0 { schedule(after: operatorGap(), .membership) }
    }

    /// Runs `seed` with `options`: the faulty phase, the power loss of every node, recovery,
    /// the final reads and the checks.
    public static func run(seed: UInt64, options: NodeSimulationOptions = NodeSimulationOptions(), log: ((String) -> Void)? = nil)
        -> NodeSimulationResult
    {
        NodeSimulator(seed: seed, options: options, log: log).run()
    }

    /// Runs a seed again, printing every step (and the failure, if any).
    @discardableResult
    public static func replay(seed: UInt64, options: NodeSimulationOptions = NodeSimulationOptions()) -> NodeSimulationResult {
        let result = run(seed: seed, options: options, log: { print($0) })
        print(result.failure ?? "seed \(seed): passed; \(result.stats)")
        return result
    }

    public func run() -> NodeSimulationResult {
        note("seed \(seed): \(options)")
        // The faulty phase.
        runUntil(options.duration)
        guard failure == nil else { return result() }
        // Heal and stop the faults; the clients go on (a fresh budget each), and mid-traffic,
        // with writes just acknowledged and others under way, every node loses power at once.
        faultsOn = false
        side.removeAll()
        cuts.removeAll()
        record("heal; faults stop")
        for id in nodes.keys.sorted() where nodes[id]!.instance == nil { boot(id) }
        for client in clients.indices {
            clients[client].issued = 0
            schedule(after: rng.below(20_000_000), .clientNext(client))
        }
        // The power loss strikes right as a write is acknowledged, while the entry is freshest
        // (the moment a node that acknowledges too early loses it), armed at a random time
        // while the clients are busy; if no write is acknowledged for a second, it strikes anyway.
        runUntil(now + 20_000_000 + rng.below(200_000_000))
        guard failure == nil else { return result() }
        strikeAtNextAcknowledgement = true
        runUntil(now + 1_000_000_000)
        guard failure == nil else { return result() }
        record("power loss of every node, under load")
        stats.powerLosses += 1
        for id in nodes.keys.sorted() where nodes[id]!.instance != nil { crash(id, mode: .dropUnsynced) }
        for id in nodes.keys.sorted() { boot(id) }
        guard failure == nil else { return result() }
        // Recovery: a leader, everyone caught up, then a final read of every key.
        for client in clients.indices { clients[client].stopped = true }
        runUntil(now + 3_000_000_000)
        guard failure == nil else { return result() }
        finalReads()
        guard failure == nil else { return result() }
        checkAcknowledgedWritesKept()
        guard failure == nil else { return result() }
        checkEveryNodeCaughtUp()
        guard failure == nil else { return result() }
        if let violation = Linearizability.check(history) {
            fail("linearizability: \(violation)")
        }
        return result()
    }

    func result() -> NodeSimulationResult {
        stats.operations = history.count
        return NodeSimulationResult(
            seed: seed, options: options, stats: stats, digest: digest.value,
            failure: failure.map { "\($0)\n  replay: NodeSimulator.replay(seed: \(seed))  (or FLOTILLA_NODESIM_REPLAY=\(seed) swift test --filter NodeSimulationTests/replay)\n  trace (last \(trace.contents.count) lines):\n" + trace.contents.map { "    " + $0 }.joined(separator: "\n") })
    }

    // MARK: - The event loop

    func schedule(after delay: UInt64, _ event: SimEvent) {
        events.push(at: now + delay, event)
    }

    func runUntil(_ end: UInt64) {
        while failure == nil, !struck, let (time, event) = events.popFirst(notAfter: end) {
            now = time
            handle(event)
        }
        if struck {
            struck = false
            strikeAtNextAcknowledgement = false
            return
        }
        now = max(now, end)
    }

    func handle(_ event: SimEvent) {
        switch event {
        case .tick(let id):
            schedule(after: options.tickInterval, .tick(id))
            guard nodes[id]?.instance != nil else { return }
            onNode(id) { instance, now in instance.tick(now: now) }
        case .deliver(let message):
            guard nodes[message.to]?.instance != nil else { return }
            stats.delivered += 1
            digest.add(UInt64(message.type.rawValue), message.from, message.to, message.term, message.index)
            onNode(message.to) { instance, _ in instance.receive(message) }
        case .diskDone(let id, let incarnation):
            guard let node = nodes[id], node.incarnation == incarnation, node.instance != nil else { return }
            completeDiskJob(node)
        case .clientNext(let client):
            clientNext(client)
        case .fault:
            guard faultsOn else { return }
            injectFault()
            schedule(after: faultGap(), .fault)
        case .restart(let id):
            guard faultsOn, nodes[id]?.instance == nil else { return }
            boot(id)
        case .membership:
            guard faultsOn else { return }
            operatorStep()
            schedule(after: operatorGap(), .membership)
        case .decommission(let id):
            decommission(id, because: "the operator removed it")
        }
    }

    /// Runs an event on node `id`'s instance, then drives it and performs what it asked. An
    /// error is the storage's or the state machine's: the node stops, as the shell stops it.
    func onNode(_ id: UInt64, _ body: (inout NodeInstance<LedgeredStore<Store>>, ContinuousClock.Instant) throws -> Void) {
        guard let node = nodes[id], node.instance != nil else { return }
        let instant = origin + .nanoseconds(Int64(now))
        do {
            try body(&node.instance!, instant)
            try node.instance!.drive(now: instant)
        } catch {
            let actions = node.instance!.takeActions()
            perform(actions, on: node)
            record("n\(id) stopped: \(error)")
            stats.nodeFailures += 1
            stop(id, closing: true)
            if faultsOn { schedule(after: 200_000_000, .restart(id)) } else { boot(id) }
            return
        }
        perform(node.instance!.takeActions(), on: node)
        if let violation = ledger.violation { fail("state machine safety: \(violation)") }
    }

    // MARK: - Tracing

    func record(_ line: String) {
        let stamped = "\(now / 1_000_000).\(String(format3(now / 1000 % 1000))) ms  \(line)"
        trace.append(stamped)
        log?(stamped)
    }

    func note(_ line: String) { log?(line) }

    func fail(_ violation: String) {
        guard failure == nil else { return }
        failure = "node simulation failed: seed \(seed), at \(now / 1_000_000) ms: \(violation)\n  options: \(options)"
        record("VIOLATION: \(violation)")
    }

    func tickJitter() -> UInt64 { rng.below(options.tickInterval) }

    func faultGap() -> UInt64 { 50_000_000 + rng.below(250_000_000) }

    func operatorGap() -> UInt64 { 80_000_000 + rng.below(170_000_000) }
}

func format3(_ value: UInt64) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, 3 - text.count)) + text
}

/// What the simulator schedules.
enum SimEvent {
    case tick(UInt64)
    /// A message in flight (to whichever life of its receiver is up when it arrives: networks
    /// deliver late packets).
    case deliver(Message)
    case diskDone(UInt64, incarnation: Int)
    case clientNext(Int)
    case fault
    case restart(UInt64)
    /// The operator's next look at the membership.
    case membership
    /// The operator shuts down a node it removed.
    case decommission(UInt64)
}

/// Events by time, then by the order they were scheduled in (so that a run is reproducible).
struct EventQueue {
    private var heap: [(time: UInt64, sequence: UInt64, event: SimEvent)] = []
    private var sequence: UInt64 = 0

    mutating func push(at time: UInt64, _ event: SimEvent) {
        sequence += 1
        heap.append((time, sequence, event))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(child, parent) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popFirst(notAfter end: UInt64) -> (UInt64, SimEvent)? {
        guard let first = heap.first, first.time <= end else { return nil }
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && less(left, smallest) { smallest = left }
            if right < heap.count && less(right, smallest) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return (first.time, first.event)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        heap[a].time != heap[b].time ? heap[a].time < heap[b].time : heap[a].sequence < heap[b].sequence
    }
}

/// FNV-1a over what happened, to show two runs of a seed are the same run.
struct Digest {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ values: UInt64...) {
        for v in values {
            var x = v
            for _ in 0..<8 {
                value ^= x & 0xFF
                value &*= 0x100_0000_01B3
                x >>= 8
            }
        }
    }
}
