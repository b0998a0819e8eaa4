/// Errors thrown by the `Raft` module. Each says what happened and, in `description`, what to do.
public enum RaftError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The proposal was not accepted: no leader is known, a leadership transfer is in progress,
    /// forwarding is disabled, the uncommitted tail is full, or this node was removed. Retry later,
    /// possibly on another node.
    case proposalDropped
    /// The requested index is older than the storage's first index: it was compacted into a snapshot.
    case compacted
    /// The snapshot is older than the one the storage already holds.
    case snapshotOutOfDate
    /// The requested entry is not in storage (beyond its last index).
    case unavailable
    /// The storage cannot produce a snapshot right now; the leader retries later.
    case snapshotTemporarilyUnavailable
    /// A local message type (hup, beat, …) was given to `step`; use the dedicated method.
    case stepLocalMessage
    /// A response came from a node that is not in the configuration; it was ignored.
    case stepPeerNotFound
    /// The configuration is invalid; the string says which field and why.
    case invalidConfig(String)
    /// The node has already been bootstrapped (its storage is not empty).
    case alreadyBootstrapped
    /// A membership change cannot be applied to the current configuration; the string says why.
    case invalidConfChange(String)
    /// The node driver has been stopped.
    case stopped
    /// A message from a peer is malformed (for example, it carries no term); it was ignored.
    case invalidMessage(String)
    /// Entries were appended to storage with a gap after its last index: the caller lost entries.
    case logGap(lastIndex: UInt64, appendedFirst: UInt64)

    public var description: String {
        switch self {
        case .proposalDropped:
            return "raft proposal dropped: no leader, a leadership transfer in progress, or too many uncommitted entries; retry later"
        case .compacted:
            return "requested index is unavailable due to compaction; use a snapshot"
        case .snapshotOutOfDate:
            return "requested snapshot is older than the existing snapshot"
        case .unavailable:
            return "requested entry at index is unavailable"
        case .snapshotTemporarilyUnavailable:
            return "snapshot is temporarily unavailable; retry later"
        case .stepLocalMessage:
            return "raft: cannot step a local message type; use tick/campaign/report* instead"
        case .stepPeerNotFound:
            return "raft: cannot step a response from a node that is not in the configuration"
        case .invalidConfig(let why):
            return "invalid raft config: \(why)"
        case .alreadyBootstrapped:
            return "can't bootstrap a node that already has state in its storage; restart it instead"
        case .invalidConfChange(let why):
            return "invalid configuration change: \(why)"
        case .stopped:
            return "raft node stopped"
        case .invalidMessage(let why):
            return "invalid raft message: \(why); it was ignored"
        case .logGap(let last, let first):
            return "storage append leaves a gap: last index is \(last) but the entries start at \(first); entries were lost between Ready and storage — this is a bug in the caller"
        }
    }
}
