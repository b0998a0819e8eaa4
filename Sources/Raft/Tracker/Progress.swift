/// How the leader is replicating to one follower (etcd's tracker.StateType).
public enum ProgressState: Sendable, Hashable, CustomStringConvertible {
    /// The leader does not know where the follower's log ends: it sends one append at a time
    /// and waits for the answer (or a heartbeat interval) before the next.
    case probe
    /// The follower is known to accept appends: the leader streams entries optimistically,
    /// bounded by the inflight window.
    case replicate
    /// The follower needs a snapshot; nothing else is sent until it is applied or fails.
    case snapshot

    public var description: String {
        switch self {
        case .probe: return "probe"
        case .replicate: return "replicate"
        case .snapshot: return "snapshot"
        }
    }
}

/// What the leader knows about one follower's log (etcd's tracker.Progress).
public struct Progress: Sendable, Hashable {
    /// The follower's id.
    public var id: UInt64
    /// The highest index known to be replicated on the follower.
    public var match: UInt64
    /// The next index the leader will send.
    public var next: UInt64
    public var state: ProgressState
    /// In `.snapshot`, the index of the snapshot being sent; the follower resumes after it.
    public var pendingSnapshot: UInt64
    /// Whether the follower was heard from since the last CheckQuorum round.
    public var recentActive: Bool
    /// In `.probe`, whether an append was sent and its answer is awaited.
    public var probeSent: Bool
    public var isLearner: Bool
    public var inflights: Inflights

    public init(
        id: UInt64, match: UInt64 = 0, next: UInt64 = 1, state: ProgressState = .probe,
        inflights: Inflights, isLearner: Bool = false, recentActive: Bool = false
    ) {
        self.id = id
        self.match = match
        self.next = next
        self.state = state
        self.pendingSnapshot = 0
        self.recentActive = recentActive
        self.probeSent = false
        self.isLearner = isLearner
        self.inflights = inflights
    }

    /// Whether the leader must hold back appends to this follower for now.
    @inlinable
    public var isPaused: Bool {
        switch state {
        case .probe: return probeSent
        case .replicate: return inflights.isFull
        case .snapshot: return true
        }
    }

    mutating func resetState(_ newState: ProgressState) {
        probeSent = false
        pendingSnapshot = 0
        state = newState
        inflights.reset()
    }

    mutating func becomeProbe() {
        // Coming back from a snapshot, resume after whichever is newer: what the follower
        // acknowledged or the snapshot it was sent.
        if state == .snapshot {
            let pending = pendingSnapshot
            resetState(.probe)
            next = Swift.max(match + 1, pending + 1)
        } else {
            resetState(.probe)
            next = match + 1
        }
    }

    mutating func becomeReplicate() {
        resetState(.replicate)
        next = match + 1
    }

    mutating func becomeSnapshot(_ snapshotIndex: UInt64) {
        resetState(.snapshot)
        pendingSnapshot = snapshotIndex
    }

    /// An acknowledgement up to `n` arrived. Returns false if it was stale.
    @discardableResult
    mutating func maybeUpdate(_ n: UInt64) -> Bool {
        var updated = false
        if match < n {
            match = n
            updated = true
            probeSent = false
        }
        next = Swift.max(next, n + 1)
        return updated
    }

    /// Appends up to `n` were sent while replicating: move `next` past them without waiting.
    mutating func optimisticUpdate(_ n: UInt64) {
        next = n + 1
    }

    /// The follower rejected an append at `rejected`; `matchHint` is where the logs may agree.
    /// Returns false when the rejection is stale (answers an append sent before a newer one).
    mutating func maybeDecrTo(rejected: UInt64, matchHint: UInt64) -> Bool {
        if state == .replicate {
            // A rejection at or below match is a duplicate of an old message.
            if rejected <= match { return false }
            // Replicating is optimistic: fall back to right after the last known match.
            next = match + 1
            return true
        }
        // In probe, only the answer to the one outstanding probe counts; and not one at or
        // below match, which could not move `next` (its floor is match + 1) and would only send
        // the same probe again. That is a late duplicate, or a follower that lost entries it
        // acknowledged (a disk that lies about fsync): answering it at once, as etcd does, makes
        // the two trade the same rejection and probe as fast as the network carries them. The
        // probe stays paused until the next heartbeat response, which probes again.
        if next - 1 != rejected || rejected <= match { return false }
        // Never below match + 1: entries up to match are known to be on the follower, whatever a
        // (stale or forged) hint says (etcd 3.6 has the same floor).
        next = Swift.max(Swift.min(rejected, matchHint + 1), match + 1)
        probeSent = false
        return true
    }
}
