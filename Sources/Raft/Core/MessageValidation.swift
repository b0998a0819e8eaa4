/// The gate every message from the network passes before it reaches the step functions.
///
/// Raft trusts its peers: etcd's state machine takes a message's term, indexes and commit as a
/// correct peer would have set them, and stops the process (or, in Go, wraps around silently)
/// when they are not. Here a message whose values no correct peer sends is refused with a
/// reason, before anything changes, so that no value in any message can trap the node or leave
/// a data directory that cannot start again. What a correct peer may send is judged against
/// this node's own state where the protocol bounds it (a follower never acknowledges beyond
/// what its leader sent; a leader never tells a follower to commit beyond what that follower
/// acknowledged), and against `valueCeiling` where it does not.
///
/// The gate does not make raft Byzantine-tolerant: a member that lies within these bounds can
/// still break safety. Authenticating members is the transport's job (mutual TLS).
extension Message {
    /// The largest term, index or commit `RawNode.step` accepts. No correct cluster reaches 2^62
    /// terms or log entries: at a million elections or entries a second that is 146,000 years.
    /// Every value in a message is checked against it, so that `term + 1`, `index + 1` and
    /// `index + entries.count` never overflow, in this node or in a data directory it persisted.
    public static let valueCeiling: UInt64 = 1 << 62
}

extension RaftCore {
    /// Steps `message`, received from a peer, unless it must be refused (RawNode.step).
    /// Mutating, so that a driver holding the core in a class property checks it in place: a
    /// non-mutating call there copies the whole core first, retaining every array in it
    /// (measured: see Benchmarks/README.md).
    mutating func stepReceived(_ message: Message) throws {
        if message.type.isLocal { throw RaftError.stepLocalMessage }
        // Only proposals and read requests forwarded to a leader travel without a term; any other
        // message without one would be taken for a local event and skip the term rules.
        if message.term == 0 && message.type != .proposal && message.type != .readIndex {
            throw RaftError.invalidMessage("\(message.type) from \(message.from) carries no term")
        }
        if message.type.isResponse && !tracker.progress.contains(message.from) {
            throw RaftError.stepPeerNotFound
        }
        if let problem = refusal(of: message) { throw RaftError.invalidMessage(problem) }
        try step(message)
    }

    /// Why `m`, received from the network, must not be stepped, or nil if it may.
    func refusal(of m: Message) -> String? {
        if let problem = valueProblem(m) { return problem }
        switch m.type {
        case .append:
            if let problem = appendProblem(m) { return problem }
        case .snapshot:
            if let problem = snapshotProblem(m) { return problem }
        default:
            break
        }
        if m.from == 0 { return "\(m.type) has no sender" }
        if m.type == .proposal || m.type == .readIndex {
            // Forwarded by a follower to its leader, or by a former leader to the new one (they
            // travel without a term): only members may ask, over the network, for a write or read.
            if m.term != 0 { return "\(m.type) from \(m.from) carries term \(m.term); forwarded requests travel without one" }
            if m.from != id && !tracker.progress.contains(m.from) {
                return "\(m.type) forwarded from \(m.from), which is not a member"
            }
            return nil
        }
        // The remaining rules compare the message with this node's view of the same term; a
        // message of another term is handled by the term rules (a newer one makes us follow
        // before it is looked at, an older one is answered or dropped).
        if m.term == term { return currentTermProblem(m) }
        if m.term > term { return newerTermProblem(m) }
        return nil
    }

    /// Values beyond any cluster's lifetime, in any field of any message.
    private func valueProblem(_ m: Message) -> String? {
        let ceiling = Message.valueCeiling
        if m.term > ceiling { return "\(m.type) from \(m.from) has term \(m.term), beyond any cluster's lifetime" }
        if m.logTerm > ceiling || m.index > ceiling || m.commit > ceiling || m.rejectHint > ceiling {
            return "\(m.type) from \(m.from) has an index, log term, commit or hint beyond any cluster's lifetime "
                + "(index \(m.index), logTerm \(m.logTerm), commit \(m.commit), rejectHint \(m.rejectHint))"
        }
        if let meta = m.snapshot?.metadata, meta.index > ceiling || meta.term > ceiling {
            return "\(m.type) from \(m.from) carries a snapshot at index \(meta.index), term \(meta.term), beyond any cluster's lifetime"
        }
        return nil
    }

    /// An append's entries must follow `index` one by one, with terms that never decrease,
    /// start at or after `logTerm` and never pass the message's term; `logTerm` is 0 only at
    /// index 0 (every entry has a term of at least 1). The log relies on all of it.
    private func appendProblem(_ m: Message) -> String? {
        if m.logTerm > m.term { return "append from \(m.from): logTerm \(m.logTerm) is above the message's term \(m.term)" }
        if (m.logTerm == 0) != (m.index == 0) {
            return "append from \(m.from): logTerm \(m.logTerm) at index \(m.index) (only index 0 has term 0)"
        }
        var expected = m.index
        var lastTerm = Swift.max(m.logTerm, 1)
        for e in m.entries {
            guard e.index == expected + 1 else {
                return "append from \(m.from): entry index \(e.index) does not follow \(expected)"
            }
            guard e.term >= lastTerm, e.term <= m.term else {
                return "append from \(m.from): entry \(e.index) has term \(e.term), outside [\(lastTerm), \(m.term)]"
            }
            expected = e.index
            lastTerm = e.term
        }
        // `valueProblem` bounds `index`, and a frame holds far fewer than 2^62 entries.
        return nil
    }

    /// A snapshot names an entry (index and term at least 1) of a term no later than its
    /// sender's. Its configuration is checked when it is restored.
    private func snapshotProblem(_ m: Message) -> String? {
        guard let meta = m.snapshot?.metadata else { return nil }  // ignored by handleSnapshot
        if meta.index == 0 || meta.term == 0 || meta.term > m.term {
            return "snapshot from \(m.from) at index \(meta.index), term \(meta.term) is not an entry of term \(m.term) or before"
        }
        return nil
    }

    /// A message of our own term, judged against what this node sent and holds.
    private func currentTermProblem(_ m: Message) -> String? {
        switch m.type {
        case .append, .heartbeat, .snapshot:
            if state == .leader {
                return "\(m.type) from \(m.from) in term \(term), which this node leads"
            }
            if lead != 0 && m.from != lead {
                return "\(m.type) from \(m.from) in term \(term), whose leader is \(lead)"
            }
            if m.type == .heartbeat { return heartbeatCommitProblem(m) }
        case .appendResponse where state == .leader:
            let last = log.lastIndex
            // A follower acknowledges, or rejects, only indexes this leader sent it; a rejection
            // hints at an index at or below the rejected one, of a term no later than this one.
            if m.index > last {
                return "appendResponse from \(m.from) for index \(m.index), beyond this leader's last index \(last)"
            }
            if m.reject && m.rejectHint > m.index {
                return "appendResponse from \(m.from) rejects index \(m.index) with a hint \(m.rejectHint) above it"
            }
            if m.reject && m.logTerm > term {
                return "appendResponse from \(m.from) hints at term \(m.logTerm), above the current term \(term)"
            }
        case .readIndexResponse, .timeoutNow:
            // Only the leader answers reads and hands over leadership.
            if m.from != lead {
                return "\(m.type) from \(m.from), which does not lead term \(term) (leader: \(lead))"
            }
        default:
            break
        }
        return nil
    }

    /// A message of a newer term than ours.
    private func newerTermProblem(_ m: Message) -> String? {
        switch m.type {
        case .heartbeat:
            return heartbeatCommitProblem(m)
        case .timeoutNow:
            // The leader hands over only to a follower it has caught up, in its own term.
            return "timeoutNow from \(m.from) in term \(m.term), which this node has not seen led"
        default:
            return nil
        }
    }

    /// A leader tells a follower to commit at most what the follower acknowledged to it in this
    /// term (`min(match, committed)`), so a correct heartbeat never commits beyond this log.
    /// One that does either comes from a forger, or proves that this node lost entries it had
    /// acknowledged (its disk dropped synced writes). etcd stops the process; stopping would
    /// hand a forger a way to kill the node, and refusing the commit keeps this node from
    /// applying what it does not hold, so it is refused with both explanations.
    private func heartbeatCommitProblem(_ m: Message) -> String? {
        let last = log.lastIndex
        guard m.commit > last else { return nil }
        return "heartbeat from \(m.from) in term \(m.term) commits index \(m.commit), beyond this node's last index "
            + "\(last): either the message is forged, or this node lost entries it acknowledged (its disk lost "
            + "synced writes; restore it from a peer)"
    }
}
