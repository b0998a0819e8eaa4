/// Every message kind of etcd's raftpb, in wire order (`hup` = 0 … `preVoteResponse` = 18).
/// `hup`, `beat`, `unreachable`, `snapshotStatus` and `checkQuorum` are local: they never cross the network.
public enum MessageType: UInt8, Sendable, Hashable, CaseIterable {
    case hup = 0
    case beat = 1
    case proposal = 2
    case append = 3
    case appendResponse = 4
    case vote = 5
    case voteResponse = 6
    case snapshot = 7
    case heartbeat = 8
    case heartbeatResponse = 9
    case unreachable = 10
    case snapshotStatus = 11
    case checkQuorum = 12
    case transferLeader = 13
    case timeoutNow = 14
    case readIndex = 15
    case readIndexResponse = 16
    case preVote = 17
    case preVoteResponse = 18

    /// Messages the node generates for itself; stepping one in from outside is an error.
    @inlinable
    public var isLocal: Bool {
        switch self {
        case .hup, .beat, .unreachable, .snapshotStatus, .checkQuorum: return true
        default: return false
        }
    }

    /// Responses to messages this node sent (they carry no request for the receiver).
    @inlinable
    public var isResponse: Bool {
        switch self {
        case .appendResponse, .voteResponse, .heartbeatResponse, .unreachable, .readIndexResponse,
             .preVoteResponse:
            return true
        default: return false
        }
    }

    /// With asynchronous storage writes, a non-leader sends these only once what it persisted
    /// before them is durable: an acknowledgement promises the entries (or snapshot) it names,
    /// a granted vote the vote recorded in the HardState, and a vote request the candidate's own
    /// vote — which it counts at once, and which must survive a crash before others' votes can
    /// make it leader. Pre-votes record nothing; heartbeat responses, forwarded proposals and
    /// reads promise nothing.
    var promisesWhatIsPersisted: Bool {
        switch self {
        case .appendResponse, .vote, .voteResponse: return true
        default: return false
        }
    }

    /// The response type to a (pre-)vote request.
    @inlinable
    var voteResponseType: MessageType {
        self == .preVote ? .preVoteResponse : .voteResponse
    }
}

/// A raft message between peers (or a local event stepped into the state machine).
public struct Message: Sendable, Hashable {
    public var type: MessageType
    public var to: UInt64
    public var from: UInt64
    public var term: UInt64
    public var logTerm: UInt64
    public var index: UInt64
    public var entries: [Entry]
    public var commit: UInt64
    /// Set on `.snapshot` messages only.
    public var snapshot: Snapshot? {
        get { snapshotBox?.value }
        set { snapshotBox = newValue.map(SnapshotBox.init) }
    }
    /// Snapshots are rare and large (data and five arrays); boxing keeps every other message
    /// small, so copying one retains three references instead of eight.
    @usableFromInline var snapshotBox: SnapshotBox?
    public var reject: Bool
    public var rejectHint: UInt64
    public var context: [UInt8]
}

// The public initializer lives in an extension and delegates to the implicit memberwise one:
// written out field by field inside the struct, it makes the optimizer build each message in a
// stack slot and copy it out (a retain and a release of every array, on every message sent).
extension Message {
    public init(
        type: MessageType, to: UInt64 = 0, from: UInt64 = 0, term: UInt64 = 0,
        logTerm: UInt64 = 0, index: UInt64 = 0, entries: [Entry] = [], commit: UInt64 = 0,
        snapshot: Snapshot? = nil, reject: Bool = false, rejectHint: UInt64 = 0,
        context: [UInt8] = []
    ) {
        self.init(
            type: type, to: to, from: from, term: term, logTerm: logTerm, index: index, entries: entries,
            commit: commit, snapshotBox: snapshot.map(SnapshotBox.init), reject: reject,
            rejectHint: rejectHint, context: context)
    }
}

/// An immutable, shared snapshot inside a `Message` or the unstable log.
@usableFromInline
final class SnapshotBox: Sendable, Hashable {
    @usableFromInline let value: Snapshot

    @usableFromInline init(_ value: Snapshot) {
        self.value = value
    }

    @usableFromInline static func == (a: SnapshotBox, b: SnapshotBox) -> Bool {
        a === b || a.value == b.value
    }

    @usableFromInline func hash(into hasher: inout Hasher) {
        hasher.combine(value)
    }
}
