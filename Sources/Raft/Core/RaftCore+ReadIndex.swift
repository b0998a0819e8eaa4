/// Linearizable reads without writing to the log: ReadIndex (thesis §6.4) and leases (§6.4.1).
extension RaftCore {
    mutating func handleReadIndexAsLeader(_ m: Message) {
        guard m.entries.count == 1 else {
            logger.warning("ignored a readIndex request without exactly one context entry", metadata: ["raft.id": "\(id)", "from": "\(m.from)"])
            return
        }
        if tracker.isSingleton {
            // The only voter is its own quorum: the commit index is current.
            respondToReadIndex(m, index: log.committed)
            return
        }
        // Until this leader commits an entry of its own term it does not know the true commit
        // index (§6.4 step 1): hold the request.
        guard committedEntryInCurrentTerm else {
            pendingReadIndexMessages.append(m)
            return
        }
        sendReadIndexResponse(m)
    }

    var committedEntryInCurrentTerm: Bool {
        log.zeroTermOnOutOfBounds(log.committed) == term
    }

    private mutating func sendReadIndexResponse(_ m: Message) {
        // A lease holds while a quorum has been heard from since the last quorum check (less
        // than an election timeout ago): those followers grant no vote before it ends. Without
        // such a quorum, or during a transfer (whose votes skip the followers' leases), confirm
        // leadership with a heartbeat round as `.safe` does.
        // `quorumActive` is CheckQuorum's own test: the leader counts itself (it is marked active
        // from becoming leader on, and the checks reset only the others).
        if readOnly.option == .leaseBased && leadTransferee == 0 && tracker.quorumActive() {
            respondToReadIndex(m, index: log.committed)
            return
        }
        // Confirm leadership with a heartbeat round carrying the context; the leader acks itself.
        readOnly.addRequest(index: log.committed, m)
        _ = readOnly.recvAck(from: id, context: m.entries[0].data)
        broadcastHeartbeat(context: m.entries[0].data)
    }

    /// Answers locally (a ReadState) or to the follower that forwarded the request.
    mutating func respondToReadIndex(_ request: Message, index: UInt64) {
        if request.from == 0 || request.from == id {
            readStates.append(ReadState(index: index, requestContext: request.entries[0].data))
            return
        }
        send(Message(type: .readIndexResponse, to: request.from, index: index, entries: request.entries))
    }

    mutating func releasePendingReadIndexMessages() {
        guard !pendingReadIndexMessages.isEmpty else { return }
        guard committedEntryInCurrentTerm else {
            logger.error("pending read index requests released before committing an entry of the current term", metadata: ["raft.id": "\(id)"])
            return
        }
        let pending = pendingReadIndexMessages
        pendingReadIndexMessages.removeAll()
        for m in pending { sendReadIndexResponse(m) }
    }
}

/// Leadership transfer (thesis §3.10).
extension RaftCore {
    mutating func handleTransferLeader(_ m: Message, at i: Int) {
        let transferee = m.from
        if tracker.progress[position: i].isLearner {
            logger.debug("ignored leadership transfer to a learner", metadata: ["raft.id": "\(id)", "to": "\(transferee)"])
            return
        }
        if leadTransferee != 0 {
            if leadTransferee == transferee {
                logger.info("leadership transfer to this node already in progress", metadata: ["raft.id": "\(id)", "to": "\(transferee)"])
                return
            }
            abortLeaderTransfer()
            logger.info("aborted the previous leadership transfer", metadata: ["raft.id": "\(id)"])
        }
        if transferee == id {
            logger.debug("already leader; ignored transfer to self", metadata: ["raft.id": "\(id)"])
            return
        }
        logger.info("starting leadership transfer", metadata: ["raft.id": "\(id)", "term": "\(term)", "to": "\(transferee)"])
        // The transfer must finish within an election timeout (tickHeartbeat aborts it).
        electionElapsed = 0
        leadTransferee = transferee
        if tracker.progress[position: i].match == log.lastIndex {
            sendTimeoutNow(to: transferee)
            logger.info("transferee already up to date; sent timeoutNow", metadata: ["raft.id": "\(id)", "to": "\(transferee)"])
        } else {
            // Catch it up first; the append response that matches our last index triggers timeoutNow.
            maybeSendAppend(at: i, sendIfEmpty: true)
        }
    }

    mutating func sendTimeoutNow(to peer: UInt64) {
        send(Message(type: .timeoutNow, to: peer))
    }
}
