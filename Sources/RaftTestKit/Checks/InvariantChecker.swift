import Raft

/// What the checker observes of a cluster: its nodes, their status and their persisted logs.
/// `SimulatedNetwork` and `ClusterSimulator` conform.
public protocol InvariantSubject {
    /// The ids of the nodes to check, in increasing order.
    var nodeIDs: [UInt64] { get }
    /// The node's current status, or nil if it is not running. Its `hardState` must describe
    /// the log `log(id)` returns (the persisted one, when that lags the node's volatile state).
    func status(_ id: UInt64) -> Status?
    /// The node's persisted log after its snapshot: contiguous entries, in index order.
    func log(_ id: UInt64) -> [Entry]
}

extension SimulatedNetwork: InvariantSubject {
    public var nodeIDs: [UInt64] { nodes.keys.sorted() }
}

/// A log as contiguous entries from index `first` through `last` (empty when `last < first`).
struct IndexedLog {
    let entries: [Entry]
    let first: UInt64
    var last: UInt64 { first + UInt64(entries.count) - 1 }

    init(_ entries: [Entry]) {
        self.entries = entries
        first = entries.first?.index ?? 1
    }

    subscript(index: UInt64) -> Entry? {
        guard index >= first, index - first < UInt64(entries.count) else { return nil }
        return entries[Int(index - first)]
    }
}

/// Checks the Raft safety properties (Raft paper Figure 3) over everything a `SimulatedNetwork`
/// (or any `InvariantSubject`) has observed: election safety (one leader per term), log matching, leader completeness,
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
    private var maxCommittedIndex: UInt64 = 0

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
        check(subject: network, changed: changed.map { [$0] })
    }

    /// Checks the nodes in `changed` (every node when nil) of any cluster against every other:
    /// election safety, commit monotonicity, committed entries never changing, log matching and
    /// leader completeness.
    public mutating func check(subject: some InvariantSubject, changed: [UInt64]? = nil) {
        let ids = subject.nodeIDs
        var logs: [UInt64: IndexedLog] = [:]
        func log(_ id: UInt64) -> IndexedLog {
            if let l = logs[id] { return l }
            let l = IndexedLog(subject.log(id))
            logs[id] = l
            return l
        }
        let subjects = changed ?? ids
        for id in subjects {
            guard let status = subject.status(id) else { continue }
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
            let from = Swift.max((lastCommit[id] ?? 0) + 1, mine.first)
            if commit >= from {
                for index in from...commit {
                    guard let e = mine[index] else { continue }  // compacted into a snapshot
                    if let known = committed[index] {
                        if known.entry.term != e.term || known.entry.data != e.data {
                            record("committed entry changed at \(index): \(describe(known.entry)) vs \(describe(e)) on node \(id)")
                        }
                    } else {
                        committed[index] = (e, term)
                        maxCommittedIndex = Swift.max(maxCommittedIndex, index)
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
            if status.raftState == .leader, maxCommittedIndex >= mine.first {
                for index in mine.first...maxCommittedIndex {
                    guard let known = committed[index], known.term < term else { continue }
                    if let e = mine[index] {
                        if e.term != known.entry.term {
                            record("leader completeness: leader \(id) of term \(term) has \(describe(e)) at \(index) where \(describe(known.entry)) was committed")
                        }
                    } else if index > mine.last, !mine.entries.isEmpty {
                        // (An empty log says nothing: it may all be in the snapshot.)
                        record("leader completeness: leader \(id) of term \(term) lacks committed \(describe(known.entry))")
                        break
                    }
                }
            }
        }
    }

    private mutating func checkLogMatching(_ a: UInt64, _ la: IndexedLog, _ b: UInt64, _ lb: IndexedLog) {
        let low = Swift.max(la.first, lb.first)
        let high = Swift.min(la.last, lb.last)
        guard low <= high else { return }
        // The highest index where both logs hold the same term…
        var top = high
        while la[top]!.term != lb[top]!.term {
            if top == low { return }
            top -= 1
        }
        // …and everything below it (that both still hold) must be identical.
        for index in low...top {
            let e = la[index]!, f = lb[index]!
            if f.term != e.term || f.type != e.type || f.data != e.data {
                record("log matching: nodes \(a) and \(b) agree at \(top) but differ at \(index): \(describe(e)) vs \(describe(f))")
                return
            }
        }
    }

    private func describe(_ e: Entry) -> String {
        "(index \(e.index), term \(e.term), \(e.type), \(e.data.count) bytes)"
    }
}
