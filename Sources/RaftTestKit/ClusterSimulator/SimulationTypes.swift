import Raft

/// The per-seed configuration of a `ClusterSimulator` run: cluster size and the `Config` knobs
/// every node shares.
public struct SimulationOptions: Sendable, Hashable, CustomStringConvertible {
    /// Voters at start (3 or 5 when chosen by seed); they are ids `1...nodeCount`.
    public var nodeCount: Int
    public var preVote: Bool
    public var checkQuorum: Bool
    /// Small (a few entries per append) or large.
    public var maxSizePerMsg: UInt64
    /// Small (1–2) or large.
    public var maxInflightMsgs: Int
    /// `.leaseBased` only with `checkQuorum` (the library refuses it otherwise). Lease reads are
    /// only linearizable under bounded clock drift and message delay; with `.leaseBased` the
    /// simulator ticks all nodes in lockstep, but still delays messages arbitrarily.
    public var readOnlyOption: ReadOnlyOption
    public var electionTick: Int
    public var heartbeatTick: Int
    /// Nodes run with `Config.asyncStorageWrites`: their writes complete later, in order, as
    /// a step of the schedule (several may be in flight); a crash loses the unfinished ones.
    public var asyncStorageWrites: Bool = false

    public init(
        nodeCount: Int = 3, preVote: Bool = false, checkQuorum: Bool = false, maxSizePerMsg: UInt64 = 1 << 20,
        maxInflightMsgs: Int = 256, readOnlyOption: ReadOnlyOption = .safe, electionTick: Int = 10, heartbeatTick: Int = 1
    ) {
        self.nodeCount = nodeCount
        self.preVote = preVote
        self.checkQuorum = checkQuorum
        self.maxSizePerMsg = maxSizePerMsg
        self.maxInflightMsgs = maxInflightMsgs
        self.readOnlyOption = readOnlyOption
        self.electionTick = electionTick
        self.heartbeatTick = heartbeatTick
    }

    /// The options a seed picks (drawn first from the seed's generator).
    package static func random(using rng: inout TestRandom, features: SimulationFeatures = .all) -> SimulationOptions {
        var o = SimulationOptions()
        o.nodeCount = rng.below(2) == 0 ? 3 : 5
        o.preVote = rng.below(2) == 0
        o.checkQuorum = rng.below(2) == 0
        o.maxSizePerMsg = rng.below(2) == 0 ? 64 : 1 << 20
        o.maxInflightMsgs = rng.below(2) == 0 ? 1 + Int(rng.below(2)) : 256
        let lease = rng.below(3) == 0
        o.readOnlyOption = o.checkQuorum && lease && features.contains(.leaseReads) ? .leaseBased : .safe
        o.asyncStorageWrites = rng.below(2) == 0
        return o
    }

    public var description: String {
        "\(nodeCount) nodes, preVote \(preVote), checkQuorum \(checkQuorum), maxSizePerMsg \(maxSizePerMsg), "
            + "maxInflightMsgs \(maxInflightMsgs), readOnly \(readOnlyOption), electionTick \(electionTick), heartbeatTick \(heartbeatTick)"
            + (asyncStorageWrites ? ", async storage writes" : "")
    }
}

/// What the random schedule may do besides ticks, deliveries, proposals and reads. Turn a
/// feature off to keep a schedule away from a known problem.
public struct SimulationFeatures: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Deliver a random queued message instead of the oldest.
    public static let reordering = SimulationFeatures(rawValue: 1 << 0)
    public static let duplication = SimulationFeatures(rawValue: 1 << 1)
    public static let drops = SimulationFeatures(rawValue: 1 << 2)
    public static let partitions = SimulationFeatures(rawValue: 1 << 3)
    /// Crashes (losing the unpersisted Ready, or the unsent and unapplied part of it) and restarts.
    public static let crashes = SimulationFeatures(rawValue: 1 << 4)
    /// Single membership changes (add, add learner, promote, remove).
    public static let membership = SimulationFeatures(rawValue: 1 << 5)
    /// Two changes at once through a joint configuration (auto, implicit, explicit leave).
    public static let jointConsensus = SimulationFeatures(rawValue: 1 << 6)
    public static let leaderTransfer = SimulationFeatures(rawValue: 1 << 7)
    /// Snapshot and compact a node's log, so that leaders send snapshots.
    public static let compaction = SimulationFeatures(rawValue: 1 << 8)
    /// Allow `.leaseBased` reads (with `checkQuorum`) when the seed picks them.
    public static let leaseReads = SimulationFeatures(rawValue: 1 << 9)
    /// Ticks of single nodes (clock drift); with lease reads, ticks are always in lockstep.
    public static let clockDrift = SimulationFeatures(rawValue: 1 << 10)

    /// Leader transfers in `.leaseBased` configurations. The core serves no lease reads while a
    /// transfer is under way (the transferee's election skips the followers' leases,
    /// etcd-io/raft#99), but a transfer aborted after an election timeout can hand the lease back
    /// to a leader that was in fact replaced, if messages are delayed longer than that; this
    /// simulator delays them without bound. Not in `.all`, so lease-read runs make no transfers.
    public static let leaseReadsDuringTransfer = SimulationFeatures(rawValue: 1 << 11)

    /// Messages no correct peer sends, stepped into live nodes beside the real traffic (see
    /// `ClusterSimulator.forge()`): from strangers, with values beyond `Message.valueCeiling`,
    /// with in-range values the gate must refuse, and stale copies with random values. Not in
    /// `.all`: it adds steps and messages no other check needs.
    public static let forgedMessages = SimulationFeatures(rawValue: 1 << 12)

    public static let all: SimulationFeatures = [
        .reordering, .duplication, .drops, .partitions, .crashes, .membership, .jointConsensus, .leaderTransfer,
        .compaction, .leaseReads, .clockDrift,
    ]
}

/// A violated property, with what is needed to reproduce it.
public struct SimulationFailure: Error, Sendable, CustomStringConvertible {
    public var seed: UInt64
    /// The random-phase step at which the violation was seen (`steps` + liveness ticks for a
    /// liveness failure).
    public var step: Int
    /// The random-phase step count of the run (needed to replay a liveness failure).
    public var steps: Int
    public var violation: String
    public var options: SimulationOptions
    public var features: SimulationFeatures
    /// The last steps, oldest first (one line each).
    public var trace: [String]

    public var description: String {
        var s = "simulation failed: seed \(seed), step \(step) of \(steps): \(violation)\n"
        s += "options: \(options)\n"
        if features != .all { s += "features: 0x\(String(features.rawValue, radix: 16))\n" }
        s += "replay: ClusterSimulator.replay(seed: \(seed), steps: \(steps))  "
        s += "(or FLOTILLA_SIM_REPLAY=\(seed) FLOTILLA_SIM_STEPS=\(steps) swift test --filter SimulationTests/replay)\n"
        s += "trace (last \(trace.count) lines):\n"
        for line in trace { s += "  \(line)\n" }
        return s
    }
}

/// Counters of one run, for reports and for checking the schedule exercises what it should.
public struct SimulationStats: Sendable, Hashable {
    public var steps = 0
    public var delivered = 0
    public var dropped = 0
    public var duplicated = 0
    public var reordered = 0
    public var proposals = 0
    /// Writes applied by the node they were proposed on.
    public var acknowledgedWrites = 0
    public var readsIssued = 0
    public var readsAnswered = 0
    public var confChangesProposed = 0
    public var confChangesApplied = 0
    public var transfers = 0
    public var partitions = 0
    public var crashes = 0
    public var crashesBeforePersist = 0
    public var restarts = 0
    public var compactions = 0
    public var snapshotsSent = 0
    public var snapshotsRestored = 0
    /// Distinct terms in which a leader was seen.
    public var leaderTerms = 0
    /// Ticks the liveness phase needed to commit and apply a fresh write everywhere.
    public var livenessTicks = 0
    /// Forged messages stepped in, and how many of them the node refused.
    public var forged = 0
    public var forgedRefused = 0

    public init() {}

    public mutating func add(_ o: SimulationStats) {
        steps += o.steps
        delivered += o.delivered
        dropped += o.dropped
        duplicated += o.duplicated
        reordered += o.reordered
        proposals += o.proposals
        acknowledgedWrites += o.acknowledgedWrites
        readsIssued += o.readsIssued
        readsAnswered += o.readsAnswered
        confChangesProposed += o.confChangesProposed
        confChangesApplied += o.confChangesApplied
        transfers += o.transfers
        partitions += o.partitions
        crashes += o.crashes
        crashesBeforePersist += o.crashesBeforePersist
        restarts += o.restarts
        compactions += o.compactions
        snapshotsSent += o.snapshotsSent
        snapshotsRestored += o.snapshotsRestored
        leaderTerms += o.leaderTerms
        livenessTicks += o.livenessTicks
        forged += o.forged
        forgedRefused += o.forgedRefused
    }
}

/// The outcome of `ClusterSimulator.run`.
public struct SimulationResult: Sendable {
    public var seed: UInt64
    public var options: SimulationOptions
    public var stats: SimulationStats
    /// nil when every check passed and the cluster made progress once the faults stopped.
    public var failure: SimulationFailure?
    public var passed: Bool { failure == nil }
}

/// A fixed-size buffer of the most recent trace lines.
struct TraceRing {
    private var lines: [String] = []
    private var next = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        lines.reserveCapacity(capacity)
    }

    mutating func append(_ line: String) {
        if lines.count < capacity {
            lines.append(line)
        } else {
            lines[next] = line
            next = (next + 1) % capacity
        }
    }

    var contents: [String] { Array(lines[next...] + lines[..<next]) }
}

extension TestRandom {
    /// A uniform-enough integer in `0..<n` (n > 0); stable across platforms and Swift versions.
    public mutating func below(_ n: UInt64) -> UInt64 {
        precondition(n > 0)
        return next() % n
    }

    /// A random element (nil when empty).
    mutating func pick<T>(_ items: [T]) -> T? {
        items.isEmpty ? nil : items[Int(below(UInt64(items.count)))]
    }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { nextDouble() < p }

    /// A value a hostile message might carry: 0, 1, the largest integers, `Message.valueCeiling`
    /// and the one above it, around `near` (a term or an index of the node it is aimed at), or
    /// small or arbitrary.
    public mutating func extremeValue(near: UInt64) -> UInt64 {
        switch below(12) {
        case 0: return 0
        case 1: return 1
        case 2: return .max
        case 3: return .max - 1
        case 4: return Message.valueCeiling
        case 5: return Message.valueCeiling + 1
        case 6: return near &- 1
        case 7: return near &+ 1
        case 8: return near
        case 9: return near &+ 2
        case 10: return below(16)
        default: return next()
        }
    }
}
