import Testing
@testable import Raft
import RaftTestKit

/// Log replication as the Raft paper describes it (§5.3) and its safety rules (§5.4), in the
/// manner of etcd's raft_paper_test.go: one node driven by hand, or a simulated cluster. Logs
/// start with the bootstrap snapshot at (index 1, term 1), which stands for the paper's first entry.
@Suite struct PaperReplicationTests {
    // MARK: - The leader's side (§5.3)

    /// Becoming leader appends an empty entry of the new term and sends it to every follower,
    /// after the leader's previous last entry (§5.4.2, §8).
    @Test func leaderAppendsEmptyEntryOnElection() throws {
        let n = try TestNode(
            id: 1, voters: [1, 2, 3], entries: entries(from: 2, terms: [1, 2]), hardState: HardState(term: 2, commit: 1))
        let sent = try n.becomeLeader()
        #expect(n.term == 3)
        #expect(n.core.log.lastIndex == 4)
        #expect(n.storage.rawEntries.last == Entry(term: 3, index: 4))
        #expect(sent.sorted { $0.to < $1.to } == [2, 3].map {
            Message(type: .append, to: $0, from: 1, term: 3, logTerm: 2, index: 3, entries: [Entry(term: 3, index: 4)], commit: 1)
        })
        // Alone, the leader commits it at once.
        let single = try TestNode(id: 1, voters: [1])
        try single.node.campaign()
        #expect(single.state == .leader)
        #expect(single.takeCommitted() == [Entry(term: 1, index: 2)])
    }

    /// A leader appends a proposal to its log and sends it to its followers in an append that
    /// names the entry before it (prevLogIndex, prevLogTerm) and the leader's commit index.
    @Test func leaderAppendsProposalAndSendsAppends() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        try n.becomeLeader()
        _ = try n.ack(from: 2, index: 2)
        _ = try n.ack(from: 3, index: 2)
        #expect(n.core.log.committed == 2)

        try n.propose(Array("some data".utf8))
        let entry = Entry(term: 1, index: 3, data: Array("some data".utf8))
        #expect(n.core.log.lastIndex == 3)
        #expect(n.core.log.committed == 2)
        #expect(n.core.log.unstable.entries == [entry])
        let sent = n.readMessages().sorted { $0.to < $1.to }
        #expect(sent == [2, 3].map {
            Message(type: .append, to: $0, from: 1, term: 1, logTerm: 1, index: 2, entries: [entry], commit: 2)
        })
        #expect(n.storage.rawEntries.last == entry)
    }

    /// An entry is committed once the leader has replicated it on a majority (itself included),
    /// and not before.
    @Test func leaderCommitsOnceAMajorityAcknowledges() throws {
        let cases: [(size: UInt64, acceptors: [UInt64], committed: Bool)] = [
            (1, [], true),
            (3, [], false),
            (3, [2], true),
            (3, [2, 3], true),
            (5, [], false),
            (5, [2], false),
            (5, [2, 3], true),
            (5, [2, 3, 4], true),
            (5, [2, 3, 4, 5], true),
        ]
        for (i, c) in cases.enumerated() {
            let n = try TestNode(id: 1, voters: Array(1...c.size))
            try n.becomeLeader()
            for peer in 2...max(c.size, 2) where peer <= c.size { _ = try n.ack(from: peer, index: 2) }
            _ = n.takeCommitted()
            try n.propose([UInt8(i)])
            n.readMessages()
            for peer in c.acceptors { _ = try n.ack(from: peer, index: 3) }
            #expect(n.core.log.committed == (c.committed ? 3 : 2), "case \(i): \(c)")
            let committed = n.takeCommitted()
            #expect(committed == (c.committed ? [Entry(term: 1, index: 3, data: [UInt8(i)])] : []), "case \(i)")
        }
    }

    /// Committing an entry of its term commits everything before it, including entries of earlier
    /// terms the leader inherited (§5.3).
    @Test func leaderCommitsPrecedingEntries() throws {
        let logs: [[Entry]] = [
            [],
            entries(from: 2, terms: [2]),
            entries(from: 2, terms: [1, 2]),
            entries(from: 2, terms: [1]),
        ]
        for (i, log) in logs.enumerated() {
            let n = try TestNode(id: 1, voters: [1, 2, 3], entries: log, hardState: HardState(term: 2, commit: 1))
            try n.becomeLeader()
            try n.propose(Array("some data".utf8))
            n.readMessages()
            let last = n.core.log.lastIndex
            _ = try n.ack(from: 2, index: last)
            let want = log + [Entry(term: 3, index: UInt64(log.count) + 2), Entry(term: 3, index: last, data: Array("some data".utf8))]
            #expect(n.takeCommitted() == want, "case \(i)")
        }
    }

    /// The leader of term 3 has entries of terms 1 and 2 replicated on a majority; they are not
    /// committed by counting, only once an entry of term 3 is (§5.4.2; etcd's
    /// TestLeaderOnlyCommitsLogFromCurrentTerm).
    @Test func leaderOnlyCommitsEntriesOfItsOwnTermByCounting() throws {
        for (acked, wantCommit) in [(UInt64(2), UInt64(1)), (3, 1), (4, 4)] {
            let n = try TestNode(
                id: 1, voters: [1, 2], entries: entries(from: 2, terms: [1, 2]), hardState: HardState(term: 2, commit: 1))
            try n.becomeLeader()
            try n.propose([])
            n.readMessages()
            #expect(n.core.log.lastIndex == 5)
            _ = try n.ack(from: 2, index: acked)
            #expect(n.core.log.committed == wantCommit, "acknowledged up to \(acked)")
        }
    }

    // MARK: - The follower's side (§5.3)

    /// A follower commits what the leader says is committed, as far as the entries it has from
    /// this leader go, and never moves its commit index back.
    @Test func followerCommitsWhatTheLeaderCommitted() throws {
        let cases: [(ents: [Entry], commit: UInt64, want: UInt64)] = [
            ([dataEntry(2, 1, Array("some data".utf8))], 2, 2),
            ([dataEntry(2, 1, [1]), dataEntry(3, 1, [2])], 3, 3),
            ([dataEntry(2, 1, [1]), dataEntry(3, 1, [2])], 2, 2),
            // The leader's commit index is beyond what it sent: commit the last new entry.
            ([dataEntry(2, 1, [1])], 9, 2),
        ]
        for (i, c) in cases.enumerated() {
            let n = try TestNode(id: 1, voters: [1, 2, 3])
            try n.step(Message(type: .append, to: 1, from: 2, term: 1, logTerm: 1, index: 1, entries: c.ents, commit: c.commit))
            #expect(n.core.log.committed == c.want, "case \(i)")
            #expect(n.takeCommitted() == Array(c.ents.prefix(Int(c.want) - 1)), "case \(i)")
        }
        // Heartbeats carry the commit index too; it never goes back.
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        try n.step(Message(type: .append, to: 1, from: 2, term: 1, logTerm: 1, index: 1,
                           entries: entries(from: 2, terms: [1, 1, 1]), commit: 1))
        #expect(n.core.log.committed == 1)
        _ = try n.stepAndRead(Message(type: .heartbeat, to: 1, from: 2, term: 1, commit: 3))
        #expect(n.core.log.committed == 3)
        let sent = try n.stepAndRead(Message(type: .heartbeat, to: 1, from: 2, term: 1, commit: 2))
        #expect(n.core.log.committed == 3)
        #expect(sent == [Message(type: .heartbeatResponse, to: 2, from: 1, term: 1)])
        #expect(n.takeCommitted().map(\.index) == [2, 3])
    }

    /// The consistency check: a follower accepts an append only if its log holds an entry at
    /// prevLogIndex with prevLogTerm; otherwise it refuses, hinting where the logs may agree (the
    /// last index at or before the probe whose term is at most prevLogTerm, with that term).
    @Test func followerChecksPrevLogIndexAndTerm() throws {
        // Follower log: (1,1) snapshot, (2,1), (3,2); committed 2.
        let cases: [(logTerm: UInt64, index: UInt64, wantIndex: UInt64, reject: Bool, hint: UInt64, hintTerm: UInt64)] = [
            // Matches a committed entry: answers with its commit index.
            (1, 1, 2, false, 0, 0),
            (1, 2, 2, false, 0, 0),
            // Matches an uncommitted entry.
            (2, 3, 3, false, 0, 0),
            // Mismatches an existing entry.
            (1, 3, 3, true, 2, 1),
            (3, 3, 3, true, 3, 2),
            // Beyond the follower's log.
            (2, 4, 4, true, 3, 2),
            (5, 9, 9, true, 3, 2),
        ]
        for (i, c) in cases.enumerated() {
            let n = try TestNode(
                id: 1, voters: [1, 2, 3], entries: entries(from: 2, terms: [1, 2]), hardState: HardState(term: 2, commit: 2))
            // A leader's log holds no term above its own: a probe at logTerm 3 or 5 comes from a
            // leader of at least that term (the gate refuses anything else).
            let term = max(2, c.logTerm)
            let sent = try n.stepAndRead(Message(type: .append, to: 1, from: 2, term: term, logTerm: c.logTerm, index: c.index, commit: 2))
            #expect(sent == [
                Message(type: .appendResponse, to: 2, from: 1, term: term, logTerm: c.hintTerm, index: c.wantIndex,
                        reject: c.reject, rejectHint: c.hint)
            ], "case \(i): \(c)")
            #expect(n.core.log.lastIndex == 3, "case \(i)")
        }
    }

    /// A follower appends what follows the matching entry, deleting any conflicting suffix; it
    /// keeps entries it already has (an old, reordered append truncates nothing).
    @Test func followerAppendsAndTruncatesConflicts() throws {
        let cases: [(index: UInt64, logTerm: UInt64, ents: [Entry], want: [Entry], unstable: [Entry])] = [
            (3, 2, entries(from: 4, terms: [3]), entries(from: 2, terms: [1, 2, 3]), entries(from: 4, terms: [3])),
            (2, 1, entries(from: 3, terms: [3, 4]), entries(from: 2, terms: [1, 3, 4]), entries(from: 3, terms: [3, 4])),
            (1, 1, entries(from: 2, terms: [1]), entries(from: 2, terms: [1, 2]), []),
            (1, 1, entries(from: 2, terms: [3]), entries(from: 2, terms: [3]), entries(from: 2, terms: [3])),
        ]
        for (i, c) in cases.enumerated() {
            let n = try TestNode(
                id: 1, voters: [1, 2, 3], entries: entries(from: 2, terms: [1, 2]), hardState: HardState(term: 2, commit: 1))
            try n.step(Message(type: .append, to: 1, from: 2, term: 4, logTerm: c.logTerm, index: c.index, entries: c.ents, commit: 1))
            #expect(n.core.log.allEntries() == c.want, "case \(i)")
            #expect(n.core.log.unstable.entries == c.unstable, "case \(i)")
            n.readMessages()
            #expect(Array(n.storage.rawEntries.dropFirst()) == c.want, "case \(i): persisted")
        }
    }

    /// The leader's commit index reaches a follower that missed the append carrying it, with the
    /// next heartbeat; a heartbeat never tells a follower to commit beyond what it is known to hold.
    @Test func commitReachesFollowersThroughHeartbeats() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.elect(1)
        // Node 3 gets entries but not the appends that only carry the new commit index.
        let log = MessageLog()
        net.record(into: log) { m in !(m.type == .append && m.to == 3 && m.entries.isEmpty) }
        try net.with(1) { try $0.propose([42]) }
        net.deliverAll()
        #expect(net.commit(1) == 3 && net.commit(2) == 3)
        #expect(net.commit(3) == 2)
        #expect(net.log(3).last == Entry(term: 1, index: 3, data: [42]))
        #expect(net.appliedData(3).isEmpty)

        log.removeAll()
        net.tick(1)
        net.deliverAll()
        #expect(log.of(.heartbeat, to: 3).map(\.commit) == [3])
        #expect(net.commit(3) == 3)
        #expect(net.appliedData(3) == [[42]])

        // A follower that lags behind gets a heartbeat commit of at most its match index.
        net.isolate(3)
        try net.with(1) { try $0.propose([43]) }
        net.deliverAll()
        net.heal()
        log.removeAll()
        net.record(into: log) { m in m.type != .append }
        net.tick(1)
        net.deliverAll()
        #expect(net.commit(1) == 4)
        #expect(log.of(.heartbeat, to: 2).map(\.commit) == [4])
        #expect(log.of(.heartbeat, to: 3).map(\.commit) == [3])
        #expect(net.commit(3) == 3)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - Repairing logs (§5.3, Figures 7 and 8)

    /// Figure 7: when the leader of term 8 comes to power, its followers' logs may be missing
    /// entries (a, b), have extra uncommitted ones (c, d), or both (e, f). The leader forces
    /// every follower's log to duplicate its own.
    @Test(arguments: ["a", "b", "c", "d", "e", "f"])
    func leaderBringsFigure7LogsIntoLine(follower: String) throws {
        let leaderTerms: [UInt64] = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
        let followerTerms: [String: [UInt64]] = [
            "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
            "b": [1, 1, 1, 4],
            "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
            "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
            "e": [1, 1, 1, 4, 4, 4, 4],
            "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
        ]
        // Index 1 is the bootstrap snapshot (term 1); the figure's entries 2… follow it.
        func storage(_ terms: [UInt64]) throws -> MemoryStorage {
            try bootstrappedStorage(
                voters: [1, 2, 3], entries: entries(from: 2, terms: Array(terms.dropFirst())),
                hardState: HardState(term: 7, commit: 3))
        }
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        // Node 3 holds the leader's log and gives it the vote that (c) or (d) would refuse.
        for (id, terms) in [(UInt64(1), leaderTerms), (2, followerTerms[follower]!), (3, leaderTerms)] {
            net.checker.nodeRestarted(id, snapshotIndex: 1)
            try net.add(id: id, storage: storage(terms))
        }
        try net.elect(1)
        #expect(net.leader?.id == 1)
        #expect(net.term(1) == 8)
        try net.with(1) { try $0.propose(Array("x".utf8)) }
        net.deliverAll()

        let want = entries(from: 2, terms: Array(leaderTerms.dropFirst()) + [8]) + [dataEntry(12, 8, Array("x".utf8))]
        #expect(net.log(1) == want)
        #expect(net.log(2) == want, "follower (\(follower))")
        #expect(net.log(3) == want)
        for id: UInt64 in 1...3 {
            #expect(net.commit(id) == 12, "node \(id)")
            #expect(net.appliedData(id) == [Array("x".utf8)], "node \(id)")
        }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// The logs of Figure 8, at (c): S1 leads term 4 and replicates its entry of term 2 (index 2)
    /// to a majority, while S5, crashed, holds a conflicting entry of term 3 there.
    private func figure8() throws -> SimulatedNetwork {
        let net = try SimulatedNetwork(ids: [1, 2, 3, 4, 5])
        let logs: [(UInt64, [Entry], HardState)] = [
            (1, entries(from: 2, terms: [2]), HardState(term: 3, commit: 1)),
            (2, entries(from: 2, terms: [2]), HardState(term: 2, commit: 1)),
            (3, [], HardState(term: 3, vote: 5, commit: 1)),
            (4, [], HardState(term: 3, vote: 5, commit: 1)),
            (5, entries(from: 2, terms: [3]), HardState(term: 3, vote: 5, commit: 1)),
        ]
        for (id, log, hs) in logs {
            // One entry per append, so that index 2 and the leader's index 3 travel separately.
            net.checker.nodeRestarted(id, snapshotIndex: 1)
            try net.add(id: id, storage: bootstrappedStorage(voters: [1, 2, 3, 4, 5], entries: log, hardState: hs)) {
                $0.maxSizePerMsg = 0
            }
        }
        net.remove(id: 5)
        // S3 and S4 receive index 2 (once they said they lack it) but not the term-4 entry after it.
        let acked = Box<Set<UInt64>>([])
        net.filter = { m in
            if m.type == .appendResponse && !m.reject && m.index >= 2 { acked.value.insert(m.from) }
            let dropped = m.type == .append && (m.to == 3 || m.to == 4) && acked.value.contains(m.to)
                && m.entries.contains { $0.index >= 3 }
            return !dropped
        }
        try net.elect(1)
        #expect(net.leader?.id == 1)
        #expect(net.term(1) == 4)
        for id: UInt64 in 1...4 {
            #expect(net.log(id).first == Entry(term: 2, index: 2), "node \(id) holds (2, term 2)")
            #expect(net.commit(id) == 1, "node \(id): an entry of term 2 is not committed by counting replicas")
        }
        #expect(net.log(1).map(\.index) == [2, 3])
        #expect(net.log(3).map(\.index) == [2])
        net.filter = nil
        return net
    }

    /// Figure 8 (d): had S1 committed index 2 by counting, S1 could now crash and S5 be elected
    /// (by S2, S3, S4: its last term 3 beats their term 2) and overwrite it. It does — which is
    /// safe only because index 2 was never committed.
    @Test func figure8UncommittedOldTermEntryCanBeOverwritten() throws {
        let net = try figure8()
        net.remove(id: 1)
        try net.add(id: 5, storage: net.storages[5]!) { $0.maxSizePerMsg = 0 }
        // Term 4 is taken (S2–S4 voted for S1): S5's first attempt fails, its second wins.
        try net.elect(5)
        #expect(net.state(5) == .follower && net.term(5) == 4)
        try net.elect(5)
        #expect(net.leader?.id == 5)
        #expect(net.term(5) == 5)
        try net.with(5) { try $0.propose([5]) }
        net.deliverAll()
        for id: UInt64 in 2...5 {
            #expect(net.log(id).first == Entry(term: 3, index: 2), "node \(id)")
            #expect(net.commit(id) == 4, "node \(id)")
            #expect(net.appliedData(id) == [[5]], "node \(id)")
        }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// Figure 8 (e): once S1 replicates an entry of its own term (index 3, term 4) on a majority,
    /// that entry and index 2 before it are committed.
    @Test func figure8OldTermEntryCommitsWithCurrentTermEntry() throws {
        let net = try figure8()
        net.tick(1)  // a heartbeat round: S3 and S4 are sent what they miss
        net.deliverAll()
        for id: UInt64 in 1...4 {
            #expect(net.log(id) == [Entry(term: 2, index: 2), Entry(term: 4, index: 3)], "node \(id)")
            #expect(net.commit(id) == 3, "node \(id)")
            #expect(net.applied[id]?.map(\.index) == [2, 3], "node \(id)")
        }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A follower with a long divergent tail is repaired in a few round trips: the rejection
    /// hint (index, term) lets the leader skip every entry of a term at once, so the number of
    /// probes depends on the number of terms, not of entries.
    @Test func rejectHintsSkipWholeTerms() throws {
        let cases: [(leader: [UInt64], follower: [UInt64], maxRejections: Int)] = [
            // A long tail of a single older term, longer than the leader's log.
            ([1] + Array(repeating: 3, count: 8), [1] + Array(repeating: 2, count: 100), 1),
            // The follower is far behind, with a short tail of an older term.
            ([1] + Array(repeating: 3, count: 100), [1] + Array(repeating: 2, count: 3), 1),
            // Several older terms on the follower.
            ([1] + Array(repeating: 5, count: 10),
             [1] + Array(repeating: 2, count: 30) + Array(repeating: 3, count: 30) + Array(repeating: 4, count: 30), 1),
            // Interleaved terms on both sides: at most one probe per term.
            ([1] + Array(repeating: 2, count: 20) + Array(repeating: 4, count: 20) + Array(repeating: 6, count: 20),
             [1] + Array(repeating: 2, count: 10) + Array(repeating: 3, count: 20) + Array(repeating: 5, count: 40), 4),
        ]
        for (i, c) in cases.enumerated() {
            let net = try SimulatedNetwork(ids: [1, 2, 3])
            let term = max(c.leader.max()!, c.follower.max()!)
            for (id, terms) in [(UInt64(1), c.leader), (2, c.follower), (3, c.leader)] {
                net.checker.nodeRestarted(id, snapshotIndex: 1)
                try net.add(
                    id: id,
                    storage: bootstrappedStorage(voters: [1, 2, 3], entries: entries(from: 2, terms: terms), hardState: HardState(term: term, commit: 2)))
            }
            let log = MessageLog()
            net.record(into: log)
            try net.elect(1)
            #expect(net.leader?.id == 1, "case \(i)")
            let rejections = log.of(.appendResponse, from: 2).filter(\.reject).count
            #expect(rejections >= 1 && rejections <= c.maxRejections, "case \(i): \(rejections) rejections")
            #expect(net.log(2) == net.log(1), "case \(i)")
            #expect(net.commit(2) == net.commit(1), "case \(i)")
            #expect(net.commit(1) == UInt64(c.leader.count) + 2, "case \(i)")
            #expect(net.checker.violations.isEmpty, "case \(i): \(net.checker.violations)")
        }
    }

    /// Logs converge after a period of random message loss: once the network heals, every log
    /// is identical and everything is committed and applied in the same order everywhere.
    @Test(arguments: [UInt64(1), 2, 3, 4, 5])
    func logsConvergeAfterRandomDrops(seed: UInt64) throws {
        let ids: [UInt64] = [1, 2, 3, 4, 5]
        let net = try SimulatedNetwork(ids: ids, seed: seed) { $0.randomSeed = seed }
        try net.elect(1)
        for a in ids {
            for b in ids where a != b { net.drop(from: a, to: b, rate: 0.3) }
        }
        var proposed: [[UInt8]] = []
        for round in 0..<300 {
            if round % 3 == 0, let leader = net.leaders.max(by: { $0.term < $1.term }) {
                let data = [UInt8(round % 256), UInt8(round / 256)]
                if (try? net.with(leader.id, { try $0.propose(data) })) != nil { proposed.append(data) }
            }
            net.run(rounds: 1)
        }
        net.heal()
        net.run(rounds: 50)
        let leader = try #require(net.leader)
        try net.with(leader.id) { try $0.propose(Array("end".utf8)) }
        net.deliverAll()
        net.run(rounds: 5)

        let reference = net.log(leader.id)
        #expect(reference.last?.data == Array("end".utf8))
        let applied = net.appliedData(leader.id)
        #expect(applied.count > 10, "some proposals survived the losses: \(applied.count)")
        // Applied data is a subsequence of what was proposed, in order.
        var rest = proposed[...]
        for data in applied.dropLast() {
            guard let at = rest.firstIndex(of: data) else {
                Issue.record("applied \(data) out of order or never proposed")
                break
            }
            rest = rest[(at + 1)...]
        }
        for id in ids {
            #expect(net.log(id) == reference, "node \(id)")
            #expect(net.commit(id) == reference.last?.index, "node \(id)")
            #expect(net.appliedData(id) == applied, "node \(id)")
            #expect(net.status(id)?.lead == leader.id, "node \(id)")
        }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - Flow control

    /// Appends carry at most maxSizePerMsg bytes of entries, but always at least one entry;
    /// 0 sends one entry per append.
    @Test(arguments: [UInt64(0), 1, 18, 36, 55, 90, 1 << 20])
    func appendsArePaginatedByMaxSizePerMsg(limit: UInt64) throws {
        let n = try TestNode(id: 1, voters: [1, 2]) { $0.maxSizePerMsg = limit }
        try n.becomeLeader()
        // Node 2 has not answered the probe: proposals pile up.
        let payloads = (0..<20).map { Array(repeating: UInt8($0), count: 10) }
        for p in payloads { try n.propose(p) }
        #expect(n.readMessages().isEmpty)
        let sent = try n.ack(from: 2, index: 2).filter { $0.type == .append && !$0.entries.isEmpty }

        let size = Entry(term: 1, index: 3, data: payloads[0]).byteSize
        #expect(size == 18)
        let perAppend = max(1, Int(limit / size))
        #expect(sent.count == (20 + perAppend - 1) / perAppend, "limit \(limit)")
        for m in sent {
            let bytes = m.entries.reduce(0) { $0 + $1.byteSize }
            #expect(m.entries.count == 1 || bytes <= limit, "\(m.entries.count) entries, \(bytes) bytes > \(limit)")
        }
        #expect(sent.flatMap(\.entries).map(\.data) == payloads)
        #expect(sent.flatMap(\.entries).map(\.index) == Array(3...22))
        // Each append follows the previous one.
        for (a, b) in zip(sent, sent.dropFirst()) { #expect(b.index == a.entries.last!.index) }
    }

    /// An entry larger than maxSizePerMsg still goes out, alone.
    @Test func entryLargerThanTheLimitIsSentAlone() throws {
        let n = try TestNode(id: 1, voters: [1, 2]) { $0.maxSizePerMsg = 50 }
        try n.becomeLeader()
        try n.propose(Array(repeating: 1, count: 10))
        try n.propose(Array(repeating: 2, count: 200))
        try n.propose(Array(repeating: 3, count: 10))
        n.readMessages()
        let sent = try n.ack(from: 2, index: 2).filter { $0.type == .append && !$0.entries.isEmpty }
        #expect(sent.map { $0.entries.map(\.data.count) } == [[10], [200], [10]])
    }

    /// With maxInflightMsgs = 3, a leader whose follower does not answer sends it three appends,
    /// then pauses; a heartbeat answer lets one more go, and the follower catches up.
    @Test func inflightWindowPausesAnUnresponsiveFollower() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.maxInflightMsgs = 3 }
        try net.elect(1)
        #expect(net.status(1)?.progress[2]?.state == .replicate)
        net.drop(from: 2, to: 1)
        let log = MessageLog()
        net.record(into: log)
        for i in 0..<10 {
            try net.with(1) { try $0.propose([UInt8(i)]) }
            net.deliverAll()
        }
        // Appends without entries (carrying a new commit index) do not take a slot of the
        // window; but once it is full nothing more goes out, not even those.
        let toTwo = log.of(.append, from: 1, to: 2)
        #expect(toTwo.filter { !$0.entries.isEmpty }.map { $0.entries.map(\.index) } == [[3], [4], [5]])
        #expect(toTwo.last?.entries.map(\.index) == [5])
        #expect(log.of(.append, from: 1, to: 3).count >= 10)
        #expect(net.commit(1) == 12, "node 3 keeps the quorum")
        let progress = try #require(net.status(1)?.progress[2])
        #expect(progress.inflights.count == 3)
        #expect(progress.isPaused)
        #expect(progress.match == 2)

        net.heal()
        log.removeAll()
        net.tick(1)
        net.deliverAll()
        #expect(log.of(.append, from: 1, to: 2).first?.entries.map(\.index) == Array(6...12))
        #expect(net.log(2) == net.log(1))
        #expect(net.status(1)?.progress[2]?.match == 12)
        #expect(net.status(1)?.progress[2]?.inflights.count == 0)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// In the probe state the leader sends one append and waits for its answer (or for a
    /// heartbeat answer, which lets it try again); once the follower acknowledges, replication
    /// becomes optimistic.
    @Test func probeSendsOneAppendAtATime() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        let first = try n.becomeLeader()
        #expect(first.filter { $0.to == 2 }.map(\.type) == [.append])
        #expect(n.node.status.progress[2]?.state == .probe)
        for i in 0..<3 { try n.propose([UInt8(i)]) }
        #expect(n.readMessages().isEmpty, "both followers wait for an answer to their probe")

        n.tick()
        #expect(n.readMessages().map(\.type) == [.heartbeat, .heartbeat])
        var sent = try n.stepAndRead(Message(type: .heartbeatResponse, to: 1, from: 2, term: 1))
        #expect(sent.map(\.type) == [.append])
        #expect(sent.first?.to == 2 && sent.first?.index == 1)
        #expect(sent.first?.entries.map(\.index) == [2, 3, 4, 5])
        try n.propose([9])
        #expect(n.readMessages().isEmpty, "still one probe in flight")

        sent = try n.ack(from: 2, index: 5)
        #expect(n.node.status.progress[2]?.state == .replicate)
        #expect(n.core.log.committed == 5)
        let appends = sent.filter { $0.type == .append && $0.to == 2 }
        #expect(appends.flatMap(\.entries).map(\.index) == [6])
        // Replicating: proposals go out at once, without waiting for answers.
        try n.propose([10])
        try n.propose([11])
        let more = n.readMessages().filter { $0.to == 2 }
        #expect(more.map { $0.entries.map(\.index) } == [[7], [8]])
        #expect(n.node.status.progress[3]?.state == .probe)
    }

    /// A follower reported unreachable while replicating falls back to probing from its last
    /// acknowledged index (the appends in flight were probably lost); a probing one is left as is.
    @Test func unreachableFollowerIsProbedAgain() throws {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        try n.becomeLeader()
        _ = try n.ack(from: 2, index: 2)
        try n.propose([1])
        try n.propose([2])
        n.readMessages()
        var pr = try #require(n.node.status.progress[2])
        #expect(pr.state == .replicate && pr.match == 2 && pr.next == 5)
        n.node.reportUnreachable(2)
        pr = try #require(n.node.status.progress[2])
        #expect(pr.state == .probe && pr.match == 2 && pr.next == 3)
        #expect(n.readMessages().isEmpty)
        let probing = try #require(n.node.status.progress[3])
        n.node.reportUnreachable(3)
        #expect(n.node.status.progress[3] == probing)
    }
}
