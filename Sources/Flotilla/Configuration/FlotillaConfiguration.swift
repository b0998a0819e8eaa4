import Raft
import RaftNIO
import RaftWAL

/// Everything a `FlotillaNode` is told when it is created.
public struct FlotillaConfiguration: Sendable {
    /// How a node starts when its data directory is empty (a non-empty one is always restarted
    /// from: the members then come from the log).
    public enum Bootstrap: Sendable, Hashable {
        /// A new cluster: this node and `peers` are its first voters.
        case newCluster
        /// Join a running cluster: start empty and wait for its leader, after some member was
        /// told `addMember(id:address:)` for this node. `peers` says where the members are.
        case join
    }

    /// This node's raft id (never 0).
    public var nodeID: UInt64
    /// Peers of other clusters are refused at the handshake (never 0).
    public var clusterID: UInt64
    /// The other members, by raft id, and where they listen. For `.newCluster`, these and this
    /// node are the first voters. An address with port 0 is not known yet: tell the node with
    /// `updatePeer(id:address:)` once it is.
    public var peers: [UInt64: TransportAddress]
    /// Where this node's transport listens. Port 0 picks a free one (`start()` returns it).
    public var listenAddress: TransportAddress
    /// The data directory (the WAL and the snapshots), created if absent.
    public var dataDirectory: String
    public var bootstrap: Bootstrap
    /// How often raft's logical clock ticks.
    public var tickInterval: Duration
    /// Ticks without hearing from a leader before a follower campaigns.
    public var electionTicks: Int
    /// Ticks between leader heartbeats.
    public var heartbeatTicks: Int
    /// Applied entries between two snapshots of the state machine; 0 turns snapshots off.
    public var snapshotInterval: UInt64
    /// Entries kept in the log behind a snapshot, so slow followers catch up from the log
    /// rather than by a snapshot.
    public var entriesKeptAfterCompaction: UInt64
    /// The largest command `apply` accepts, in bytes. Its raft entry is a few bytes larger
    /// (the runtime's envelope, `proposalEnvelopeSize`).
    public var maxProposalSize: Int
    /// Bytes the runtime adds to a command in its raft entry: the request id that finds the
    /// client waiting for it.
    public static var proposalEnvelopeSize: Int { ProposalEnvelope.headerSize }
    /// How long a request (write, read, membership change, transfer) may take in all.
    public var requestTimeout: Duration
    /// How long a request waits for a leader to be elected before failing with `.noLeader`
    /// (never past `requestTimeout`).
    public var leaderWait: Duration
    /// Raft's options (`checkQuorum`, `preVote`, `maxSizePerMsg`, …). Its `id`, ticks, storage,
    /// `applied` and logger are set by the node.
    public var raftOptions: RaftOptions
    /// The largest transport frame (`RaftTransportConfiguration.maxFrameSize`): above
    /// `maxProposalSize` and raft's `maxSizePerMsg`, with room for the message around them.
    public var maxFrameSize: Int
    /// Writes handed to `apply(_:completion:)` that may wait for the Ready loop at once; more
    /// fail at once with `FlotillaError.overloaded` (503 over HTTP), so that a burst the node
    /// cannot take never grows memory without bound. Default 16,384.
    public var maxQueuedWrites: Int
    /// Mutual TLS between peers (`RaftTransportConfiguration.tls`); nil for plaintext, which
    /// lets anyone who reaches the peer port pose as a member.
    public var peerTLS: PeerTLS?
    /// The file system under the data directory: the real one (`POSIXFileSystem`) by default; a
    /// simulated one in tests (torn writes, lost syncs, fsync errors).
    public var fileSystem: any WALFileSystem
    /// Makes the peer transport, given where to deliver what it receives; nil (the default):
    /// a `RaftTransport` on `listenAddress`, with `peerTLS` and `maxFrameSize`, on the node's
    /// event loop group.
    public var transport: (@Sendable (TransportDelivery) -> any PeerTransport)?
    /// The clock of the node's ticks and deadlines: the system's by default.
    public var clock: any NodeClock

    public init(
        nodeID: UInt64,
        clusterID: UInt64,
        peers: [UInt64: TransportAddress] = [:],
        listenAddress: TransportAddress,
        dataDirectory: String,
        bootstrap: Bootstrap = .newCluster,
        tickInterval: Duration = .milliseconds(100),
        electionTicks: Int = 10,
        heartbeatTicks: Int = 1,
        snapshotInterval: UInt64 = 10_000,
        entriesKeptAfterCompaction: UInt64 = 5_000,
        maxProposalSize: Int = 1 << 20,
        requestTimeout: Duration = .seconds(5),
        leaderWait: Duration = .seconds(3),
        raftOptions: RaftOptions = RaftOptions(),
        maxFrameSize: Int = 4 << 20,
        maxQueuedWrites: Int = 16_384,
        peerTLS: PeerTLS? = nil,
        fileSystem: any WALFileSystem = POSIXFileSystem(),
        transport: (@Sendable (TransportDelivery) -> any PeerTransport)? = nil,
        clock: any NodeClock = SystemNodeClock()
    ) {
        self.nodeID = nodeID
        self.clusterID = clusterID
        self.peers = peers
        self.listenAddress = listenAddress
        self.dataDirectory = dataDirectory
        self.bootstrap = bootstrap
        self.tickInterval = tickInterval
        self.electionTicks = electionTicks
        self.heartbeatTicks = heartbeatTicks
        self.snapshotInterval = snapshotInterval
        self.entriesKeptAfterCompaction = entriesKeptAfterCompaction
        self.maxProposalSize = maxProposalSize
        self.requestTimeout = requestTimeout
        self.leaderWait = leaderWait
        self.raftOptions = raftOptions
        self.maxFrameSize = maxFrameSize
        self.maxQueuedWrites = maxQueuedWrites
        self.peerTLS = peerTLS
        self.fileSystem = fileSystem
        self.transport = transport
        self.clock = clock
    }
}

/// The raft options a `FlotillaNode` passes through to `Raft.Config` (see there).
public struct RaftOptions: Sendable, Hashable {
    public var checkQuorum: Bool
    public var preVote: Bool
    public var readOnlyOption: ReadOnlyOption
    public var maxSizePerMsg: UInt64
    /// Appends in flight to a follower before the leader waits for its acknowledgement. The
    /// runtime's default is 1 (etcd's server uses 512): the next append then carries every
    /// entry proposed meanwhile, up to `maxSizePerMsg`, so under load a follower writes and
    /// fsyncs a few big batches instead of many small ones (measured: see
    /// Benchmarks/README.md). Raise it when followers are far (high RTT) and entries are big.
    public var maxInflightMsgs: Int
    /// Payload bytes a leader lets wait uncommitted before it refuses proposals
    /// (`FlotillaError.proposalDropped`, 503 over HTTP): a leader that cannot commit (no quorum,
    /// a slow disk) must not grow its log without bound. Default 64 MiB; 0 is unbounded.
    public var maxUncommittedEntriesSize: UInt64
    /// Followers forward proposals to the leader (raft's default). When false, `apply` on a
    /// follower fails with `FlotillaError.notLeader(leaderID:)`, naming the leader.
    public var forwardProposals: Bool

    public init(
        checkQuorum: Bool = true, preVote: Bool = true, readOnlyOption: ReadOnlyOption = .safe,
        maxSizePerMsg: UInt64 = 1 << 20, maxInflightMsgs: Int = 1, maxUncommittedEntriesSize: UInt64 = 64 << 20,
        forwardProposals: Bool = true
    ) {
        self.checkQuorum = checkQuorum
        self.preVote = preVote
        self.readOnlyOption = readOnlyOption
        self.maxSizePerMsg = maxSizePerMsg
        self.maxInflightMsgs = maxInflightMsgs
        self.maxUncommittedEntriesSize = maxUncommittedEntriesSize
        self.forwardProposals = forwardProposals
    }
}
