/// The outcome of counting votes (or acks) against a configuration.
enum VoteResult: Sendable, Hashable {
    /// Not decided yet: enough voters have not answered.
    case pending
    case lost
    case won
}

/// A set of voters deciding by simple majority (etcd's quorum.MajorityConfig), kept as a
/// sorted array: configurations are small, so scans beat hashing.
struct MajorityConfig: Sendable, Hashable {
    private(set) var ids: [UInt64] = []

    init() {}

    init<S: Sequence>(_ ids: S) where S.Element == UInt64 {
        for id in ids { insert(id) }
    }

    var isEmpty: Bool { ids.isEmpty }
    var count: Int { ids.count }

    func contains(_ id: UInt64) -> Bool {
        ids.contains(id)
    }

    mutating func insert(_ id: UInt64) {
        var i = 0
        while i < ids.count && ids[i] < id { i += 1 }
        if i < ids.count && ids[i] == id { return }
        ids.insert(id, at: i)
    }

    mutating func remove(_ id: UInt64) {
        if let i = ids.firstIndex(of: id) { ids.remove(at: i) }
    }

    /// The largest index acknowledged by a majority. An empty config commits everything
    /// (`UInt64.max`), so that a joint config with an empty half behaves like the other half.
    func committedIndex(_ acked: (UInt64) -> UInt64) -> UInt64 {
        let n = ids.count
        if n == 0 { return .max }
        if n == 1 { return acked(ids[0]) }
        // Sort the acked indices on the stack: this runs on every append acknowledgement.
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: n) { buf in
            for i in 0..<n {
                let v = acked(ids[i])
                // Insertion sort, ascending: n is tiny.
                var j = i
                while j > 0 && buf[j - 1] > v {
                    buf[j] = buf[j - 1]
                    j -= 1
                }
                buf[j] = v
            }
            // The (n/2+1)-th largest is acknowledged by a majority.
            return buf[n - (n / 2 + 1)]
        }
    }

    /// Counts `votes` (id → granted). Voters missing from `votes` have not answered.
    /// By convention an empty config wins every election.
    func voteResult(_ votes: (UInt64) -> Bool?) -> VoteResult {
        if ids.isEmpty { return .won }
        var granted = 0
        var missing = 0
        for id in ids {
            switch votes(id) {
            case .none: missing += 1
            case .some(true): granted += 1
            case .some(false): break
            }
        }
        let quorum = ids.count / 2 + 1
        if granted >= quorum { return .won }
        if granted + missing >= quorum { return .pending }
        return .lost
    }
}

/// Two majority configs that must both agree: the incoming and, while changing membership
/// through joint consensus, the outgoing voters (etcd's quorum.JointConfig).
struct JointConfig: Sendable, Hashable {
    var incoming = MajorityConfig()
    var outgoing = MajorityConfig()

    var isJoint: Bool { !outgoing.isEmpty }

    func contains(_ id: UInt64) -> Bool {
        incoming.contains(id) || outgoing.contains(id)
    }

    /// Every voter of either half, sorted, without duplicates.
    var ids: [UInt64] {
        if outgoing.isEmpty { return incoming.ids }
        var all = MajorityConfig(incoming.ids)
        for id in outgoing.ids { all.insert(id) }
        return all.ids
    }

    func committedIndex(_ acked: (UInt64) -> UInt64) -> UInt64 {
        let a = incoming.committedIndex(acked)
        if outgoing.isEmpty { return a }
        return Swift.min(a, outgoing.committedIndex(acked))
    }

    func voteResult(_ votes: (UInt64) -> Bool?) -> VoteResult {
        let r1 = incoming.voteResult(votes)
        let r2 = outgoing.voteResult(votes)
        if r1 == r2 { return r1 }
        // One half lost: the joint decision is lost. Otherwise one half is still pending.
        if r1 == .lost || r2 == .lost { return .lost }
        return .pending
    }
}
