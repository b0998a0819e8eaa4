/// Stepping messages: the term rules common to every role, then one step function per role.
extension RaftCore {
    mutating func step(_ m: Message) throws(RaftError) {
        // Term rules first (§5.1): a higher term makes us follow; a lower one is stale.
        if m.term == 0 {
            // Local message (or a forwarded proposal/read request).
        } else if m.term > term {
            if m.type == .vote || m.type == .preVote {
                let forced = m.context == CampaignType.transferContext
                let inLease = checkQuorum && lead != 0 && electionElapsed < electionTimeout
                if !forced && inLease {
                    // Heard from a leader within the minimum election timeout: ignore the request
                    // without raising our term or voting (thesis §4.2.3), so that a removed or
                    // partitioned node cannot disrupt a healthy leader.
                    logger.info(
                        "ignored vote request: lease is not expired",
                        metadata: [
                            "raft.id": "\(id)", "term": "\(term)", "from": "\(m.from)", "msgTerm": "\(m.term)",
                            "remainingTicks": "\(electionTimeout - electionElapsed)",
                        ])
                    return
                }
            }
            switch m.type {
            case .preVote:
                // Never change our term in response to a PreVote.
                break
            case .preVoteResponse where !m.reject:
                // Pre-votes are requested for our term + 1; a grant does not mean a newer term
                // exists. If we win, we will raise our term ourselves.
                break
            default:
                logger.info(
                    "received a message with a higher term",
                    metadata: ["raft.id": "\(id)", "term": "\(term)", "type": "\(m.type)", "from": "\(m.from)", "msgTerm": "\(m.term)"])
                if m.type == .append || m.type == .heartbeat || m.type == .snapshot {
                    becomeFollower(term: m.term, lead: m.from)
                } else {
                    becomeFollower(term: m.term, lead: 0)
                }
            }
        } else if m.term < term {
            if (checkQuorum || preVote) && (m.type == .heartbeat || m.type == .append) {
                // A leader of an older term still thinks it leads: perhaps it was partitioned, or
                // our term rose through pre-votes it never saw. Tell it our term so it steps down;
                // otherwise, with CheckQuorum or PreVote, it might never learn of it.
                send(Message(type: .appendResponse, to: m.from))
            } else if m.type == .preVote {
                // Reject explicitly so the pre-candidate learns our higher term and does not wait.
                send(Message(type: .preVoteResponse, to: m.from, term: term, reject: true))
            }
            // Other stale messages are dropped.
            return
        }

        switch m.type {
        case .hup:
            hup(preVote ? .preElection : .election)
        case .vote, .preVote:
            handleVoteRequest(m)
        default:
            switch state {
            case .leader: try stepLeader(m)
            case .candidate, .preCandidate: try stepCandidate(m)
            case .follower: try stepFollower(m)
            }
        }
    }

    private mutating func stepLeader(_ m: Message) throws(RaftError) {
        switch m.type {
        case .beat:
            broadcastHeartbeat()
            return
        case .checkQuorum:
            // The leader always counts itself as active (it may have just removed itself).
            if let i = tracker.progress.index(of: id) { tracker.progress[position: i].recentActive = true }
            if !tracker.quorumActive() {
                logger.info("stepped down: no quorum was active within an election timeout", metadata: ["raft.id": "\(id)", "term": "\(term)"])
                becomeFollower(term: term, lead: 0)
            }
            // Everyone but us must prove they are alive again before the next check.
            for i in 0..<tracker.progress.count where tracker.progress[position: i].id != id {
                tracker.progress[position: i].recentActive = false
            }
            return
        case .proposal:
            try handleProposal(m)
            return
        case .readIndex:
            handleReadIndexAsLeader(m)
            return
        default:
            break
        }

        // Everything else is about one follower and needs its progress.
        guard let i = tracker.progress.index(of: m.from) else {
            logger.debug("no progress for the sender", metadata: ["raft.id": "\(id)", "from": "\(m.from)", "type": "\(m.type)"])
            return
        }
        switch m.type {
        case .appendResponse:
            handleAppendResponse(m, at: i)
        case .heartbeatResponse:
            handleHeartbeatResponse(m, at: i)
        case .snapshotStatus:
            guard tracker.progress[position: i].state == .snapshot else { return }
            if m.reject {
                // Forget the snapshot first, or probing would resume after a snapshot never applied.
                tracker.progress[position: i].pendingSnapshot = 0
            }
            tracker.progress[position: i].becomeProbe()
            logger.info(
                m.reject ? "snapshot failed, resumed probing" : "snapshot succeeded, resumed probing",
                metadata: ["raft.id": "\(id)", "to": "\(m.from)", "progress": "\(tracker.progress[position: i])"])
            // After success, wait for the follower's append response; after failure, wait a
            // heartbeat interval before trying again.
            tracker.progress[position: i].probeSent = true
        case .unreachable:
            // While replicating optimistically an unreachable peer has probably lost appends:
            // probe again from the last known match.
            if tracker.progress[position: i].state == .replicate { tracker.progress[position: i].becomeProbe() }
            logger.debug("failed to send message to peer: unreachable", metadata: ["raft.id": "\(id)", "to": "\(m.from)"])
        case .transferLeader:
            handleTransferLeader(m, at: i)
        default:
            break
        }
    }

    private mutating func stepCandidate(_ m: Message) throws(RaftError) {
        let myVoteResponse: MessageType = state == .preCandidate ? .preVoteResponse : .voteResponse
        switch m.type {
        case .proposal:
            logger.debug("no leader; dropping proposal", metadata: ["raft.id": "\(id)", "term": "\(term)"])
            throw .proposalDropped
        case .append:
            becomeFollower(term: m.term, lead: m.from)
            handleAppendEntries(m)
        case .heartbeat:
            becomeFollower(term: m.term, lead: m.from)
            handleHeartbeat(m)
        case .snapshot:
            becomeFollower(term: m.term, lead: m.from)
            handleSnapshot(m)
        case myVoteResponse:
            let (granted, rejected, result) = poll(m.from, granted: !m.reject)
            logger.info(
                "received votes",
                metadata: [
                    "raft.id": "\(id)", "term": "\(term)", "type": "\(m.type)", "granted": "\(granted)",
                    "rejected": "\(rejected)",
                ])
            switch result {
            case .won:
                if state == .preCandidate {
                    campaign(.election)
                } else {
                    becomeLeader()
                    broadcastAppend()
                }
            case .lost:
                // A pre-vote response carries our future term; stay at our own term.
                becomeFollower(term: term, lead: 0)
            case .pending:
                break
            }
        case .timeoutNow:
            logger.debug("ignored timeoutNow as a candidate", metadata: ["raft.id": "\(id)", "from": "\(m.from)"])
        default:
            break
        }
    }

    private mutating func stepFollower(_ m: Message) throws(RaftError) {
        switch m.type {
        case .proposal:
            if lead == 0 {
                logger.debug("no leader; dropping proposal", metadata: ["raft.id": "\(id)", "term": "\(term)"])
                throw .proposalDropped
            }
            if disableProposalForwarding {
                logger.debug("proposal forwarding disabled; dropping proposal", metadata: ["raft.id": "\(id)", "lead": "\(lead)"])
                throw .proposalDropped
            }
            var forwarded = m
            forwarded.to = lead
            send(forwarded)
        case .append:
            electionElapsed = 0
            lead = m.from
            handleAppendEntries(m)
        case .heartbeat:
            electionElapsed = 0
            lead = m.from
            handleHeartbeat(m)
        case .snapshot:
            electionElapsed = 0
            lead = m.from
            handleSnapshot(m)
        case .transferLeader:
            forwardToLeader(m, dropping: "leader transfer request")
        case .timeoutNow:
            // Transfers skip PreVote: we know we are not recovering from a partition.
            logger.info("received timeoutNow; campaigning to take over leadership", metadata: ["raft.id": "\(id)", "term": "\(term)", "from": "\(m.from)"])
            hup(.transfer)
        case .readIndex:
            forwardToLeader(m, dropping: "read index request")
        case .readIndexResponse:
            guard m.entries.count == 1 else {
                logger.error("invalid readIndexResponse: expected exactly one entry", metadata: ["raft.id": "\(id)", "from": "\(m.from)", "entries": "\(m.entries.count)"])
                return
            }
            readStates.append(ReadState(index: m.index, requestContext: m.entries[0].data))
        default:
            break
        }
    }

    /// A follower hands requests only the leader can serve to the leader, if it knows one.
    private mutating func forwardToLeader(_ m: Message, dropping what: String) {
        guard lead != 0 else {
            logger.info("no leader; dropping \(what)", metadata: ["raft.id": "\(id)", "term": "\(term)"])
            return
        }
        var forwarded = m
        forwarded.to = lead
        // `send` stamps the term where the kind carries one (a transfer request from the
        // network arrives with its sender's term; this node speaks in its own).
        forwarded.term = 0
        send(forwarded)
    }
}
