import Foundation
import FlotillaKV
@testable import RaftTestKit
import Testing

extension KeyValueStore: SimulatedKeyValueStore {
    public static func putCommand(key: [UInt8], value: [UInt8]) -> [UInt8] { Command.put(key: key, value: value).encoded() }
    public static func deleteCommand(key: [UInt8]) -> [UInt8] { Command.delete(key: key).encoded() }
}

/// The whole-node simulator over the server's own state machine: the runtime's `NodeInstance`,
/// `DiskStorage` and the WAL on simulated disks, a simulated network and clock; every run ends
/// with a power loss of every node, and the client history must be linearizable.
///
/// Serialized, every run on a thread of its own: the runs are CPU-bound, and the other suites
/// run real nodes that must win elections on Swift's (two-thread, here) cooperative pool
/// meanwhile; a thread of its own is preempted by the system, a task on the pool is not.
///
/// Long mode (tens of thousands of seeds; prints each failing seed and its replay command):
/// `FLOTILLA_NODESIM_SEEDS=20000 swift test -c release --filter NodeSimulationTests/longMode`.
/// One seed, every step printed: `FLOTILLA_NODESIM_REPLAY=17 swift test --filter NodeSimulationTests/replay`.
@Suite(.serialized) struct NodeSimulationTests {
    static let ciSeeds: UInt64 = 200
    static let batches: [ClosedRange<UInt64>] = stride(from: 1, through: ciSeeds, by: 25).map { $0...min($0 + 24, ciSeeds) }

    @Test(arguments: batches)
    func seeds(_ range: ClosedRange<UInt64>) async {
        let (total, failure) = await onOwnThread { () -> (NodeSimulationStats, String?) in
            var total = NodeSimulationStats()
            for seed in range {
                let result = NodeSimulator<KeyValueStore>.run(seed: seed)
                total.add(result.stats)
                if let failure = result.failure { return (total, failure) }
            }
            return (total, nil)
        }
        if let failure {
            Issue.record("\(failure)")
            return
        }
        // The runs must exercise the node: writes acknowledged, reads answered, faults hit.
        #expect(total.acknowledgedWrites > 0 && total.readsAnswered > 0)
        #expect(total.crashes > 0 && total.restarts > 0 && total.powerLosses >= range.count)
        #expect(total.partitions + total.cuts > 0)
        #expect(total.membershipChanges > 0)
    }

    @Test func sameSeedSameRun() async {
        let (a, b) = await onOwnThread { (NodeSimulator<KeyValueStore>.run(seed: 99), NodeSimulator<KeyValueStore>.run(seed: 99)) }
        #expect(a.digest == b.digest)
        #expect(a.stats == b.stats)
        #expect(a.failure == nil)
    }

    /// The checker itself: a stale read after an acknowledged overwrite is caught, and a
    /// history with a write of unknown outcome that a read saw is accepted.
    @Test func checkerCatchesAStaleRead() {
        let k = Array("k".utf8)
        let stale: [KeyValueOperation] = [
            .init(client: 0, key: k, kind: .put(value: [1]), invoked: 0, returned: 10),
            .init(client: 1, key: k, kind: .put(value: [2]), invoked: 20, returned: 30),
            .init(client: 2, key: k, kind: .get(observed: [1]), invoked: 40, returned: 50),
        ]
        #expect(Linearizability.check(stale) != nil)
        let unknown: [KeyValueOperation] = [
            .init(client: 0, key: k, kind: .put(value: [1]), invoked: 0, returned: nil),
            .init(client: 2, key: k, kind: .get(observed: [1]), invoked: 40, returned: 50),
            .init(client: 2, key: k, kind: .get(observed: [1]), invoked: 60, returned: 70),
        ]
        #expect(Linearizability.check(unknown) == nil)
    }

    /// The ledger of applied commands: the same command at one index on two nodes is fine, a
    /// different one is a State Machine Safety violation naming the node and both commands.
    @Test func ledgerCatchesTwoCommandsAtOneIndex() {
        let ledger = AppliedLedger()
        ledger.applied(Array("put a".utf8), index: 7, on: 1)
        ledger.applied(Array("put a".utf8), index: 7, on: 2)
        #expect(ledger.violation == nil)
        ledger.applied(Array("put b".utf8), index: 7, on: 3)
        #expect(ledger.violation?.contains("n3 applied \"put b\" at index 7") == true)
        #expect(ledger.indexOfCommand[Array("put a".utf8)] == 7)
    }

    /// A follower that acknowledges before its fdatasync (planted) is caught: the final power
    /// loss strikes as a write is acknowledged, the new leader's log lacks it. Over seeds 1–40,
    /// 6 find it (6, 7, 33, 34, 36, 40); this stops at the first.
    @Test func findsAFollowerThatAcknowledgesBeforeItsFsync() async {
        var options = NodeSimulationOptions()
        options.plantedBugs = .acknowledgeBeforeSync
        let found = await onOwnThread { [options] in
            (1...40).lazy.compactMap { NodeSimulator<KeyValueStore>.run(seed: $0, options: options).failure }.first
        }
        #expect(["is lost", "linearizability", "state machine safety"].contains { found?.contains($0) == true })
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["FLOTILLA_NODESIM_SEEDS"] != nil))
    func longMode() async {
        let env = ProcessInfo.processInfo.environment
        let count = env["FLOTILLA_NODESIM_SEEDS"].flatMap(UInt64.init) ?? 10_000
        let first = env["FLOTILLA_NODESIM_FIRST"].flatMap(UInt64.init) ?? 1_000_000
        let failed = await onOwnThread { () -> [UInt64] in
            var failed: [UInt64] = []
            for seed in first..<first + count {
                let result = NodeSimulator<KeyValueStore>.run(seed: seed, options: Self.environmentOptions)
                if let failure = result.failure {
                    failed.append(seed)
                    print(failure)
                }
            }
            return failed
        }
        print("node simulation: \(count) seeds from \(first), \(failed.count) failed\(failed.isEmpty ? "" : ": \(failed)")")
        #expect(failed.isEmpty)
    }

    /// Long mode's and replay's options: the defaults, with `FLOTILLA_NODESIM_PLANT=ack` planting
    /// the follower that acknowledges before its fsync.
    static var environmentOptions: NodeSimulationOptions {
        var options = NodeSimulationOptions()
        if ProcessInfo.processInfo.environment["FLOTILLA_NODESIM_PLANT"] == "ack" { options.plantedBugs = .acknowledgeBeforeSync }
        return options
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["FLOTILLA_NODESIM_REPLAY"] != nil))
    func replay() async {
        let seed = ProcessInfo.processInfo.environment["FLOTILLA_NODESIM_REPLAY"].flatMap(UInt64.init) ?? 0
        let result = await onOwnThread { NodeSimulator<KeyValueStore>.replay(seed: seed, options: Self.environmentOptions) }
        #expect(result.failure == nil)
    }
}
