/// What a `FlotillaNode` request can fail with. Each `description` says what to do about it.
public enum FlotillaError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No leader is known (an election is running, or this node cannot reach a quorum), and
    /// none was elected within `Configuration.leaderWait`.
    case noLeader
    /// The request must run on the leader, and this node is not it. `leaderID` is the leader
    /// this node knows of (0 when none).
    case notLeader(leaderID: UInt64)
    /// The request did not complete within `Configuration.requestTimeout`. A write may still be
    /// applied later: make commands idempotent, or read back before retrying.
    case timeout
    /// The node is shutting down or has stopped.
    case stopped
    /// The request was cancelled (its task was). A write may still be applied later.
    case cancelled
    /// The command is larger than `Configuration.maxProposalSize`.
    case proposalTooLarge(size: Int, limit: Int)
    /// The leader did not accept the proposal right now (a leadership transfer is in progress,
    /// or too many entries are uncommitted).
    case proposalDropped
    /// The write was appended by this node as leader, but leadership passed to another node
    /// before it was committed, and the new leader committed another entry at its place: it was
    /// not applied and never will be. Retrying is safe.
    case leaderChanged
    /// A membership change that cannot be made (the string says why).
    case invalidMembershipChange(String)
    /// Too many writes are waiting for the node already (`Configuration.maxQueuedWrites`); this
    /// one was not taken. Retry shortly, or slow down.
    case overloaded(queued: Int, limit: Int)
    /// The node was used before `start()`.
    case notStarted
    /// The node stopped on an error it cannot recover from (storage, a state machine that
    /// failed to snapshot or restore). The string is the cause.
    case failed(String)

    public var description: String {
        switch self {
        case .noLeader:
            return "no raft leader is known: an election is in progress or this node cannot reach a quorum; retry later"
        case .notLeader(let leader):
            return leader == 0
                ? "this node is not the raft leader and knows of none; retry later"
                : "this node is not the raft leader; send the request to node \(leader)"
        case .timeout:
            return "the request timed out; it may still be applied: check (read) before retrying"
        case .stopped:
            return "the node has stopped; send the request to another node"
        case .cancelled:
            return "the request was cancelled; a write may still be applied: check (read) before retrying"
        case .proposalTooLarge(let size, let limit):
            return "the command is \(size) bytes, over the \(limit) byte limit (maxProposalSize); split it"
        case .proposalDropped:
            return "the leader dropped the proposal (leadership transfer in progress, or too many uncommitted entries); retry shortly"
        case .leaderChanged:
            return "the leader changed before the write was committed; it was not applied and will not be: retry"
        case .invalidMembershipChange(let why):
            return "invalid membership change: \(why)"
        case .overloaded(let queued, let limit):
            return "the node has \(queued) writes waiting (the limit is \(limit), maxQueuedWrites); retry shortly, or send fewer at once"
        case .notStarted:
            return "the node has not been started: call start() (or run it as a Service) first"
        case .failed(let why):
            return "the node stopped on an unrecoverable error: \(why); restart it from its data directory"
        }
    }
}
