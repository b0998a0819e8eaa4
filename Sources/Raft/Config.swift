import Logging

/// How a leader answers `readIndex` requests.
public enum ReadOnlyOption: Sendable, Hashable {
    /// Confirm leadership with a heartbeat round carrying the request context (always safe).
    case safe
    /// Trust the leader's lease (needs `checkQuorum`): faster, but relies on bounded clock drift.
    case leaseBased
}

/// The parameters of one raft node.
public struct Config {
    /// This node's id; never 0.
    public var id: UInt64
    /// Ticks a follower waits without hearing from a leader before it campaigns. The actual timeout
    /// is randomized in [electionTick, 2×electionTick) to break ties. Must exceed `heartbeatTick`.
    public var electionTick: Int
    /// Ticks between leader heartbeats.
    public var heartbeatTick: Int
    /// The last applied index, when restarting; committed entries at or below it are not returned again.
    public var applied: UInt64
    /// Byte limit of entries in one append message; 0 sends one entry per message.
    public var maxSizePerMsg: UInt64
    /// Byte limit of committed entries in one Ready; 0 means `maxSizePerMsg`.
    public var maxCommittedSizePerReady: UInt64
    /// Limit on the payload bytes of the leader's uncommitted tail; proposals beyond it are
    /// dropped. 0 = no limit.
    public var maxUncommittedEntriesSize: UInt64
    /// Append messages in flight to one follower before the leader waits for acknowledgements.
    public var maxInflightMsgs: Int
    /// Bytes in flight to one follower before the leader waits; 0 = no limit.
    public var maxInflightBytes: UInt64
    /// The leader steps down when it has not heard from a quorum within an election timeout,
    /// and followers ignore vote requests while they hear from a leader.
    public var checkQuorum: Bool
    /// Candidates first run a pre-election that does not disturb the cluster (thesis §9.6).
    public var preVote: Bool
    public var readOnlyOption: ReadOnlyOption
    /// Followers drop proposals instead of forwarding them to the leader.
    public var disableProposalForwarding: Bool
    /// A leader removed from the configuration steps down once the change is applied.
    public var stepDownOnRemoval: Bool
    /// The log the application persisted.
    public var storage: any Storage
    /// Persistence runs beside the node instead of inside a Ready/advance handshake (raft-rs's
    /// numbered Readies). Each `Ready` carries a `number`; hand its entries, HardState and
    /// snapshot to storage in order, send `messages` at once and `messagesAfterPersist` once
    /// storage reports it durable, then call `onPersistReady(number)`; apply its committed
    /// entries (already durable here) and call `advanceApply(to:)`. Take the next Ready
    /// whenever `hasReady`, writes still under way. The leader counts its own entries towards
    /// the commit only once they are durable, and a node's votes and acknowledgements leave only
    /// after what they promise is on its disk. `advance(_:)` must not be called. Default false:
    /// the synchronous etcd 3.4 handshake.
    public var asyncStorageWrites: Bool
    /// Seeds the election-timeout jitter together with `id`. The core never draws system
    /// randomness, so a given seed, config and input sequence always behave the same.
    public var randomSeed: UInt64
    /// Where the node reports elections and membership changes (info level and below).
    public var logger: Logger

    public init(id: UInt64, electionTick: Int = 10, heartbeatTick: Int = 1, storage: some Storage) {
        self.id = id
        self.electionTick = electionTick
        self.heartbeatTick = heartbeatTick
        self.applied = 0
        self.maxSizePerMsg = 1 << 20
        self.maxCommittedSizePerReady = 0
        self.maxUncommittedEntriesSize = 0
        self.maxInflightMsgs = 256
        self.maxInflightBytes = 0
        self.checkQuorum = false
        self.preVote = false
        self.readOnlyOption = .safe
        self.disableProposalForwarding = false
        self.stepDownOnRemoval = false
        self.storage = storage
        self.asyncStorageWrites = false
        self.randomSeed = 0
        self.logger = Logger(label: "raft", factory: { _ in SwiftLogNoOpLogHandler() })
    }

    /// Checks the parameters, filling derived defaults; throws `RaftError.invalidConfig` naming the
    /// field at fault.
    func validated() throws -> Config {
        var c = self
        if c.id == 0 { throw RaftError.invalidConfig("id must not be 0 (0 means \"none\")") }
        if c.heartbeatTick <= 0 { throw RaftError.invalidConfig("heartbeatTick must be greater than 0") }
        if c.electionTick <= c.heartbeatTick {
            throw RaftError.invalidConfig("electionTick (\(c.electionTick)) must be greater than heartbeatTick (\(c.heartbeatTick))")
        }
        if c.maxInflightMsgs <= 0 { throw RaftError.invalidConfig("maxInflightMsgs must be greater than 0") }
        if c.maxInflightBytes > 0 && c.maxInflightBytes < c.maxSizePerMsg {
            throw RaftError.invalidConfig("maxInflightBytes (\(c.maxInflightBytes)) must be at least maxSizePerMsg (\(c.maxSizePerMsg))")
        }
        if c.readOnlyOption == .leaseBased && !c.checkQuorum {
            throw RaftError.invalidConfig("readOnlyOption .leaseBased requires checkQuorum: a lease is only sound while the leader checks it still has a quorum")
        }
        if c.maxCommittedSizePerReady == 0 { c.maxCommittedSizePerReady = c.maxSizePerMsg }
        return c
    }
}
