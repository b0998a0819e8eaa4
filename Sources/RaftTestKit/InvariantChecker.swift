import Raft

/// Checks the Raft safety properties (Raft paper Figure 3) over everything a `SimulatedNetwork`
/// has observed: election safety (one leader per term), log matching, leader completeness,
/// state machine safety, and that commit and applied indices never go back.
public struct InvariantChecker {
    /// Every violation seen, in order; a correct implementation leaves it empty.
    public private(set) var violations: [String] = []
    /// The leader of each term seen so far.
    public private(set) var leaderOfTerm: [UInt64: UInt64] = [:]
    /// Entries known committed: index → (entry, the lowest term at which a node saw it committed).
    public private(set) var committed: [UInt64: (entry: Entry, term: UInt64)] = [:]
    /// Entries applied by any node: index → entry.
    private var appliedAt: [UInt64: Entry] = [:]
    private var lastApplied: [UInt64: UInt64] = [:]
    private var lastCommit: [UInt64: UInt64] = [:]

    public init() {}

    public mutating func record(_ violation: String) {
        violations.append(violation)
    }

    /// A node restarted from its storage: its volatile commit and applied indices start over.
    public mutating func nodeRestarted(_ id: UInt64, snapshotIndex: UInt64) {
        lastApplied[id] = snapshotIndex
        lastCommit[id] = nil
    }

    mutating func nodeRestoredSnapshot(_ id: UInt64, _ snapshot: Snapshot) {
        let index = snapshot.metadata.index
        if let last = lastApplied[id], index < last {
            record("node \(id): restored snapshot at \(index) below its applied index \(last)")
        }
        lastApplied[id] = index
    }

    mutating func nodeApplied(_ id: UInt64, _ entries: [Entry]) {
        for e in entries {
            let expected = (lastApplied[id] ?? 0) + 1
            if lastApplied[id] != nil, e.index != expected {
                record("node \(id): applied index \(e.index), expected \(expected) (applied must be contiguous)")
            }
            lastApplied[id] = e.index
            if let other = appliedAt[e.index] {
                if other.term != e.term || other.data != e.data || other.type != e.type {
                    record("state machine safety: node \(id) applied \(describe(e)) where another node applied \(describe(other))")
                }
            } else {
                appliedAt[e.index] = e
            }
        }
    }

    /// Checks every node (after node `changed` handled a Ready, only what it can have broken).
    public mutating func check(_ network: SimulatedNetwork, changed: UInt64? = nil) {
        let ids = network.nodes.keys.sorted()
        var logs: [UInt64: [UInt64: Entry]] = [:]
        func log(_ id: UInt64) -> [UInt64: Entry] {
            if let l = logs[id] { return l }
            var l: [UInt64: Entry] = [:]
            for e in network.log(id) { l[e.index] = e }
            logs[id] = l
            return l
        }
        let subjects = changed.map { [$0] } ?? ids
        for id in subjects {
            guard let status = network.status(id) else { continue }
            let term = status.hardState.term
            // Election safety: at most one leader per term.
            if status.raftState == .leader {
                if let other = leaderOfTerm[term], other != id {
                    record("election safety: nodes \(other) and \(id) both lead term \(term)")
                } else {
                    leaderOfTerm[term] = id
                }
            }
            // Commit never goes back.
            let commit = status.hardState.commit
            if let previous = lastCommit[id], commit < previous {
                record("node \(id): commit went back from \(previous) to \(commit)")
            }
            // Record newly committed entries; a committed entry must never change.
            let mine = log(id)
            let from = (lastCommit[id] ?? 0) + 1
            if commit >= from {
                for index in from...commit {
                    guard let e = mine[index] else { continue }  // compacted into a snapshot
                    if let known = committed[index] {
                        if known.entry.term != e.term || known.entry.data != e.data {
                            record("committed entry changed at \(index): \(describe(known.entry)) vs \(describe(e)) on node \(id)")
                        }
                    } else {
                        committed[index] = (e, term)
                    }
                }
            }
            lastCommit[id] = Swift.max(commit, lastCommit[id] ?? 0)
            // Log matching: if two logs have an entry with the same index and term, they are
            // identical up to it.
            for other in ids where other != id {
                checkLogMatching(id, mine, other, log(other))
            }
            // Leader completeness: a leader holds every entry committed in an earlier term.
            if status.raftState == .leader {
                for (index, known) in committed where known.term < term {
                    if let e = mine[index], e.term != known.entry.term {
                        record("leader completeness: leader \(id) of term \(term) has \(describe(e)) at \(index) where \(describe(known.entry)) was committed")
                    } else if mine[index] == nil, let last = mine.keys.max(), index > last {
                        record("leader completeness: leader \(id) of term \(term) lacks committed \(describe(known.entry))")
                    }
                }
            }
        }
    }

    private mutating func checkLogMatching(_ a: UInt64, _ la: [UInt64: Entry], _ b: UInt64, _ lb: [UInt64: Entry]) {
        // The highest index where both logs hold the same term…
        var match: UInt64?
        for (index, e) in la where lb[index]?.term == e.term {
            if match == nil || index > match! { match = index }
        }
        guard let top = match else { return }
        // …and everything below it (that both still hold) must be identical.
        for (index, e) in la where index <= top {
            if let f = lb[index], f.term != e.term || f.data != e.data || f.type != e.type {
                record("log matching: nodes \(a) and \(b) agree at \(top) but differ at \(index): \(describe(e)) vs \(describe(f))")
                return
            }
        }
    }

    private func describe(_ e: Entry) -> String {
        "(index \(e.index), term \(e.term), \(e.type), \(e.data.count) bytes)"
    }
}
