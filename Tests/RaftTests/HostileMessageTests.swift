import Testing
@testable import Raft
import RaftTestKit

/// Messages no correct peer sends, stepped through `RawNode.step` as the runtime steps what the
/// transport hands it: each is refused with `invalidMessage` (or `stepPeerNotFound`), changes
/// nothing, and the node goes on working. Each of these trapped the node, or left a storage it
/// could not restart from, before the gate (`RaftCore.refusal(of:)`).
@Suite struct HostileMessageTests {
    /// What an observer can see of a node: if a refused message changed none of it, it changed
    /// nothing that matters.
    private struct Observed: Equatable {
        var hardState: HardState
        var softState: SoftState
        var lastIndex: UInt64
        var firstIndex: UInt64
        var progress: [UInt64: UInt64]

        init(_ n: TestNode) {
            let status = n.node.status
            hardState = status.hardState
            softState = status.softState
            lastIndex = n.core.log.lastIndex
            firstIndex = n.core.log.firstIndex
            progress = status.progress.mapValues(\.match)
        }
    }

    /// Steps `m` into `n` and expects it refused, with nothing changed and nothing sent.
    private func expectRefused(_ m: Message, by n: TestNode, sourceLocation: SourceLocation = #_sourceLocation) {
        let before = Observed(n)
        var refused = false
        do {
            try n.step(m)
        } catch RaftError.invalidMessage, RaftError.stepPeerNotFound {
            refused = true
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
        #expect(refused, "\(m.type) \(m) was accepted", sourceLocation: sourceLocation)
        let sent = n.readMessages()
        #expect(sent.isEmpty, "a refused message was answered: \(sent)", sourceLocation: sourceLocation)
        #expect(Observed(n) == before, sourceLocation: sourceLocation)
    }

    /// A follower of leader 2 in term 2 with entries up to 4 committed at 3.
    private func follower() throws -> TestNode {
        let n = try TestNode(id: 1, voters: [1, 2, 3], entries: entries(from: 2, terms: [1, 2, 2]),
                             hardState: HardState(term: 2, vote: 2, commit: 3))
        _ = try n.stepAndRead(Message(type: .heartbeat, to: 1, from: 2, term: 2, commit: 3))
        #expect(n.core.lead == 2)
        return n
    }

    /// A leader of term `term` whose followers 2 and 3 have acknowledged its empty entry.
    private func leader() throws -> TestNode {
        let n = try TestNode(id: 1, voters: [1, 2, 3])
        try n.becomeLeader()
        _ = try n.ack(from: 2, index: n.core.log.lastIndex)
        _ = try n.ack(from: 3, index: n.core.log.lastIndex)
        return n
    }

    @Test func heartbeatCommittingBeyondTheLogIsRefused() throws {
        let n = try follower()
        // From the leader, from a member that is not the leader, and from a stranger.
        for from: UInt64 in [2, 3, 77] {
            expectRefused(Message(type: .heartbeat, to: 1, from: from, term: 2, commit: 1 << 63), by: n)
            expectRefused(Message(type: .heartbeat, to: 1, from: from, term: 2, commit: 5), by: n)
        }
        // In a newer term, a leader that just won has no acknowledgement from us yet.
        expectRefused(Message(type: .heartbeat, to: 1, from: 3, term: 3, commit: 5), by: n)
        // The node still follows its leader.
        let answer = try n.stepAndRead(Message(type: .heartbeat, to: 1, from: 2, term: 2, commit: 4))
        #expect(answer.map(\.type) == [.heartbeatResponse])
        #expect(n.core.log.committed == 4)
    }

    @Test func termsBeyondAnyClusterLifetimeAreRefused() throws {
        let n = try follower()
        for term: UInt64 in [.max, .max - 1, Message.valueCeiling + 1, 1 << 63] {
            for type in [MessageType.heartbeat, .append, .vote, .preVote, .appendResponse, .voteResponse, .timeoutNow] {
                expectRefused(Message(type: type, to: 1, from: 2, term: term), by: n)
            }
        }
        // A term at the ceiling is still a term: elections go on from it without overflow.
        try n.step(Message(type: .heartbeat, to: 1, from: 3, term: Message.valueCeiling))
        _ = n.readMessages()
        #expect(n.term == Message.valueCeiling)
        try n.node.campaign()
        _ = n.readMessages()
        #expect(n.term == Message.valueCeiling + 1)
    }

    @Test func indexesBeyondAnyClusterLifetimeAreRefused() throws {
        let n = try leader()
        let t = n.term
        for value: UInt64 in [.max, .max - 1, Message.valueCeiling + 1] {
            expectRefused(Message(type: .appendResponse, to: 1, from: 2, term: t, index: value), by: n)
            expectRefused(Message(type: .appendResponse, to: 1, from: 2, term: t, index: 1, reject: true, rejectHint: value), by: n)
            expectRefused(Message(type: .appendResponse, to: 1, from: 2, term: t, logTerm: value, index: 1, reject: true), by: n)
            expectRefused(Message(type: .vote, to: 1, from: 2, term: t + 1, logTerm: value, index: value), by: n)
        }
    }

    @Test func acknowledgementsBeyondWhatTheLeaderSentAreRefused() throws {
        let n = try leader()
        let t = n.term
        let last = n.core.log.lastIndex
        expectRefused(Message(type: .appendResponse, to: 1, from: 2, term: t, index: last + 1), by: n)
        expectRefused(Message(type: .appendResponse, to: 1, from: 2, term: t, index: last, reject: true, rejectHint: last + 1), by: n)
        expectRefused(Message(type: .appendResponse, to: 1, from: 2, term: t, logTerm: t + 1, index: last, reject: true, rejectHint: last), by: n)
        // From a stranger, any response is refused.
        expectRefused(Message(type: .appendResponse, to: 1, from: 77, term: t, index: last), by: n)
        // The leader still replicates.
        try n.propose([1])
        let sent = n.readMessages()
        #expect(sent.filter { $0.type == .append }.count == 2)
    }

    @Test func appendsThatDoNotFollowTheirIndexAreRefused() throws {
        let n = try follower()
        // logTerm 0 past index 0: the log would take it for a match past its end.
        expectRefused(Message(type: .append, to: 1, from: 2, term: 2, logTerm: 0, index: 1 << 61,
                              entries: [Entry(term: 2, index: (1 << 61) + 1)]), by: n)
        expectRefused(Message(type: .append, to: 1, from: 2, term: 2, logTerm: 0, index: 9), by: n)
        // Entries that skip, go back, or pass the message's term.
        expectRefused(Message(type: .append, to: 1, from: 2, term: 2, logTerm: 2, index: 4,
                              entries: [Entry(term: 2, index: 6)]), by: n)
        expectRefused(Message(type: .append, to: 1, from: 2, term: 2, logTerm: 2, index: 4,
                              entries: [Entry(term: 2, index: 5), Entry(term: 1, index: 6)]), by: n)
        expectRefused(Message(type: .append, to: 1, from: 2, term: 2, logTerm: 2, index: 4,
                              entries: [Entry(term: 3, index: 5)]), by: n)
        expectRefused(Message(type: .append, to: 1, from: 2, term: 2, logTerm: 3, index: 4), by: n)
        // Entries of term 0.
        expectRefused(Message(type: .append, to: 1, from: 2, term: 2, logTerm: 0, index: 0,
                              entries: [Entry(term: 0, index: 1)]), by: n)
        // A second leader in the same term.
        expectRefused(Message(type: .append, to: 1, from: 3, term: 2, logTerm: 2, index: 4,
                              entries: [Entry(term: 2, index: 5)]), by: n)
        // The real leader's append still goes in.
        let answer = try n.stepAndRead(Message(type: .append, to: 1, from: 2, term: 2, logTerm: 2, index: 4,
                                               entries: [Entry(term: 2, index: 5)], commit: 5))
        #expect(answer.first?.index == 5 && answer.first?.reject == false)
        #expect(n.core.log.committed == 5)
    }

    @Test func snapshotsThatNameNoEntryAreRefused() throws {
        let n = try follower()
        let cs = ConfState(voters: [1, 2, 3])
        for (index, term): (UInt64, UInt64) in [(0, 2), (9, 0), (9, 3), (UInt64.max, 2), (Message.valueCeiling + 1, 2)] {
            expectRefused(Message(type: .snapshot, to: 1, from: 2, term: 2,
                                  snapshot: Snapshot(metadata: SnapshotMetadata(confState: cs, index: index, term: term))), by: n)
        }
        // From a member that does not lead this term.
        expectRefused(Message(type: .snapshot, to: 1, from: 3, term: 2,
                              snapshot: Snapshot(metadata: SnapshotMetadata(confState: cs, index: 9, term: 2))), by: n)
    }

    @Test func proposalsAndReadsFromStrangersAreRefused() throws {
        let n = try leader()
        for from: UInt64 in [77, .max] {
            expectRefused(Message(type: .proposal, to: 1, from: from, entries: [Entry(data: [1])]), by: n)
            expectRefused(Message(type: .proposal, to: 1, from: from, entries: [
                Entry(type: .confChange, data: ConfChange(type: .addNode, nodeID: 77).serializedBytes()),
            ]), by: n)
            expectRefused(Message(type: .readIndex, to: 1, from: from, entries: [Entry(data: [9])]), by: n)
        }
        // A member's forwarded proposal is taken.
        try n.step(Message(type: .proposal, to: 1, from: 2, entries: [Entry(data: [1])]))
        #expect(n.readMessages().contains { $0.type == .append })
    }

    @Test func leadershipMessagesFromNonLeadersAreRefused() throws {
        let n = try follower()
        expectRefused(Message(type: .timeoutNow, to: 1, from: 3, term: 2), by: n)
        expectRefused(Message(type: .timeoutNow, to: 1, from: 2, term: 3), by: n)
        expectRefused(Message(type: .readIndexResponse, to: 1, from: 3, term: 2, index: 4, entries: [Entry(data: [1])]), by: n)
        // The leader's own timeoutNow starts the transfer election.
        try n.step(Message(type: .timeoutNow, to: 1, from: 2, term: 2))
        _ = n.readMessages()
        #expect(n.state == .candidate && n.term == 3)
    }

    @Test func aLeaderRefusesAnotherLeaderOfItsTerm() throws {
        let n = try leader()
        let t = n.term
        expectRefused(Message(type: .heartbeat, to: 1, from: 2, term: t), by: n)
        expectRefused(Message(type: .append, to: 1, from: 2, term: t, logTerm: t, index: n.core.log.lastIndex), by: n)
        let cs = ConfState(voters: [1, 2, 3])
        expectRefused(Message(type: .snapshot, to: 1, from: 2, term: t,
                              snapshot: Snapshot(metadata: SnapshotMetadata(confState: cs, index: 50, term: t))), by: n)
        #expect(n.state == .leader)
    }
}
