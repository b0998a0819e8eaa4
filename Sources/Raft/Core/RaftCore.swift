import Logging

/// How an election was started.
enum CampaignType: Sendable {
    /// A pre-election (PreVote): asks whether the others would vote, without raising terms.
    case preElection
    /// A normal election.
    case election
    /// An election asked for by the leader (leadership transfer): skips PreVote and leases.
    case transfer

    /// Vote requests of a transfer carry this context so that receivers skip their lease check.
    static let transferContext: [UInt8] = Array("CampaignTransfer".utf8)
}

/// The raft consensus state machine: etcd's `raft` struct. Pure and deterministic: everything it
/// does is a function of the messages stepped into it and the ticks it is given. `RawNode` and
/// `Node` drive it; the role-specific step functions live in the extensions.
struct RaftCore {
    let id: UInt64
    var term: UInt64 = 0
    var vote: UInt64 = 0
    var log: RaftLog
    var tracker: ProgressTracker
    var state: StateType = .follower
    /// Whether this node is a learner in the current configuration.
    var isLearner = false
    /// Messages to send, collected into the next Ready.
    var messages: [Message] = []
    /// Asynchronous storage writes: messages that must wait until the next Ready is durable.
    var messagesAfterPersist: [Message] = []
    let asyncStorageWrites: Bool
    /// Asynchronous storage writes: the Readies handed out whose writes are not reported
    /// durable yet, oldest first, and the number the next Ready gets.
    var writesInProgress: [WriteInProgress] = []
    var nextReadyNumber: UInt64 = 1
    /// Answers to ReadIndex requests, collected into the next Ready.
    var readStates: [ReadState] = []
    var lead: UInt64 = 0
    /// The node leadership is being transferred to, or 0.
    var leadTransferee: UInt64 = 0
    /// Only one conf change may be pending: this is the log index of the latest one (or a
    /// conservative upper bound: the last index when this node became leader).
    var pendingConfIndex: UInt64 = 0
    /// Payload bytes of the uncommitted tail (leaders only).
    var uncommittedSize: UInt64 = 0
    var readOnly: ReadOnly
    /// ReadIndex requests that arrived before this leader committed an entry of its own term.
    var pendingReadIndexMessages: [Message] = []
    /// Ticks since the last election timeout (leaders, candidates) or since the leader was heard
    /// from (followers).
    var electionElapsed = 0
    /// Ticks since the last heartbeat (leaders only).
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    /// The soft and hard state the last Ready reported; a Ready carries them only when changed.
    var reportedSoftState = SoftState()
    var reportedHardState = HardState()

    let maxMsgSize: UInt64
    let maxUncommittedSize: UInt64
    let checkQuorum: Bool
    let preVote: Bool
    let heartbeatTimeout: Int
    let electionTimeout: Int
    let disableProposalForwarding: Bool
    let stepDownOnRemoval: Bool
    var rng: SplitMix64
    let logger: Logger

    init(config input: Config) throws {
        let c = try input.validated()
        id = c.id
        log = try RaftLog(storage: c.storage, maxNextEntriesSize: c.maxCommittedSizePerReady)
        tracker = ProgressTracker(maxInflight: c.maxInflightMsgs, maxInflightBytes: c.maxInflightBytes)
        readOnly = ReadOnly(option: c.readOnlyOption)
        maxMsgSize = c.maxSizePerMsg
        maxUncommittedSize = c.maxUncommittedEntriesSize == 0 ? .max : c.maxUncommittedEntriesSize
        checkQuorum = c.checkQuorum
        preVote = c.preVote
        heartbeatTimeout = c.heartbeatTick
        electionTimeout = c.electionTick
        disableProposalForwarding = c.disableProposalForwarding
        stepDownOnRemoval = c.stepDownOnRemoval
        asyncStorageWrites = c.asyncStorageWrites
        rng = SplitMix64(seed: c.id &* 0x9E37_79B9_7F4A_7C15 ^ c.randomSeed)
        logger = c.logger

        let (hardState, confState) = try c.storage.initialState()
        let outcome: ConfChanger.Outcome
        do {
            outcome = try ConfChanger.restore(confState, tracker: tracker, lastIndex: log.lastIndex)
        } catch {
            throw RaftError.invalidConfig("the storage's ConfState \(confState) is not a valid configuration: \(error)")
        }
        switchToConfig(outcome.config, outcome.progress)

        if !hardState.isEmpty { try loadState(hardState) }
        if c.applied > 0 {
            guard c.applied <= log.committed else {
                throw RaftError.invalidConfig("applied (\(c.applied)) is beyond the committed index (\(log.committed)) of the storage")
            }
            guard c.applied >= log.applied else {
                throw RaftError.invalidConfig(
                    "applied (\(c.applied)) is below the storage's snapshot index (\(log.applied)); restore the state machine from the snapshot and pass its index")
            }
            log.appliedTo(c.applied)
        }
        becomeFollower(term: term, lead: 0)
        reportedSoftState = softState
        reportedHardState = hardState
        logger.info(
            "raft node started",
            metadata: [
                "raft.id": "\(id)", "peers": "\(tracker.voterIDs)", "term": "\(term)", "commit": "\(log.committed)",
                "applied": "\(log.applied)", "lastIndex": "\(log.lastIndex)", "lastTerm": "\(log.lastTerm)",
            ])
    }

    private mutating func loadState(_ hs: HardState) throws {
        if hs.commit < log.committed || hs.commit > log.lastIndex {
            throw RaftError.invalidConfig(
                "the saved commit index \(hs.commit) is out of range [\(log.committed), \(log.lastIndex)]: the log was corrupted, truncated or lost")
        }
        log.committed = hs.commit
        term = hs.term
        vote = hs.vote
    }

    // MARK: - State observed by the drivers

    var softState: SoftState { SoftState(lead: lead, raftState: state) }
    var hardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }

    /// Whether this node may become leader: a voter, not waiting to apply a snapshot.
    var promotable: Bool {
        guard let pr = tracker.progress[id] else { return false }
        return !pr.isLearner && !log.hasPendingSnapshot
    }

    // MARK: - Role changes

    mutating func reset(term newTerm: UInt64) {
        if term != newTerm {
            term = newTerm
            vote = 0
        }
        lead = 0
        electionElapsed = 0
        heartbeatElapsed = 0
        resetRandomizedElectionTimeout()
        abortLeaderTransfer()
        tracker.resetVotes()
        let lastIndex = log.lastIndex
        for i in 0..<tracker.progress.count {
            let pid = tracker.progress[position: i].id
            let learner = tracker.progress[position: i].isLearner
            tracker.progress[position: i] = Progress(
                // With asynchronous writes the leader counts only what it has made durable.
                id: pid, match: pid == id ? (asyncStorageWrites ? Swift.min(lastIndex, log.persistedIndex) : lastIndex) : 0,
                next: lastIndex + 1,
                inflights: Inflights(capacity: tracker.maxInflight, maxBytes: tracker.maxInflightBytes),
                isLearner: learner)
        }
        pendingConfIndex = 0
        uncommittedSize = 0
        readOnly = ReadOnly(option: readOnly.option)
        // Reads held for this leader's first commit are dropped with it (etcd keeps them, to be
        // answered only if it leads again, possibly much later); the application times them out.
        pendingReadIndexMessages.removeAll()
    }

    mutating func becomeFollower(term newTerm: UInt64, lead newLead: UInt64) {
        reset(term: newTerm)
        lead = newLead
        state = .follower
        logger.info("became follower", metadata: ["raft.id": "\(id)", "term": "\(term)", "lead": "\(newLead)"])
    }

    mutating func becomeCandidate() {
        precondition(state != .leader, "invalid transition [leader -> candidate]")
        reset(term: term + 1)
        vote = id
        state = .candidate
        logger.info("became candidate", metadata: ["raft.id": "\(id)", "term": "\(term)"])
    }

    mutating func becomePreCandidate() {
        precondition(state != .leader, "invalid transition [leader -> pre-candidate]")
        // A pre-candidate changes neither term nor vote: it only asks.
        tracker.resetVotes()
        lead = 0
        state = .preCandidate
        logger.info("became pre-candidate", metadata: ["raft.id": "\(id)", "term": "\(term)"])
    }

    mutating func becomeLeader() {
        precondition(state != .follower, "invalid transition [follower -> leader]")
        reset(term: term)
        lead = id
        state = .leader
        // The leader trivially replicates to itself; reset() set its match to the last index.
        if let i = tracker.progress.index(of: id) {
            tracker.progress[position: i].becomeReplicate()
            // The leader is trivially active (etcd 3.6 does the same; status shows it).
            tracker.progress[position: i].recentActive = true
        }
        // An empty entry of the new term: committing it commits everything before it (§5.4.2)
        // and tells the leader its commit index is current (needed for ReadIndex).
        guard appendEntries([Entry()]) else {
            preconditionFailure("an empty entry must never be refused")
        }
        // No configuration change until that entry is applied: the unapplied tail may hold a
        // change, and a leader must commit an entry of its own term before changing the
        // membership (the fix to single-server changes, Ongaro's raft-dev post of 2015). etcd
        // sets this before the empty entry and so waits only for the entries before it.
        pendingConfIndex = log.lastIndex
        // The empty entry does not count towards the uncommitted size limit.
        logger.info("became leader", metadata: ["raft.id": "\(id)", "term": "\(term)"])
    }

    // MARK: - Ticks

    mutating func tick() {
        if state == .leader { tickHeartbeat() } else { tickElection() }
    }

    /// Followers and candidates: campaign when the election timeout passes.
    mutating func tickElection() {
        electionElapsed += 1
        if promotable && pastElectionTimeout {
            electionElapsed = 0
            _ = try? step(Message(type: .hup, from: id))
        }
    }

    /// Leaders: heartbeat, check the quorum and abandon a stalled transfer.
    mutating func tickHeartbeat() {
        heartbeatElapsed += 1
        electionElapsed += 1
        if electionElapsed >= electionTimeout {
            electionElapsed = 0
            if checkQuorum { _ = try? step(Message(type: .checkQuorum, from: id)) }
            // A transfer must finish within one election timeout; otherwise give up and serve again.
            if state == .leader && leadTransferee != 0 { abortLeaderTransfer() }
        }
        guard state == .leader else { return }
        if heartbeatElapsed >= heartbeatTimeout {
            heartbeatElapsed = 0
            _ = try? step(Message(type: .beat, from: id))
        }
    }

    var pastElectionTimeout: Bool { electionElapsed >= randomizedElectionTimeout }

    mutating func resetRandomizedElectionTimeout() {
        randomizedElectionTimeout = electionTimeout + Int(rng.next() % UInt64(electionTimeout))
    }

    // MARK: - Sending

    /// Queues a message, stamping sender and term. Vote messages carry their own term; proposals
    /// and read requests forwarded to the leader carry none (they act as local messages there).
    mutating func send(_ message: consuming Message) {
        // Consumed, not copied: a copy retains every array of the message once more. The
        // preconditions capture only the type: an autoclosure capturing the message copies it.
        if message.from == 0 { message.from = id }
        let type = message.type
        switch type {
        case .vote, .voteResponse, .preVote, .preVoteResponse:
            precondition(message.term != 0, "term must be set on \(type) messages")
        default:
            precondition(message.term == 0, "term must not be set on \(type) messages; it is stamped when sent")
            if type != .proposal && type != .readIndex { message.term = term }
        }
        if asyncStorageWrites && state != .leader && type.promisesWhatIsPersisted {
            messagesAfterPersist.append(message)
            return
        }
        // A leader sends to several peers at once: start a new buffer with room for a round.
        if messages.capacity == 0 { messages.reserveCapacity(Swift.max(4, tracker.progress.count)) }
        messages.append(message)
    }

    mutating func abortLeaderTransfer() {
        leadTransferee = 0
    }
}
