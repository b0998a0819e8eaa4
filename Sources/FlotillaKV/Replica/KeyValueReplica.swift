import Flotilla

/// What the HTTP API needs from a replicated key-value store. `FlotillaReplica` is the
/// implementation, on the `Flotilla` runtime; tests script failures with their own.
///
/// Every method throws `ReplicaError` only.
public protocol KeyValueReplica: Sendable {
    /// Stores `value` under `key` (or, when `value` is nil, removes `key`), and hands the outcome
    /// to `completion` once the write is committed and applied here. `completion` is called
    /// once, on any thread, and must be quick.
    ///
    /// A completion handler rather than `async`: the HTTP handlers call it from an event loop,
    /// where an `await` would cost a task per request (`put` and `delete` await it).
    func write(key: [UInt8], value: [UInt8]?, completion: @escaping @Sendable (Result<KeyValueStore.Outcome, ReplicaError>) -> Void)
    /// The value under `key`, or nil. `.linearizable` reflects every write acknowledged before the
    /// call (ReadIndex); `.serializable` reads this replica's state as it is, without asking the
    /// leader (fast, possibly stale on a follower).
    func get(key: [UInt8], consistency: ReadConsistency) async throws -> [UInt8]?
    /// The replica's raft state, as `GET /v1/status` shows it.
    func status() async -> ReplicaStatus
    /// The replica's state once it has applied the commit index it knew at the call, or after
    /// `timeout` if it has not (`GET /health`: under load the commit index runs a moment ahead
    /// of the applied one; a healthy replica catches up at once).
    func statusWhenCaughtUp(within timeout: Duration) async -> ReplicaStatus

    /// The members of the cluster as this replica knows them, with the leader marked.
    func members() async throws -> [ReplicaMember]
    /// Adds node `id`, whose peer transport listens at `peerURL`, as a voter (or a learner);
    /// returns once the change is applied here.
    func addMember(id: UInt64, peerURL: PeerURL, asLearner: Bool) async throws
    /// Removes node `id`; returns once the change is applied here.
    func removeMember(id: UInt64) async throws
    /// Hands leadership to voter `id`; returns once this replica sees it lead.
    func transferLeadership(to id: UInt64) async throws
}

extension KeyValueReplica {
    /// The status as it is (for replicas that apply synchronously).
    public func statusWhenCaughtUp(within timeout: Duration) async -> ReplicaStatus {
        await status()
    }

    /// Stores `value` under `key`; returns once the write is committed and applied here.
    public func put(key: [UInt8], value: [UInt8]) async throws(ReplicaError) -> KeyValueStore.Outcome {
        try await awaitWrite(key: key, value: value)
    }

    /// Removes `key`; returns once the delete is committed and applied here.
    public func delete(key: [UInt8]) async throws(ReplicaError) -> KeyValueStore.Outcome {
        try await awaitWrite(key: key, value: nil)
    }

    private func awaitWrite(key: [UInt8], value: [UInt8]?) async throws(ReplicaError) -> KeyValueStore.Outcome {
        try await withCheckedContinuation { continuation in
            write(key: key, value: value) { continuation.resume(returning: $0) }
        }.get()
    }
}

/// A member of the cluster, as `GET /v1/members` shows it.
public struct ReplicaMember: Sendable, Hashable, Codable {
    public var id: UInt64
    /// `http://host:port`; empty when this replica does not know where the member listens.
    public var peerURL: String
    public var learner: Bool
    public var leader: Bool

    public init(id: UInt64, peerURL: String, learner: Bool, leader: Bool) {
        self.id = id
        self.peerURL = peerURL
        self.learner = learner
        self.leader = leader
    }
}

public enum ReadConsistency: Sendable, Hashable {
    /// Through ReadIndex: sees every write acknowledged before the read began.
    case linearizable
    /// This replica's applied state, without a round through the leader.
    case serializable
}

/// A snapshot of a replica's raft state.
public struct ReplicaStatus: Sendable, Hashable, Codable {
    public var id: UInt64
    public var term: UInt64
    /// The leader's id, 0 when none is known.
    public var leader: UInt64
    /// The highest log index known to be committed.
    public var commit: UInt64
    /// The highest log index applied to the key-value store.
    public var applied: UInt64
    /// `follower`, `candidate`, `preCandidate` or `leader`.
    public var state: String

    public init(id: UInt64, term: UInt64, leader: UInt64, commit: UInt64, applied: UInt64, state: String) {
        self.id = id
        self.term = term
        self.leader = leader
        self.commit = commit
        self.applied = applied
        self.state = state
    }

    /// Healthy: a leader is known and everything committed has been applied.
    public var isHealthy: Bool { leader != 0 && applied >= commit }
}

/// Why a request to a replica failed. Each case's description says what the client should do.
public enum ReplicaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No leader is known (an election is under way, or quorum is lost).
    case noLeader
    /// The request was not applied (or its read not served) within the request timeout. A write
    /// that timed out may still be applied later.
    case timeout
    /// The replica is shutting down or has stopped.
    case stopped
    /// Raft refused the proposal (leadership changed, a transfer is under way, or too many
    /// entries are uncommitted).
    case proposalDropped
    /// The request cannot be carried out as asked (a membership change raft refuses, a
    /// transfer to a node that is not a voter); the string says why. Retrying will not help.
    case invalidRequest(String)
    /// The command is larger than the replica accepts; the string says by how much.
    case tooLarge(String)
    /// The replica has more requests waiting than it takes; the string says how many. Retry shortly.
    case overloaded(String)
    /// The replica stopped after an internal error; the string says which.
    case failed(String)

    public var description: String {
        switch self {
        case .noLeader:
            return "no leader: the cluster is electing one or has lost quorum; retry in a moment"
        case .timeout:
            return "timed out before the request was applied; a write may still be applied later, so read the key before retrying a write that is not idempotent"
        case .stopped:
            return "this node is shutting down; retry against a running node"
        case .proposalDropped:
            return "the proposal was dropped (leadership changed or the node is overloaded); retry"
        case .invalidRequest(let why):
            return why
        case .tooLarge(let why):
            return why
        case .overloaded(let why):
            return why
        case .failed(let why):
            return "this node stopped after an internal error: \(why); check its log and restart it"
        }
    }

    /// The replica's view of an error from the runtime.
    init(_ error: FlotillaError) {
        switch error {
        case .noLeader: self = .noLeader
        // Followers forward proposals, so this only means the leader is changing.
        case .notLeader: self = .noLeader
        case .timeout: self = .timeout
        case .stopped, .notStarted, .cancelled: self = .stopped
        case .proposalTooLarge: self = .tooLarge(error.description)
        case .proposalDropped, .leaderChanged: self = .proposalDropped
        case .invalidMembershipChange: self = .invalidRequest(error.description)
        case .overloaded: self = .overloaded(error.description)
        case .failed(let why): self = .failed(why)
        }
    }
}
