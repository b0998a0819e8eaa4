/// Entries fetched for one follower during a broadcast, reusable for the next one at `next`.
struct SharedEntries {
    var next: UInt64
    var entries: [Entry]
}

/// Log replication (§5.3): the leader's appends, heartbeats and commit rule, and the follower's
/// handling of appends, heartbeats and snapshots.
extension RaftCore {
    // MARK: - Leader: proposals and the log

    mutating func handleProposal(_ m: Message) throws(RaftError) {
        var entries = m.entries
        try propose(&entries, from: m.from)
    }

    /// The leader's handling of a proposal (etcd's stepLeader MsgProp). `entries` is stamped
    /// with term and index in place: a caller that owns a fresh array pays no copy.
    mutating func propose(_ entries: inout [Entry], from: UInt64) throws(RaftError) {
        guard !entries.isEmpty else {
            logger.warning("dropped an empty proposal", metadata: ["raft.id": "\(id)", "from": "\(from)"])
            throw .proposalDropped
        }
        // A leader that removed itself keeps leading until it steps down, but takes no new work.
        guard tracker.progress.contains(id) else { throw .proposalDropped }
        if leadTransferee != 0 {
            logger.debug(
                "leadership transfer in progress; dropping proposal",
                metadata: ["raft.id": "\(id)", "term": "\(term)", "transferee": "\(leadTransferee)"])
            throw .proposalDropped
        }
        // A change refused for size is not pending: remember what to restore.
        let previousPendingConfIndex = pendingConfIndex
        for i in entries.indices where entries[i].type != .normal {
            if let refusal = confChangeRefusal(entries[i]) {
                // Refused changes become empty entries so that the proposal's indices still line up.
                logger.info(
                    "ignoring conf change proposal",
                    metadata: ["raft.id": "\(id)", "reason": "\(refusal)", "config": "\(tracker.confState)"])
                entries[i] = Entry(type: .normal)
            } else {
                // Set at once, so that a second change in the same proposal is refused.
                pendingConfIndex = log.lastIndex + UInt64(i) + 1
            }
        }
        guard appendEntries(&entries) else {
            pendingConfIndex = previousPendingConfIndex
            throw .proposalDropped
        }
        // Followers that are caught up need exactly these entries: share the array instead of
        // copying it back out of the log (when it fits in one message).
        guard tracker.progress.count > 1 else { return }  // nobody to send to
        var shared: SharedEntries?
        if let first = entries.first, entries.count == 1 || entriesSize(entries) <= maxMsgSize {
            shared = SharedEntries(next: first.index, entries: entries)
        }
        broadcastAppend(sharing: &shared)
    }

    private func entriesSize(_ entries: [Entry]) -> UInt64 {
        var size: UInt64 = 0
        for e in entries { size &+= e.byteSize }
        return size
    }

    /// Why a proposed configuration change must not go into the log, or nil if it may.
    private func confChangeRefusal(_ entry: Entry) -> String? {
        let change: ConfChangeV2
        do {
            change = entry.type == .confChange
                ? try ConfChange(serializedBytes: entry.data).asV2
                : try ConfChangeV2(serializedBytes: entry.data)
        } catch {
            return "the entry's data is not a valid \(entry.type == .confChange ? "ConfChange" : "ConfChangeV2"): \(error)"
        }
        let alreadyJoint = tracker.config.voters.isJoint
        let wantsLeaveJoint = change.changes.isEmpty
        if pendingConfIndex > log.applied {
            return "possible unapplied conf change at index \(pendingConfIndex) (applied to \(log.applied))"
        }
        if alreadyJoint && !wantsLeaveJoint { return "must transition out of joint config first" }
        if !alreadyJoint && wantsLeaveJoint { return "not in joint state; refusing empty conf change" }
        return nil
    }

    /// Appends entries at the end of the leader's log, stamping term and index. Returns false
    /// (appending nothing) when the uncommitted tail would exceed its size limit.
    mutating func appendEntries(_ entries: inout [Entry]) -> Bool {
        let lastIndex = log.lastIndex
        for i in entries.indices {
            entries[i].term = term
            entries[i].index = lastIndex + 1 + UInt64(i)
        }
        guard increaseUncommittedSize(entries) else {
            logger.debug(
                "appending new entries would exceed the uncommitted entry size limit; dropping proposal",
                metadata: ["raft.id": "\(id)", "uncommittedSize": "\(uncommittedSize)", "limit": "\(maxUncommittedSize)"])
            return false
        }
        let newLast = log.append(entries)
        // With asynchronous writes the leader's own copy counts once durable (`persisted`).
        guard !asyncStorageWrites else { return true }
        if let i = tracker.progress.index(of: id) { tracker.progress[position: i].maybeUpdate(newLast) }
        // A single voter commits on append; others wait for acknowledgements.
        maybeCommit()
        return true
    }

    mutating func appendEntries(_ entries: [Entry]) -> Bool {
        var entries = entries
        return appendEntries(&entries)
    }

    /// Advances the commit index to what a quorum has acknowledged, if that entry is of the
    /// current term (§5.4.2: older entries are committed only indirectly).
    @discardableResult
    mutating func maybeCommit() -> Bool {
        log.maybeCommit(maxIndex: tracker.committed(), term: term)
    }

    private mutating func increaseUncommittedSize(_ entries: [Entry]) -> Bool {
        var size: UInt64 = 0
        for e in entries { size += e.payloadSize }
        // Always admit a proposal into an empty tail, so that one over the limit is not stuck forever.
        if uncommittedSize > 0 && size > 0 && uncommittedSize + size > maxUncommittedSize { return false }
        uncommittedSize += size
        return true
    }

    /// Committed entries leave the uncommitted tail.
    mutating func reduceUncommittedSize(_ entries: [Entry]) {
        if uncommittedSize == 0 { return }
        var size: UInt64 = 0
        for e in entries { size += e.payloadSize }
        // The tail may have been counted from a later point than these entries (a new term).
        uncommittedSize = size > uncommittedSize ? 0 : uncommittedSize - size
    }

    // MARK: - Leader: sending

    mutating func broadcastAppend() {
        var shared: SharedEntries?
        broadcastAppend(sharing: &shared)
    }

    /// Sends every follower what it needs. Followers waiting at the same index get the same
    /// entries array (arrays are shared until written), so a broadcast copies entries out of
    /// the log once, not once per follower.
    mutating func broadcastAppend(sharing shared: inout SharedEntries?) {
        for i in 0..<tracker.progress.count where tracker.progress[position: i].id != id {
            maybeSendAppend(at: i, sendIfEmpty: true, sharing: &shared)
        }
    }

    mutating func sendAppend(to peer: UInt64) {
        guard let i = tracker.progress.index(of: peer) else { return }
        maybeSendAppend(at: i, sendIfEmpty: true)
    }

    /// Sends the follower at progress position `i` the entries it needs (or a snapshot when they
    /// were compacted away). Returns whether a message was sent; `sendIfEmpty` sends an append
    /// without entries (to carry the commit index or probe).
    @discardableResult
    mutating func maybeSendAppend(at i: Int, sendIfEmpty: Bool) -> Bool {
        var shared: SharedEntries?
        return maybeSendAppend(at: i, sendIfEmpty: sendIfEmpty, sharing: &shared)
    }

    @discardableResult
    mutating func maybeSendAppend(at i: Int, sendIfEmpty: Bool, sharing shared: inout SharedEntries?) -> Bool {
        // Read only scalars: holding a copy of the Progress while mutating it in place would
        // make the inflights ring copy itself on every append.
        if tracker.progress[position: i].isPaused { return false }
        let peer = tracker.progress[position: i].id
        let next = tracker.progress[position: i].next
        let prevTerm: UInt64?
        do { prevTerm = try log.term(next - 1) } catch { prevTerm = nil }
        var entries: [Entry]?
        if let shared, shared.next == next {
            entries = shared.entries
        } else {
            do { entries = try log.entries(from: next, maxSize: maxMsgSize) } catch { entries = nil }
            if let entries, !entries.isEmpty { shared = SharedEntries(next: next, entries: entries) }
        }
        if (entries?.isEmpty ?? true) && !sendIfEmpty { return false }

        guard let prevTerm, let entries else {
            return sendSnapshot(at: i)
        }
        if let last = entries.last {
            switch tracker.progress[position: i].state {
            case .replicate:
                // Replicating: move next past what we send without waiting for the answer.
                var bytes: UInt64 = 0
                for e in entries { bytes &+= e.payloadSize }
                tracker.progress[position: i].optimisticUpdate(last.index)
                tracker.progress[position: i].inflights.add(index: last.index, bytes: bytes)
            case .probe:
                tracker.progress[position: i].probeSent = true
            case .snapshot:
                preconditionFailure("sending an append to \(peer) in the snapshot state")
            }
        }
        send(Message(type: .append, to: peer, logTerm: prevTerm, index: next - 1, entries: entries, commit: log.committed))
        return true
    }

    /// The follower needs entries that were compacted: send the latest snapshot instead.
    private mutating func sendSnapshot(at i: Int) -> Bool {
        let pr = tracker.progress[position: i]
        guard pr.recentActive else {
            logger.debug("not sending a snapshot to a peer that is not recently active", metadata: ["raft.id": "\(id)", "to": "\(pr.id)"])
            return false
        }
        let snapshot: Snapshot
        do {
            snapshot = try log.snapshot()
        } catch let error as RaftError where error == .snapshotTemporarilyUnavailable {
            logger.debug("failed to send snapshot: temporarily unavailable", metadata: ["raft.id": "\(id)", "to": "\(pr.id)"])
            return false
        } catch {
            logger.error("failed to read the snapshot to send; will retry", metadata: ["raft.id": "\(id)", "to": "\(pr.id)", "error": "\(error)"])
            return false
        }
        guard !snapshot.isEmpty else {
            logger.error("storage returned an empty snapshot although entries were compacted; will retry", metadata: ["raft.id": "\(id)", "to": "\(pr.id)"])
            return false
        }
        tracker.progress[position: i].becomeSnapshot(snapshot.metadata.index)
        logger.info(
            "sent snapshot",
            metadata: [
                "raft.id": "\(id)", "to": "\(pr.id)", "index": "\(snapshot.metadata.index)",
                "term": "\(snapshot.metadata.term)", "progress": "\(tracker.progress[position: i])",
            ])
        send(Message(type: .snapshot, to: pr.id, snapshot: snapshot))
        return true
    }

    /// Heartbeats carry the newest pending read context, so that one round confirms all reads.
    mutating func broadcastHeartbeat() {
        broadcastHeartbeat(context: readOnly.lastPendingContext ?? [])
    }

    mutating func broadcastHeartbeat(context: [UInt8]) {
        for i in 0..<tracker.progress.count where tracker.progress[position: i].id != id {
            let pr = tracker.progress[position: i]
            // Never tell a follower to commit beyond what it is known to have: its log past
            // `match` may still differ from ours.
            send(Message(type: .heartbeat, to: pr.id, commit: Swift.min(pr.match, log.committed), context: context))
        }
    }

    // MARK: - Leader: responses

    mutating func handleAppendResponse(_ m: Message, at i: Int) {
        tracker.progress[position: i].recentActive = true
        if m.reject {
            logger.debug(
                "received append rejection",
                metadata: [
                    "raft.id": "\(id)", "from": "\(m.from)", "index": "\(m.index)", "hint": "\(m.rejectHint)",
                    "hintTerm": "\(m.logTerm)",
                ])
            // The follower told us the last index (and its term) where our logs may agree. Skip
            // back over every entry of ours whose term is above that term (etcd 3.5's rule).
            var nextProbe = m.rejectHint
            if m.logTerm > 0 {
                nextProbe = log.findConflictByTerm(index: m.rejectHint, term: m.logTerm).index
            }
            if tracker.progress[position: i].maybeDecrTo(rejected: m.index, matchHint: nextProbe) {
                if tracker.progress[position: i].state == .replicate { tracker.progress[position: i].becomeProbe() }
                maybeSendAppend(at: i, sendIfEmpty: true)
            }
            return
        }
        let wasPaused = tracker.progress[position: i].isPaused
        guard tracker.progress[position: i].maybeUpdate(m.index) else { return }
        switch tracker.progress[position: i].state {
        case .probe:
            tracker.progress[position: i].becomeReplicate()
        case .snapshot:
            if tracker.progress[position: i].match >= tracker.progress[position: i].pendingSnapshot {
                logger.info("recovered from needing a snapshot", metadata: ["raft.id": "\(id)", "from": "\(m.from)"])
                // Through probe into replicate: resets the inflights and sets next after match.
                tracker.progress[position: i].becomeProbe()
                tracker.progress[position: i].becomeReplicate()
            }
        case .replicate:
            tracker.progress[position: i].inflights.freeLE(m.index)
        }
        if maybeCommit() {
            // The leader committed an entry of its term: queued reads can be served now.
            releasePendingReadIndexMessages()
            broadcastAppend()
        } else if wasPaused {
            // The follower may have missed the latest commit index while paused.
            maybeSendAppend(at: i, sendIfEmpty: true)
        }
        // Flow control may allow several messages now (leaving probe, or freed inflights).
        while maybeSendAppend(at: i, sendIfEmpty: false) {}
        if m.from == leadTransferee && tracker.progress[position: i].match == log.lastIndex {
            logger.info("transferee is up to date; sending timeoutNow", metadata: ["raft.id": "\(id)", "to": "\(m.from)"])
            sendTimeoutNow(to: m.from)
        }
    }

    mutating func handleHeartbeatResponse(_ m: Message, at i: Int) {
        tracker.progress[position: i].recentActive = true
        tracker.progress[position: i].probeSent = false
        // The follower is alive: free one inflight slot so a full window cannot stall forever.
        if tracker.progress[position: i].state == .replicate && tracker.progress[position: i].inflights.isFull {
            tracker.progress[position: i].inflights.freeFirstOne()
        }
        if tracker.progress[position: i].match < log.lastIndex {
            maybeSendAppend(at: i, sendIfEmpty: true)
        }
        // Lease reads fall back to a heartbeat round when the lease may have lapsed.
        guard !m.context.isEmpty else { return }
        guard let acks = readOnly.recvAck(from: m.from, context: m.context), tracker.voteResult(acks: acks) == .won else {
            return
        }
        for status in readOnly.advance(context: m.context) {
            respondToReadIndex(status.request, index: status.index)
        }
    }

    // MARK: - Follower

    mutating func handleAppendEntries(_ m: Message) {
        if m.index < log.committed {
            // Already committed here: tell the leader how far we are.
            send(Message(type: .appendResponse, to: m.from, index: log.committed))
            return
        }
        if let lastNew = log.maybeAppend(index: m.index, logTerm: m.logTerm, committed: m.commit, entries: m.entries) {
            send(Message(type: .appendResponse, to: m.from, index: lastNew))
            return
        }
        // Our log does not contain (m.index, m.logTerm). Give the leader the largest index at
        // which the logs may still agree, with its term, so it can skip whole terms back.
        let hint = log.findConflictByTerm(index: Swift.min(m.index, log.lastIndex), term: m.logTerm)
        logger.debug(
            "rejected append",
            metadata: [
                "raft.id": "\(id)", "from": "\(m.from)", "index": "\(m.index)", "logTerm": "\(m.logTerm)",
                "hintIndex": "\(hint.index)", "hintTerm": "\(hint.term)",
            ])
        send(Message(type: .appendResponse, to: m.from, logTerm: hint.term, index: m.index, reject: true, rejectHint: hint.index))
    }

    mutating func handleHeartbeat(_ m: Message) {
        log.commitTo(m.commit)
        send(Message(type: .heartbeatResponse, to: m.from, context: m.context))
    }

    mutating func handleSnapshot(_ m: Message) {
        guard let snapshot = m.snapshot else {
            logger.warning("ignored a snapshot message without a snapshot", metadata: ["raft.id": "\(id)", "from": "\(m.from)"])
            return
        }
        if restore(snapshot) {
            logger.info(
                "restored snapshot",
                metadata: ["raft.id": "\(id)", "index": "\(snapshot.metadata.index)", "term": "\(snapshot.metadata.term)"])
            send(Message(type: .appendResponse, to: m.from, index: log.lastIndex))
        } else {
            logger.info(
                "ignored snapshot",
                metadata: ["raft.id": "\(id)", "index": "\(snapshot.metadata.index)", "commit": "\(log.committed)"])
            send(Message(type: .appendResponse, to: m.from, index: log.committed))
        }
    }

    /// Replaces the log and configuration with a snapshot newer than the commit index.
    /// Returns false if the snapshot is not needed (or must not be applied).
    mutating func restore(_ snapshot: Snapshot) -> Bool {
        let meta = snapshot.metadata
        if meta.index <= log.committed { return false }
        if state != .follower {
            // Defense in depth: a leader applying a snapshot could move on to a new term without
            // becoming a follower; step down into the next term instead.
            logger.warning("attempted to restore a snapshot as \(state); stepping down", metadata: ["raft.id": "\(id)"])
            becomeFollower(term: term + 1, lead: 0)
            return false
        }
        // More defense in depth: a snapshot whose configuration does not include us is useless
        // (and would make us unpromotable for the wrong reason).
        let cs = meta.confState
        guard cs.voters.contains(id) || cs.learners.contains(id) || cs.votersOutgoing.contains(id) else {
            logger.warning("ignored a snapshot whose configuration does not contain this node", metadata: ["raft.id": "\(id)", "confState": "\(cs)"])
            return false
        }
        // A configuration that cannot be rebuilt exactly is refused before anything changes.
        let outcome: ConfChanger.Outcome
        let fresh = ProgressTracker(maxInflight: tracker.maxInflight, maxInflightBytes: tracker.maxInflightBytes)
        do {
            outcome = try ConfChanger.restore(cs, tracker: fresh, lastIndex: meta.index)
        } catch {
            logger.error("ignored a snapshot with an invalid configuration", metadata: ["raft.id": "\(id)", "error": "\(error)"])
            return false
        }
        if log.matchTerm(meta.index, meta.term) {
            // We already have the entry at the snapshot's index: just move the commit index.
            logger.info("fast-forwarded commit to snapshot", metadata: ["raft.id": "\(id)", "index": "\(meta.index)", "term": "\(meta.term)"])
            log.commitTo(meta.index)
            return false
        }
        log.restore(snapshot)
        // New members probe from the last index, which after the restore is the snapshot's.
        tracker = fresh
        switchToConfig(outcome.config, outcome.progress)
        if let i = tracker.progress.index(of: id) {
            let next = tracker.progress[position: i].next
            tracker.progress[position: i].maybeUpdate(next - 1)
        }
        return true
    }
}
