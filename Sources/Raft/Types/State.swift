/// The persistent state a node must save before it sends messages: current term, vote, commit.
public struct HardState: Sendable, Hashable {
    public var term: UInt64
    public var vote: UInt64
    public var commit: UInt64

    public init(term: UInt64 = 0, vote: UInt64 = 0, commit: UInt64 = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }

    public var isEmpty: Bool { term == 0 && vote == 0 && commit == 0 }
}

/// The membership: voters (incoming), learners, and while joint, the outgoing voters and
/// the learners that become learners once the joint configuration is left.
public struct ConfState: Sendable, Hashable {
    public var voters: [UInt64]
    public var learners: [UInt64]
    public var votersOutgoing: [UInt64]
    public var learnersNext: [UInt64]
    public var autoLeave: Bool

    public init(
        voters: [UInt64] = [], learners: [UInt64] = [], votersOutgoing: [UInt64] = [],
        learnersNext: [UInt64] = [], autoLeave: Bool = false
    ) {
        self.voters = voters
        self.learners = learners
        self.votersOutgoing = votersOutgoing
        self.learnersNext = learnersNext
        self.autoLeave = autoLeave
    }

    /// Equal as sets: the order of ids carries no meaning (etcd's ConfState.Equivalent).
    public func isEquivalent(to other: ConfState) -> Bool {
        voters.sorted() == other.voters.sorted() && learners.sorted() == other.learners.sorted()
            && votersOutgoing.sorted() == other.votersOutgoing.sorted()
            && learnersNext.sorted() == other.learnersNext.sorted() && autoLeave == other.autoLeave
    }
}

public struct SnapshotMetadata: Sendable, Hashable {
    public var confState: ConfState
    public var index: UInt64
    public var term: UInt64

    public init(confState: ConfState = ConfState(), index: UInt64 = 0, term: UInt64 = 0) {
        self.confState = confState
        self.index = index
        self.term = term
    }
}

/// A point-in-time image of the application state up to `metadata.index`.
public struct Snapshot: Sendable, Hashable {
    public var data: [UInt8]
    public var metadata: SnapshotMetadata

    public init(data: [UInt8] = [], metadata: SnapshotMetadata = SnapshotMetadata()) {
        self.data = data
        self.metadata = metadata
    }

    /// A snapshot at index 0 holds nothing (etcd's IsEmptySnap).
    public var isEmpty: Bool { metadata.index == 0 }
}

/// The role a node plays.
public enum StateType: Sendable, Hashable, CustomStringConvertible {
    case follower, candidate, leader, preCandidate

    public var description: String {
        switch self {
        case .follower: return "follower"
        case .candidate: return "candidate"
        case .leader: return "leader"
        case .preCandidate: return "preCandidate"
        }
    }
}

/// Volatile state that the application may want to observe; not persisted.
public struct SoftState: Sendable, Hashable {
    public var lead: UInt64
    public var raftState: StateType

    public init(lead: UInt64 = 0, raftState: StateType = .follower) {
        self.lead = lead
        self.raftState = raftState
    }
}

/// The answer to a `readIndex` request: once the application has applied up to `index`,
/// a read issued with `requestContext` is linearizable.
public struct ReadState: Sendable, Hashable {
    public var index: UInt64
    public var requestContext: [UInt8]

    public init(index: UInt64 = 0, requestContext: [UInt8] = []) {
        self.index = index
        self.requestContext = requestContext
    }
}

/// A peer given to `bootstrap`; `context` is carried in its `addNode` conf change.
public struct Peer: Sendable, Hashable {
    public var id: UInt64
    public var context: [UInt8]

    public init(id: UInt64, context: [UInt8] = []) {
        self.id = id
        self.context = context
    }
}

public enum SnapshotStatus: Sendable, Hashable {
    case finish, failure
}
