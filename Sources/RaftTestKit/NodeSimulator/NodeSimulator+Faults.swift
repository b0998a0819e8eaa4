import Raft

/// What a `NodeSimulator` run looks like.
public struct NodeSimulationOptions: Sendable, Hashable, CustomStringConvertible {
    /// The first members (voters from the start).
    public var nodeCount = 3
    /// Nodes that start only when an operator adds them (with `.membershipChanges`): they join
    /// empty, as learners, are promoted to voters, and voters are removed down to `nodeCount`.
    public var spareNodes = 2
    public var clientCount = 4
    public var keyCount = 3
    public var operationsPerClient = 40
    /// The faulty phase, in simulated nanoseconds.
    public var duration: UInt64 = 4_000_000_000
    /// Raft's tick, in simulated nanoseconds (10 ticks to an election).
    public var tickInterval: UInt64 = 10_000_000
    /// Applied entries between snapshots (small, so that runs take snapshots and send them).
    public var snapshotInterval: UInt64 = 40
    public var faults: NodeSimulationFaults = .all
    /// Bugs put in on purpose, to show the simulator finds them.
    public var plantedBugs: NodeSimulationPlantedBugs = []

    public init() {}

    public var description: String {
        "\(nodeCount) nodes (\(spareNodes) spare), \(clientCount) clients × \(operationsPerClient) operations on \(keyCount) keys, "
            + "\(duration / 1_000_000) ms of faults \(faults)" + (plantedBugs.isEmpty ? "" : ", planted bugs \(plantedBugs)")
    }
}

public struct NodeSimulationFaults: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let drops = NodeSimulationFaults(rawValue: 1 << 0)
    /// Delays of up to 50 ms, which reorder messages.
    public static let delays = NodeSimulationFaults(rawValue: 1 << 1)
    public static let duplicates = NodeSimulationFaults(rawValue: 1 << 2)
    public static let partitions = NodeSimulationFaults(rawValue: 1 << 3)
    /// A link cut one way only.
    public static let oneWayCuts = NodeSimulationFaults(rawValue: 1 << 4)
    /// A node's process dies; its disk keeps all it wrote, or loses what was not synced, or
    /// keeps a torn last write.
    public static let crashes = NodeSimulationFaults(rawValue: 1 << 5)
    /// Every node loses power at once, mid-run (the end of the run always has one).
    public static let powerLoss = NodeSimulationFaults(rawValue: 1 << 6)
    public static let fsyncErrors = NodeSimulationFaults(rawValue: 1 << 7)
    public static let slowDisks = NodeSimulationFaults(rawValue: 1 << 8)
    /// An operator changes the membership through the leader, one change at a time: a spare
    /// joins as a learner, a learner is promoted, a voter is removed (and decommissioned).
    public static let membershipChanges = NodeSimulationFaults(rawValue: 1 << 9)

    public static let all: NodeSimulationFaults = [
        .drops, .delays, .duplicates, .partitions, .oneWayCuts, .crashes, .powerLoss, .fsyncErrors, .slowDisks,
        .membershipChanges,
    ]

    public var description: String {
        let names = ["drops", "delays", "duplicates", "partitions", "one-way cuts", "crashes", "power loss", "fsync errors", "slow disks", "membership changes"]
        return "[" + names.indices.filter { rawValue & (1 << $0) != 0 }.map { names[$0] }.joined(separator: ", ") + "]"
    }
}

/// Bugs the simulator can plant in the node it runs, to show that it would find them.
public struct NodeSimulationPlantedBugs: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A node sends what a write promises (its acknowledgements, its votes) as soon as it asks
    /// for the write, before the write and its fdatasync are done.
    public static let acknowledgeBeforeSync = NodeSimulationPlantedBugs(rawValue: 1 << 0)

    public var description: String { contains(.acknowledgeBeforeSync) ? "[acknowledge before sync]" : "[]" }
}

public struct NodeSimulationStats: Sendable, Hashable, CustomStringConvertible {
    public var sent = 0
    public var delivered = 0
    public var dropped = 0
    public var duplicated = 0
    public var partitions = 0
    public var cuts = 0
    public var crashes = 0
    public var powerLosses = 0
    public var restarts = 0
    public var nodeFailures = 0
    public var snapshots = 0
    /// Membership changes the leader applied and answered (an unanswered one may still apply).
    public var membershipChanges = 0
    public var acknowledgedWrites = 0
    public var readsAnswered = 0
    public var operations = 0

    public init() {}

    public var description: String {
        "\(operations) operations (\(acknowledgedWrites) writes acknowledged, \(readsAnswered) reads answered), "
            + "\(delivered) of \(sent) messages delivered (\(dropped) dropped, \(duplicated) duplicated), "
            + "\(partitions) partitions, \(cuts) one-way cuts, \(crashes) crashes, \(powerLosses) power losses, "
            + "\(restarts) restarts, \(nodeFailures) nodes stopped by an error, \(snapshots) snapshots, "
            + "\(membershipChanges) membership changes"
    }

    public mutating func add(_ other: NodeSimulationStats) {
        sent += other.sent; delivered += other.delivered; dropped += other.dropped; duplicated += other.duplicated
        partitions += other.partitions; cuts += other.cuts; crashes += other.crashes; powerLosses += other.powerLosses
        restarts += other.restarts; nodeFailures += other.nodeFailures; snapshots += other.snapshots
        membershipChanges += other.membershipChanges
        acknowledgedWrites += other.acknowledgedWrites; readsAnswered += other.readsAnswered; operations += other.operations
    }
}

public struct NodeSimulationResult: Sendable {
    public var seed: UInt64
    public var options: NodeSimulationOptions
    public var stats: NodeSimulationStats
    /// A hash of every message delivered: equal for two runs of a seed.
    public var digest: UInt64
    /// The violation, the replay command and the trace; nil when the run passed.
    public var failure: String?
}

extension NodeSimulator {
    // MARK: - Faults

    /// One fault, drawn from the enabled ones: a partition or its healing, a one-way cut, a
    /// crash (with what the disk keeps), a power loss of every node, a restart.
    func injectFault() {
        let f = options.faults
        var choices: [() -> Void] = []
        if f.contains(.partitions) {
            choices.append { [self] in
                if side.isEmpty {
                    let ids = nodes.keys.sorted()
                    for id in ids { side[id] = Int(rng.below(2)) }
                    stats.partitions += 1
                    record("partition \(ids.map { "n\($0):\(side[$0]!)" }.joined(separator: " "))")
                } else {
                    side.removeAll()
                    record("heal the partition")
                }
            }
        }
        if f.contains(.oneWayCuts) {
            choices.append { [self] in
                if cuts.isEmpty || rng.chance(0.5) {
                    let ids = nodes.keys.sorted()
                    guard let a = rng.pick(ids), let b = rng.pick(ids.filter { $0 != a }) else { return }
                    cuts.insert([a, b])
                    stats.cuts += 1
                    record("cut n\(a) → n\(b)")
                } else {
                    cuts.removeAll()
                    record("restore the cut links")
                }
            }
        }
        if f.contains(.crashes) {
            choices.append { [self] in
                let up = nodes.keys.sorted().filter { nodes[$0]!.instance != nil }
                guard let id = rng.pick(up) else { return }
                let mode: SimulatedFileSystem.CrashMode
                switch rng.below(4) {
                case 0: mode = .keepUnsynced
                case 1: mode = .dropUnsynced
                case 2: mode = .dropUnsyncedData
                default: mode = .tearLastWrite(bytes: Int(rng.below(64)))
                }
                record("crash n\(id) (\(mode))")
                crash(id, mode: mode)
                schedule(after: 50_000_000 + rng.below(500_000_000), .restart(id))
            }
        }
        if f.contains(.powerLoss) && rng.chance(0.2) {
            choices.append { [self] in
                record("power loss of every node")
                stats.powerLosses += 1
                for id in nodes.keys.sorted() where nodes[id]!.instance != nil { crash(id, mode: .dropUnsynced) }
                for id in nodes.keys.sorted() { schedule(after: 20_000_000 + rng.below(200_000_000), .restart(id)) }
            }
        }
        guard !choices.isEmpty else { return }
        choices[Int(rng.below(UInt64(choices.count)))]()
    }
}
