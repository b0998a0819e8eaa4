import Testing
@testable import Raft
import RaftTestKit

/// Randomized hostile input for the core, seeded and reproducible.
///
/// - `forgedMessagesInASimulatedCluster`: the cluster simulator with every fault on, plus forged
///   messages (`SimulationFeatures.forgedMessages`) stepped beside the real traffic: the ones no
///   correct peer sends must be refused, and every Raft invariant (one leader per term, log
///   matching, leader completeness, state machine safety, linearizable reads) must hold.
/// - `randomMessagesIntoEveryRole`: messages with random and extreme values in every field, from
///   members and strangers, into a node in every role, with and without a snapshot in its log.
///   A forger holding a member's identity can break safety (raft is not Byzantine-tolerant), so
///   this checks what must hold whatever arrives: nothing traps, and the node's own state stays
///   coherent (commit within the log, applied within commit, term and commit never going back).
@Suite struct HostileMessageFuzzTests {
    @Test(arguments: [1...40, 41...80] as [ClosedRange<UInt64>])
    func forgedMessagesInASimulatedCluster(_ seeds: ClosedRange<UInt64>) async {
        var total = SimulationStats()
        for seed in seeds {
            // CPU-bound: let the other tests' tasks run between seeds.
            await Task.yield()
            let result = ClusterSimulator.run(seed: 0xF0_0000 + seed, steps: 1000, features: SimulationFeatures.all.union(.forgedMessages))
            total.add(result.stats)
            if let failure = result.failure {
                Issue.record("\(failure)")
                return
            }
        }
        #expect(total.forged > 20_000)
        #expect(total.forgedRefused > total.forged / 2)
        #expect(total.acknowledgedWrites > 0 && total.leaderTerms > 0)
    }

    enum Role: CaseIterable, Sendable {
        case follower, candidate, preCandidate, leader, learner
    }

    @Test(arguments: Role.allCases)
    func randomMessagesIntoEveryRole(_ role: Role) async throws {
        var rng = SplitMix64(seed: 0xBAD_F00D ^ UInt64(Role.allCases.firstIndex(of: role)!))
        var stepped = 0
        var refused = 0
        for round in 0..<600 {
            if round % 20 == 0 { await Task.yield() }  // CPU-bound: let other tests' tasks run
            let withSnapshot = round % 2 == 1
            let n = try Self.node(in: role, withSnapshot: withSnapshot)
            var lastTerm = n.term
            var lastCommit = n.core.log.committed
            for _ in 0..<80 {
                let m = Self.randomMessage(to: n, rng: &rng)
                do {
                    try n.step(m)
                } catch {
                    refused += 1
                }
                stepped += 1
                _ = n.readMessages()
                let log = n.core.log
                #expect(log.committed <= log.lastIndex, "commit beyond the log after \(m)")
                #expect(log.applied <= log.committed, "applied beyond commit after \(m)")
                #expect(n.term >= lastTerm && log.committed >= lastCommit, "term or commit went back after \(m)")
                #expect(n.term <= Message.valueCeiling + 1)
                lastTerm = n.term
                lastCommit = log.committed
                if n.core.log.lastIndex > 10_000 { break }  // accepted a forged leader's long log
            }
        }
        #expect(stepped >= 45_000)
        #expect(refused > 0 && refused < stepped)
    }

    /// Node 1 of voters 1, 2, 3 (or a learner beside them) in `role`, its log (1…6, terms 1, 2, 2,
    /// 3, 3) committed at 4; with a snapshot, entries up to 3 are compacted away.
    static func node(in role: Role, withSnapshot: Bool) throws -> TestNode {
        let storage = try bootstrappedStorage(
            voters: role == .learner ? [2, 3, 4] : [1, 2, 3], learners: role == .learner ? [1] : [],
            entries: entries(from: 2, terms: [1, 2, 2, 3, 3]), hardState: HardState(term: 3, vote: 0, commit: 4))
        if withSnapshot {
            let cs = role == .learner ? ConfState(voters: [2, 3, 4], learners: [1]) : ConfState(voters: [1, 2, 3])
            _ = try storage.createSnapshot(3, confState: cs, data: [1, 2, 3])
            try storage.compact(3)
        }
        let n = try TestNode(id: 1, storage: storage) { $0.preVote = role == .preCandidate; $0.checkQuorum = true }
        switch role {
        case .follower, .learner:
            _ = try n.stepAndRead(Message(type: .heartbeat, to: 1, from: 2, term: 3, commit: 4))
        case .candidate, .preCandidate:
            try n.node.campaign()
            _ = n.readMessages()
        case .leader:
            try n.becomeLeader()
        }
        return n
    }

    static func value(near: UInt64, rng: inout SplitMix64) -> UInt64 { rng.extremeValue(near: near) }

    static let types = MessageType.allCases.filter { !$0.isLocal }

    static func randomMessage(to n: TestNode, rng: inout SplitMix64) -> Message {
        let term = n.term
        let last = n.core.log.lastIndex
        let type = types[Int(rng.next() % UInt64(types.count))]
        let senders: [UInt64] = [2, 3, 4, 2, 3, 77, .max, 0]
        let from = senders[Int(rng.next() % UInt64(senders.count))]
        let forwarded = type == .proposal || type == .readIndex
        var m = Message(
            type: type, to: 1, from: from, term: forwarded && rng.next() % 4 != 0 ? 0 : value(near: term, rng: &rng),
            logTerm: value(near: term, rng: &rng), index: value(near: last, rng: &rng),
            commit: value(near: n.core.log.committed, rng: &rng), reject: rng.next() % 2 == 0,
            rejectHint: value(near: last, rng: &rng), context: rng.next() % 3 == 0 ? [UInt8(rng.next() % 4)] : [])
        if type == .append || forwarded || type == .readIndexResponse {
            let count = Int(rng.next() % 4)
            let contiguous = rng.next() % 3 != 0
            m.entries = (0..<count).map { k in
                let index = contiguous ? m.index &+ 1 &+ UInt64(k) : value(near: last, rng: &rng)
                let entryTerm = contiguous ? max(m.logTerm, min(m.term, m.logTerm &+ UInt64(k))) : value(near: term, rng: &rng)
                let kind: EntryType = rng.next() % 5 == 0 ? .confChange : .normal
                let data: [UInt8] = kind == .confChange
                    ? ConfChange(type: .addNode, nodeID: 1 + rng.next() % 5).serializedBytes()
                    : [UInt8(truncatingIfNeeded: k)]
                return Entry(term: entryTerm, index: index, type: kind, data: data)
            }
        }
        if type == .snapshot {
            let configs = [ConfState(voters: [1, 2, 3]), ConfState(voters: [2, 3]), ConfState(voters: [1], learners: [1]),
                           ConfState(voters: [2, 3, 4], learners: [1]), ConfState()]
            m.snapshot = Snapshot(
                data: [9], metadata: SnapshotMetadata(
                    confState: configs[Int(rng.next() % UInt64(configs.count))],
                    index: value(near: last, rng: &rng), term: value(near: term, rng: &rng)))
        }
        return m
    }
}
