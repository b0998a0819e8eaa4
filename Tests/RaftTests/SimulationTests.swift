import Foundation
import Testing
@testable import Raft
import RaftTestKit

/// The seeded cluster simulator (issue 4): random schedules of faults over real RawNodes, every
/// safety property checked after every step, liveness once the faults stop.
@Suite struct SimulationTests {
    /// Seeds CI runs: `ciSeeds` seeds of `ciSteps` steps each, in a few batches (so that a
    /// failure names a small range).
    static let ciSeeds: UInt64 = 240
    static let ciSteps = 600
    static let batches: [ClosedRange<UInt64>] = stride(from: 1, through: ciSeeds, by: 40).map { $0...min($0 + 39, ciSeeds) }

    @Test(arguments: batches)
    func seeds(_ range: ClosedRange<UInt64>) {
        var total = SimulationStats()
        for seed in range {
            let result = ClusterSimulator.run(seed: seed, steps: Self.ciSteps)
            total.add(result.stats)
            if let failure = result.failure {
                Issue.record("\(failure)")
                return
            }
        }
        // The schedule must actually exercise the cluster.
        #expect(total.acknowledgedWrites > 0)
        #expect(total.readsAnswered > 0)
        #expect(total.leaderTerms > 0)
    }

    @Test func sameSeedSameRun() {
        let a = ClusterSimulator.run(seed: 42, steps: 400)
        let b = ClusterSimulator.run(seed: 42, steps: 400)
        #expect(a.stats == b.stats)
        #expect(a.options == b.options)
    }

    @Test func scheduleExercisesEveryFeature() {
        var total = SimulationStats()
        for seed: UInt64 in 1000..<1040 { total.add(ClusterSimulator.run(seed: seed, steps: 800).stats) }
        #expect(total.crashes > 0 && total.crashesBeforePersist > 0 && total.restarts > 0)
        #expect(total.confChangesApplied > 0)
        #expect(total.snapshotsSent > 0 && total.snapshotsRestored > 0)
        #expect(total.transfers > 0 && total.partitions > 0)
        #expect(total.duplicated > 0 && total.reordered > 0 && total.dropped > 0)
    }

    /// The checker itself must not pass silently.
    @Test func brokenInvariantIsDetected() {
        struct TwoLeaders: InvariantSubject {
            var nodeIDs: [UInt64] { [1, 2] }
            func status(_ id: UInt64) -> Status? {
                Status(id: id, hardState: HardState(term: 3, vote: id, commit: 0), lead: id, raftState: .leader)
            }
            func log(_ id: UInt64) -> [Entry] { [] }
        }
        var checker = InvariantChecker()
        checker.check(subject: TwoLeaders())
        #expect(checker.violations.count == 1)
        #expect(checker.violations.first?.contains("election safety") == true)
    }

    @Test func divergentCommittedLogsAreDetected() {
        struct Divergent: InvariantSubject {
            var nodeIDs: [UInt64] { [1, 2] }
            func status(_ id: UInt64) -> Status? {
                Status(id: id, hardState: HardState(term: 2, commit: 3), raftState: .follower)
            }
            func log(_ id: UInt64) -> [Entry] {
                [Entry(term: 1, index: 2, data: [1]), Entry(term: 1, index: 3, data: [id == 1 ? 2 : 9])]
            }
        }
        var checker = InvariantChecker()
        checker.check(subject: Divergent())
        #expect(checker.violations.contains { $0.contains("log matching") })
        #expect(checker.violations.contains { $0.contains("committed entry changed") })
    }

    /// Many seeds, run on demand:
    /// `FLOTILLA_SIM_SEEDS=20000 FLOTILLA_SIM_STEPS=2000 swift test -c release --filter SimulationTests/long`
    /// (`FLOTILLA_SIM_FIRST` picks the first seed; default 1).
    @Test func long() {
        let env = ProcessInfo.processInfo.environment
        guard let seeds = env["FLOTILLA_SIM_SEEDS"].flatMap(UInt64.init) else {
            print("SimulationTests/long: set FLOTILLA_SIM_SEEDS (and FLOTILLA_SIM_STEPS, FLOTILLA_SIM_FIRST) to run it")
            return
        }
        let steps = env["FLOTILLA_SIM_STEPS"].flatMap(Int.init) ?? 2000
        let first = env["FLOTILLA_SIM_FIRST"].flatMap(UInt64.init) ?? 1
        var total = SimulationStats()
        var failures: [SimulationFailure] = []
        for seed in first..<first + seeds {
            let result = ClusterSimulator.run(seed: seed, steps: steps)
            total.add(result.stats)
            if let failure = result.failure {
                failures.append(failure)
                print(failure)
            }
        }
        print("SimulationTests/long: \(seeds) seeds from \(first), \(steps) steps each: \(failures.count) failures; \(total)")
        #expect(failures.isEmpty, "failing seeds: \(failures.map(\.seed))")
    }

    /// Replays one seed, printing every step:
    /// `FLOTILLA_SIM_REPLAY=17 FLOTILLA_SIM_STEPS=600 swift test --filter SimulationTests/replay`
    @Test func replay() {
        let env = ProcessInfo.processInfo.environment
        guard let seed = env["FLOTILLA_SIM_REPLAY"].flatMap(UInt64.init) else { return }
        let steps = env["FLOTILLA_SIM_STEPS"].flatMap(Int.init) ?? Self.ciSteps
        let result = ClusterSimulator.replay(seed: seed, steps: steps)
        #expect(result.passed)
    }
}
