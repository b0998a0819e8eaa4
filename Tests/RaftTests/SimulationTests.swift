import Foundation
import Testing
@testable import Raft
import RaftTestKit

/// The seeded cluster simulator (issue 4): random schedules of faults over real RawNodes, every
/// safety property checked after every step, liveness once the faults stop.
@Suite struct SimulationTests {
    /// Seeds CI runs: `ciSeeds` seeds of `ciSteps` steps each, in a few batches (so that a
    /// failure names a small range).
    static let ciSeeds: UInt64 = 400
    static let ciSteps = 1000
    static let batches: [ClosedRange<UInt64>] = stride(from: 1, through: ciSeeds, by: 40).map { $0...min($0 + 39, ciSeeds) }

    @Test(arguments: batches)
    func seeds(_ range: ClosedRange<UInt64>) async {
        // CPU-bound: on a thread of its own, which the system preempts, so that the suites
        // running real nodes on Swift's cooperative pool meanwhile still elect their leaders.
        let (total, failure) = await onOwnThread { () -> (SimulationStats, String?) in
            var total = SimulationStats()
            for seed in range {
                let result = ClusterSimulator.run(seed: seed, steps: Self.ciSteps)
                total.add(result.stats)
                if let failure = result.failure { return (total, "\(failure)") }
            }
            return (total, nil)
        }
        if let failure {
            Issue.record("\(failure)")
            return
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
    /// `FLOTILLA_SIM_SEEDS=20000 FLOTILLA_SIM_STEPS=2000 swift test -c release -Xswiftc -enable-testing --filter SimulationTests/long`
    /// (`FLOTILLA_SIM_FIRST` picks the first seed, default 1; `FLOTILLA_SIM_FEATURES` a
    /// `SimulationFeatures` mask in hex, default `.all`).
    /// Skipped (not passed) without `FLOTILLA_SIM_SEEDS`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["FLOTILLA_SIM_SEEDS"] != nil, "set FLOTILLA_SIM_SEEDS to run it"))
    func long() throws {
        let env = ProcessInfo.processInfo.environment
        let seeds = try #require(env["FLOTILLA_SIM_SEEDS"].flatMap(UInt64.init), "FLOTILLA_SIM_SEEDS must be a number of seeds")
        let steps = env["FLOTILLA_SIM_STEPS"].flatMap(Int.init) ?? 2000
        let first = env["FLOTILLA_SIM_FIRST"].flatMap(UInt64.init) ?? 1
        let features = env["FLOTILLA_SIM_FEATURES"].flatMap { UInt32($0, radix: 16) }.map(SimulationFeatures.init) ?? .all
        var total = SimulationStats()
        var failures: [SimulationFailure] = []
        for seed in first..<first + seeds {
            let result = ClusterSimulator.run(seed: seed, steps: steps, features: features)
            total.add(result.stats)
            if let failure = result.failure {
                failures.append(failure)
                print(failure)
            }
        }
        print("SimulationTests/long: \(seeds) seeds from \(first), \(steps) steps each: \(failures.count) failures; \(total)")
        #expect(failures.isEmpty, "failing seeds: \(failures.map(\.seed))")
    }

    /// Found while building the simulator (etcd's raft has it): a leader's quorum check runs once
    /// per election timeout, so it may lead on for up to two election timeouts after it last heard
    /// from a quorum, while its followers campaign after one. Lease reads are therefore served only
    /// while a quorum answered in the current check window; this directed schedule (random ones
    /// rarely hit the window) shows the old leader never answers below the new commit index.
    @Test func leaseReadAfterQuorumLost() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { c in
            c.checkQuorum = true
            c.readOnlyOption = .leaseBased
        }
        try net.with(1) { try $0.campaign() }
        net.deliverAll()
        // Just past the leader's quorum check, the followers answer once more: the next check,
        // an election timeout later, will pass.
        while net.nodes[1]!.core.electionElapsed != 0 { net.run(rounds: 1) }
        net.run(rounds: 1)
        net.isolate(1)
        var ticks = 0
        while net.state(2) != .leader && net.state(3) != .leader && ticks < 100 {
            net.run(rounds: 1)
            ticks += 1
        }
        let leader: UInt64 = net.state(2) == .leader ? 2 : 3
        try net.with(leader) { try $0.propose([2]) }
        net.deliverAll()
        #expect(net.appliedData(leader) == [[2]])
        let newCommit = net.commit(leader)
        let node = net.nodes[1]!
        node.readIndex([9])
        var reads: [ReadState] = []
        while node.hasReady {
            let rd = node.ready()
            reads += rd.readStates
            node.advance(rd)
        }
        #expect(reads.allSatisfy { $0.index >= newCommit }, "old leader answered \(reads) after n\(leader) committed \(newCommit)")
    }

    /// The transfer variant (etcd-io/raft#99): the transferee's election skips the followers'
    /// leases, so a leader that is handing over serves no lease reads. Seeds 1727 and 4598 (lease
    /// reads forced, transfers on) found stale reads before that rule; they pass now.
    @Test func leaseReadsDuringTransferStayLinearizable() {
        var found = false
        for seed: UInt64 in [1727, 4598] {
            let o = SimulationOptions(nodeCount: 3, preVote: true, checkQuorum: true, readOnlyOption: .leaseBased)
            let result = ClusterSimulator(seed: seed, options: o, features: SimulationFeatures.all.union(.leaseReadsDuringTransfer))
                .run(steps: 400)
            if result.failure?.violation.contains("linearizability") == true { found = true }
        }
        #expect(!found)
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
