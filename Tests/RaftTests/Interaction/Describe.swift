@testable import Raft

// How transcripts print raft's values: etcd's raft.DescribeReady, DescribeMessage and
// DescribeEntry, field for field, so that a transcript reads like its etcd counterpart and the
// two can be compared side by side. Names are etcd's (MsgApp, StateLeader, EntryNormal).

extension MessageType {
    var etcdName: String {
        switch self {
        case .hup: "MsgHup"
        case .beat: "MsgBeat"
        case .proposal: "MsgProp"
        case .append: "MsgApp"
        case .appendResponse: "MsgAppResp"
        case .vote: "MsgVote"
        case .voteResponse: "MsgVoteResp"
        case .snapshot: "MsgSnap"
        case .heartbeat: "MsgHeartbeat"
        case .heartbeatResponse: "MsgHeartbeatResp"
        case .unreachable: "MsgUnreachable"
        case .snapshotStatus: "MsgSnapStatus"
        case .checkQuorum: "MsgCheckQuorum"
        case .transferLeader: "MsgTransferLeader"
        case .timeoutNow: "MsgTimeoutNow"
        case .readIndex: "MsgReadIndex"
        case .readIndexResponse: "MsgReadIndexResp"
        case .preVote: "MsgPreVote"
        case .preVoteResponse: "MsgPreVoteResp"
        }
    }

    /// The type an etcd name stands for (`deliver-msgs type=MsgApp`).
    init?(etcdName: String) {
        guard let t = MessageType.allCases.first(where: { $0.etcdName == etcdName }) else { return nil }
        self = t
    }
}

extension StateType {
    var etcdName: String {
        switch self {
        case .follower: "StateFollower"
        case .candidate: "StateCandidate"
        case .leader: "StateLeader"
        case .preCandidate: "StatePreCandidate"
        }
    }
}

extension ProgressState {
    var etcdName: String {
        switch self {
        case .probe: "StateProbe"
        case .replicate: "StateReplicate"
        case .snapshot: "StateSnapshot"
        }
    }
}

enum Describe {
    /// Go's `%q` of a byte string: printable ASCII as is, the rest escaped.
    static func quoted(_ data: [UInt8]) -> String {
        var s = "\""
        for b in data {
            switch b {
            case UInt8(ascii: "\""): s += "\\\""
            case UInt8(ascii: "\\"): s += "\\\\"
            case UInt8(ascii: "\n"): s += "\\n"
            case UInt8(ascii: "\t"): s += "\\t"
            case 0x20..<0x7f: s.append(Character(Unicode.Scalar(b)))
            default:
                let hex = Array("0123456789abcdef")
                s += "\\x" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 0xf)])
            }
        }
        return s + "\""
    }

    /// etcd's ConfChangesToString: `v1` adds a voter, `l1` a learner, `r1` removes, `u1` updates.
    static func changes(_ changes: [ConfChangeSingle]) -> String {
        changes.map { cc in
            let prefix: String
            switch cc.type {
            case .addNode: prefix = "v"
            case .addLearnerNode: prefix = "l"
            case .removeNode: prefix = "r"
            case .updateNode: prefix = "u"
            }
            return prefix + String(cc.nodeID)
        }.joined(separator: " ")
    }

    static func entry(_ e: Entry) -> String {
        var formatted: String
        let typeName: String
        switch e.type {
        case .normal:
            typeName = "EntryNormal"
            formatted = quoted(e.data)
        case .confChange:
            typeName = "EntryConfChange"
            do { formatted = changes(try ConfChange(serializedBytes: e.data).asV2.changes) } catch { formatted = "\(error)" }
        case .confChangeV2:
            typeName = "EntryConfChangeV2"
            do { formatted = changes(try ConfChangeV2(serializedBytes: e.data).changes) } catch { formatted = "\(error)" }
        }
        if !formatted.isEmpty { formatted = " " + formatted }
        return "\(e.term)/\(e.index) \(typeName)\(formatted)"
    }

    static func hardState(_ hs: HardState) -> String {
        var s = "Term:\(hs.term)"
        if hs.vote != 0 { s += " Vote:\(hs.vote)" }
        return s + " Commit:\(hs.commit)"
    }

    static func ids(_ ids: [UInt64]) -> String {
        "[" + ids.map(String.init).joined(separator: " ") + "]"
    }

    static func confState(_ cs: ConfState) -> String {
        "Voters:\(ids(cs.voters)) VotersOutgoing:\(ids(cs.votersOutgoing)) Learners:\(ids(cs.learners)) "
            + "LearnersNext:\(ids(cs.learnersNext)) AutoLeave:\(cs.autoLeave)"
    }

    static func snapshot(_ s: Snapshot) -> String {
        "Index:\(s.metadata.index) Term:\(s.metadata.term) ConfState:\(confState(s.metadata.confState))"
    }

    /// One message; several entries go on their own lines, indented under it.
    static func message(_ m: Message) -> String {
        var s = "\(m.from)->\(m.to) \(m.type.etcdName) Term:\(m.term) Log:\(m.logTerm)/\(m.index)"
        if m.reject { s += " Rejected (Hint: \(m.rejectHint))" }
        if m.commit != 0 { s += " Commit:\(m.commit)" }
        if m.entries.count == 1 {
            s += " Entries:[\(entry(m.entries[0]))]"
        } else if m.entries.count > 1 {
            s += " Entries:["
            for e in m.entries { s += "\n  " + entry(e) }
            s += "\n]"
        }
        if let snap = m.snapshot, !snap.isEmpty { s += "\n  Snapshot: " + snapshot(snap) }
        return s
    }

    static func ready(_ rd: Ready) -> String {
        var s = ""
        if let ss = rd.softState { s += "Lead:\(ss.lead) State:\(ss.raftState.etcdName)\n" }
        if let hs = rd.hardState, !hs.isEmpty { s += "HardState \(hardState(hs))\n" }
        if !rd.readStates.isEmpty {
            s += "ReadStates " + rd.readStates.map { "{Index:\($0.index) RequestCtx:\(quoted($0.requestContext))}" }
                .joined(separator: " ") + "\n"
        }
        if !rd.entries.isEmpty { s += "Entries:\n" + rd.entries.map { entry($0) + "\n" }.joined() }
        if let snap = rd.snapshot, !snap.isEmpty { s += "Snapshot \(snapshot(snap))\n" }
        if !rd.committedEntries.isEmpty {
            s += "CommittedEntries:\n" + rd.committedEntries.map { entry($0) + "\n" }.joined()
        }
        if !rd.messages.isEmpty { s += "Messages:\n" + rd.messages.map { message($0) + "\n" }.joined() }
        if s.isEmpty { return "<empty Ready>\n" }
        return "Ready MustSync=\(rd.mustSync):\n" + s
    }

    /// etcd's Progress.String: the state, match and next, then only the flags that are set.
    static func progress(_ pr: Progress) -> String {
        var s = "\(pr.state.etcdName) match=\(pr.match) next=\(pr.next)"
        if pr.isLearner { s += " learner" }
        if pr.isPaused { s += " paused" }
        if pr.pendingSnapshot > 0 { s += " pendingSnap=\(pr.pendingSnapshot)" }
        if !pr.recentActive { s += " inactive" }
        if pr.inflights.count > 0 {
            s += " inflight=\(pr.inflights.count)"
            if pr.inflights.isFull { s += "[full]" }
        }
        return s
    }
}
