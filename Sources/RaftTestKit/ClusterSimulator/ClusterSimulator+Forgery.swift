import Raft

/// Forged messages (`SimulationFeatures.forgedMessages`): what an attacker who can reach a
/// node's port, but holds no member's credentials, could step into it.
///
/// Four kinds, each stepped into a live node through `RawNode.step` as the runtime steps what
/// its transport delivers:
/// - from a stranger (an id that was never a member), of every kind the core checks the sender
///   of: proposals, read requests, responses, and the leader's messages in a term it has a leader;
/// - from a member, with one value beyond `Message.valueCeiling`;
/// - from a member, with in-range values no correct peer sends: a heartbeat committing far
///   beyond the log, an acknowledgement far beyond the leader's log, an append whose entries skip
///   or pass its term, a snapshot of no entry, a timeoutNow from a member that does not lead;
/// - a stale copy: a member's message of an older term with random values.
///
/// The first three must be refused (a violation otherwise); the last may be taken, and the run's
/// invariants must hold either way. Values come from `TestRandom.extremeValue(near:)`, around the
/// node's own term and indexes.
extension ClusterSimulator {
    func forge() {
        let live = liveIDs
        guard let target = rng.pick(live), let node = nodes[target], let raw = node.raw else { return }
        let burst = 1 + Int(rng.below(16))
        for _ in 0..<burst {
            let (m, mustRefuse) = forgedMessage(for: node, raw)
            stats.forged += 1
            do {
                try raw.step(m)
                if mustRefuse {
                    checker.record("n\(target) accepted a forged message: \(describe(m)) \(m)")
                }
            } catch {
                stats.forgedRefused += 1
            }
            touched.insert(target)
        }
        record("forge \(burst) into n\(target)")
    }

    private static let networkTypes: [MessageType] = MessageType.allCases.filter { !$0.isLocal }

    /// A stranger's id: never handed to a member (members are numbered from 1 upwards).
    private var strangerIDs: [UInt64] { [1 << 40, (1 << 40) + 7, .max, .max - 1] }

    private func forgedMessage(for node: SimNode, _ raw: RawNode) -> (Message, mustRefuse: Bool) {
        let status = raw.status
        let term = status.hardState.term
        let members = (status.config.voters + status.config.learners).filter { $0 != node.id }
        let member = rng.pick(members) ?? 2
        switch rng.below(4) {
        case 0:
            return (strangerMessage(to: node.id, status: status), true)
        case 1:
            return (beyondCeiling(to: node.id, from: member, term: term), true)
        case 2:
            if let m = refusedInRange(to: node, status: status, member: member) { return (m, true) }
            return (beyondCeiling(to: node.id, from: member, term: term), true)
        default:
            guard term > 1 else { return (beyondCeiling(to: node.id, from: member, term: term), true) }
            var m = randomMessage(to: node.id, from: member, around: node, term: term)
            m.term = 1 + rng.below(term - 1)  // older than the node's term
            if m.type == .proposal || m.type == .readIndex { m.type = .heartbeat }
            return (m, false)
        }
    }

    private func extreme(near: UInt64) -> UInt64 { rng.extremeValue(near: near) }

    private func randomMessage(to: UInt64, from: UInt64, around node: SimNode, term: UInt64) -> Message {
        let last = (try? node.storage.lastIndex()) ?? 0
        let type = rng.pick(Self.networkTypes)!
        var m = Message(
            type: type, to: to, from: from, term: extreme(near: term), logTerm: extreme(near: term),
            index: extreme(near: last), commit: extreme(near: last), reject: rng.below(2) == 0,
            rejectHint: extreme(near: last))
        if type == .append || type == .proposal || type == .readIndex || type == .readIndexResponse {
            let count = Int(rng.below(4))
            let start = m.index &+ 1
            m.entries = (0..<count).map { k in
                Entry(term: rng.below(3) == 0 ? extreme(near: term) : m.term, index: rng.below(3) == 0 ? extreme(near: last) : start &+ UInt64(k),
                      data: [UInt8(truncatingIfNeeded: k)])
            }
        }
        if type == .snapshot {
            let voters = rng.below(2) == 0 ? [to, from] : [from]
            m.snapshot = Snapshot(metadata: SnapshotMetadata(
                confState: ConfState(voters: voters), index: extreme(near: last), term: extreme(near: term)))
        }
        return m
    }

    private func strangerMessage(to: UInt64, status: Status) -> Message {
        let from = rng.pick(strangerIDs)!
        let term = status.hardState.term
        let types: [MessageType] = [.proposal, .readIndex, .appendResponse, .heartbeatResponse, .voteResponse,
                                    .preVoteResponse]
        var m = Message(type: rng.pick(types)!, to: to, from: from, term: max(term, 1), index: extreme(near: term),
                        commit: extreme(near: term), reject: rng.below(2) == 0, rejectHint: extreme(near: term))
        if m.type == .proposal || m.type == .readIndex {
            m.term = 0
            m.index = 0
            m.commit = 0
            m.rejectHint = 0
            m.entries = [Entry(data: [0x66])]
        } else {
            m.index = min(m.index, Message.valueCeiling)
            m.commit = min(m.commit, Message.valueCeiling)
            m.rejectHint = min(m.rejectHint, Message.valueCeiling)
        }
        // A stranger claiming to lead a term that has a leader.
        if status.lead != 0 && status.lead != status.id && term > 0 && rng.below(3) == 0 {
            m = Message(type: .heartbeat, to: to, from: from, term: term, commit: 0)
        }
        return m
    }

    private func beyondCeiling(to: UInt64, from: UInt64, term: UInt64) -> Message {
        let type = rng.pick(Self.networkTypes)!
        let big = Message.valueCeiling + 1 + rng.below(UInt64.max - Message.valueCeiling - 1)
        let forwarded = type == .proposal || type == .readIndex
        var m = Message(type: type, to: to, from: from, term: forwarded ? 0 : max(term, 1))
        switch rng.below(forwarded ? 4 : 6) {
        case 0: m.index = big
        case 1: m.commit = big
        case 2: m.rejectHint = big
        case 3: m.logTerm = big
        case 4: m.term = big
        default:
            m.type = .snapshot
            m.snapshot = Snapshot(metadata: SnapshotMetadata(confState: ConfState(voters: [to, from]), index: big, term: 1))
        }
        return m
    }

    /// In-range values a correct peer never sends, in a form the node must refuse; nil when the
    /// node's role offers none.
    private func refusedInRange(to node: SimNode, status: Status, member: UInt64) -> Message? {
        let term = status.hardState.term
        guard term > 0 else { return nil }
        let last = (try? node.storage.lastIndex()) ?? 0
        // Far enough past the persisted log that no unpersisted tail can reach it.
        let beyond = min(last + 100_000 + rng.below(1 << 20), Message.valueCeiling)
        let from = status.lead != 0 && status.lead != node.id ? status.lead : member
        switch rng.below(5) {
        case 0:
            guard status.raftState != .leader else { return nil }
            return Message(type: .heartbeat, to: node.id, from: from, term: term, commit: beyond)
        case 1:
            guard status.raftState == .leader else { return nil }
            return Message(type: .appendResponse, to: node.id, from: member, term: term, index: beyond)
        case 2:
            // Entries that skip an index, or pass the message's term.
            let skip = rng.below(2) == 0
            return Message(type: .append, to: node.id, from: from, term: term, logTerm: 1, index: 1, entries: [
                Entry(term: skip ? term : term + 1, index: skip ? 3 : 2),
            ])
        case 3:
            let meta = rng.below(2) == 0
                ? SnapshotMetadata(confState: ConfState(voters: [node.id, from]), index: 0, term: term)
                : SnapshotMetadata(confState: ConfState(voters: [node.id, from]), index: beyond, term: term + 1)
            return Message(type: .snapshot, to: node.id, from: from, term: term, snapshot: Snapshot(metadata: meta))
        default:
            guard let other = status.config.voters.first(where: { $0 != node.id && $0 != status.lead }) else { return nil }
            return Message(type: .timeoutNow, to: node.id, from: other, term: term)
        }
    }
}
