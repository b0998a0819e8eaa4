/// The membership as the tracker sees it (etcd's tracker.Config).
struct TrackerConfig: Sendable, Hashable {
    var voters = JointConfig()
    /// Leave the joint configuration automatically once it is applied.
    var autoLeave = false
    /// Learners: they receive the log but do not vote. Never also a voter.
    var learners = MajorityConfig()
    /// Nodes that become learners when the joint configuration is left; they are still voters
    /// in the outgoing half until then.
    var learnersNext = MajorityConfig()

    var confState: ConfState {
        ConfState(
            voters: voters.incoming.ids, learners: learners.ids, votersOutgoing: voters.outgoing.ids,
            learnersNext: learnersNext.ids, autoLeave: autoLeave)
    }
}

/// Progress of every member, sorted by id so that iteration (and therefore message order)
/// is deterministic. Small clusters make linear lookup cheaper than hashing.
struct ProgressMap: Sendable, Hashable {
    private(set) var all: [Progress] = []

    var count: Int { all.count }
    var ids: [UInt64] { all.map(\.id) }

    @inline(__always)
    func index(of id: UInt64) -> Int? {
        var i = 0
        while i < all.count {
            if all[i].id == id { return i }
            i += 1
        }
        return nil
    }

    subscript(id: UInt64) -> Progress? {
        get { index(of: id).map { all[$0] } }
        set {
            if let i = index(of: id) {
                if let newValue { all[i] = newValue } else { all.remove(at: i) }
            } else if let newValue {
                var i = 0
                while i < all.count && all[i].id < id { i += 1 }
                all.insert(newValue, at: i)
            }
        }
    }

    subscript(position position: Int) -> Progress {
        get { all[position] }
        _modify { yield &all[position] }
    }

    func contains(_ id: UInt64) -> Bool { index(of: id) != nil }

    /// `id`'s match index, read in place (a `Progress` copy would retain its inflights buffer).
    @inline(__always)
    func match(of id: UInt64) -> UInt64? {
        guard let i = index(of: id) else { return nil }
        return all[i].match
    }
}

/// Tracks the configuration, every member's replication progress and the votes of the current
/// election (etcd's tracker.ProgressTracker).
struct ProgressTracker: Sendable {
    var config = TrackerConfig()
    var progress = ProgressMap()
    /// Votes received in the current (pre-)election: id → granted.
    var votes: [UInt64: Bool] = [:]
    let maxInflight: Int
    let maxInflightBytes: UInt64

    init(maxInflight: Int, maxInflightBytes: UInt64) {
        self.maxInflight = maxInflight
        self.maxInflightBytes = maxInflightBytes
    }

    var confState: ConfState { config.confState }

    /// Only one voter, no joint config: this node decides alone.
    var isSingleton: Bool {
        config.voters.incoming.count == 1 && config.voters.outgoing.isEmpty
    }

    /// The largest index acknowledged by a quorum of the (joint) configuration.
    func committed() -> UInt64 {
        // Capture only the progress array: capturing `self` would copy the whole tracker.
        let progress = self.progress
        return config.voters.committedIndex { id in progress.match(of: id) ?? 0 }
    }

    /// Whether a quorum was heard from recently (CheckQuorum).
    func quorumActive() -> Bool {
        let progress = self.progress
        return config.voters.voteResult { id in
            guard let pr = progress[id], !pr.isLearner else { return nil }
            return pr.recentActive
        } == .won
    }

    /// Voters, sorted (both halves of a joint config).
    var voterIDs: [UInt64] { config.voters.ids }

    mutating func resetVotes() { votes.removeAll(keepingCapacity: true) }

    /// Records `id`'s vote; later votes from the same node do not change the first.
    mutating func recordVote(_ id: UInt64, granted: Bool) {
        if votes[id] == nil { votes[id] = granted }
    }

    /// Counts the votes: (granted, rejected, result).
    func tallyVotes() -> (granted: Int, rejected: Int, result: VoteResult) {
        var granted = 0
        var rejected = 0
        for pr in progress.all where !pr.isLearner {
            guard let v = votes[pr.id] else { continue }
            if v { granted += 1 } else { rejected += 1 }
        }
        let votes = self.votes
        return (granted, rejected, config.voters.voteResult { votes[$0] })
    }

    /// The ack result for a set of acknowledgements (ReadIndex).
    func voteResult(acks: Set<UInt64>) -> VoteResult {
        config.voters.voteResult { acks.contains($0) ? true : nil }
    }
}
