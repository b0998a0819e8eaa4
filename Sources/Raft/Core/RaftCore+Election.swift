/// Elections (§5.2), pre-elections (thesis §9.6) and voting (§5.4.1).
extension RaftCore {
    /// Starts an election unless this node leads already, cannot lead, or still has to apply a
    /// committed configuration change (it might not be a voter once that is applied).
    mutating func hup(_ type: CampaignType) {
        if state == .leader {
            logger.debug("ignoring hup: already leader", metadata: ["raft.id": "\(id)"])
            return
        }
        guard promotable else {
            logger.warning("is unpromotable and cannot campaign", metadata: ["raft.id": "\(id)"])
            return
        }
        if log.committed > log.applied {
            let pending = pendingConfChangeCount(from: log.applied + 1, through: log.committed)
            if pending > 0 {
                logger.warning(
                    "cannot campaign: committed configuration changes are not applied yet",
                    metadata: ["raft.id": "\(id)", "term": "\(term)", "pending": "\(pending)"])
                return
            }
        }
        logger.info("starting a new election", metadata: ["raft.id": "\(id)", "term": "\(term)", "type": "\(type)"])
        campaign(type)
    }

    private func pendingConfChangeCount(from lo: UInt64, through hi: UInt64) -> Int {
        let entries: [Entry]
        do {
            entries = try log.slice(lo, hi + 1, maxSize: .max)
        } catch {
            preconditionFailure("unexpected error getting unapplied entries [\(lo), \(hi)]: \(error)")
        }
        return entries.reduce(0) { $0 + ($1.type == .normal ? 0 : 1) }
    }

    mutating func campaign(_ type: CampaignType) {
        if !promotable {
            // hup checks this; a direct call (tests) proceeds like etcd but says so.
            logger.warning("campaigning while unpromotable", metadata: ["raft.id": "\(id)"])
        }
        let requestTerm: UInt64
        let requestType: MessageType
        if type == .preElection {
            becomePreCandidate()
            requestType = .preVote
            // Pre-votes ask about the next term without moving to it yet.
            requestTerm = term + 1
        } else {
            becomeCandidate()
            requestType = .vote
            requestTerm = term
        }
        if poll(id, granted: true).result == .won {
            // Our own vote is a quorum: a single-voter cluster.
            if type == .preElection { campaign(.election) } else { becomeLeader() }
            return
        }
        let lastIndex = log.lastIndex
        let lastTerm = log.lastTerm
        for voter in tracker.voterIDs where voter != id {
            send(
                Message(
                    type: requestType, to: voter, term: requestTerm, logTerm: lastTerm, index: lastIndex,
                    context: type == .transfer ? CampaignType.transferContext : []))
        }
    }

    /// Records a vote and counts the election.
    mutating func poll(_ from: UInt64, granted: Bool) -> (granted: Int, rejected: Int, result: VoteResult) {
        tracker.recordVote(from, granted: granted)
        return tracker.tallyVotes()
    }

    /// Answers a (pre-)vote request whose term is at least ours.
    mutating func handleVoteRequest(_ m: Message) {
        // We can vote if this repeats a vote we already cast, or we have not voted and know of
        // no leader in this term, or it is a pre-vote for a later term...
        let canVote = vote == m.from || (vote == 0 && lead == 0) || (m.type == .preVote && m.term > term)
        // ...and the candidate's log is at least as up to date as ours (§5.4.1).
        if canVote && log.isUpToDate(lastIndex: m.index, term: m.logTerm) {
            logger.info(
                "cast vote",
                metadata: [
                    "raft.id": "\(id)", "term": "\(term)", "type": "\(m.type)", "for": "\(m.from)",
                    "candidateLastIndex": "\(m.index)", "candidateLastTerm": "\(m.logTerm)",
                ])
            // The response carries the request's term: for a pre-vote that is our term + 1, which
            // the pre-candidate recognises as a grant for its coming election.
            send(Message(type: m.type.voteResponseType, to: m.from, term: m.term))
            if m.type == .vote {
                // Only real votes are recorded, and they reset the election timer.
                electionElapsed = 0
                vote = m.from
            }
        } else {
            logger.info(
                "rejected vote",
                metadata: [
                    "raft.id": "\(id)", "term": "\(term)", "type": "\(m.type)", "from": "\(m.from)",
                    "vote": "\(vote)", "lastIndex": "\(log.lastIndex)", "lastTerm": "\(log.lastTerm)",
                ])
            // A node that never saw a term (a snapshot without a hard state) answers in the
            // request's term: a response must carry one, and 0 would read as a local message.
            send(Message(type: m.type.voteResponseType, to: m.from, term: term == 0 ? m.term : term, reject: true))
        }
    }
}
