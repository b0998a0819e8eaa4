import Testing
@testable import Raft

// Majority and joint quorums, table-driven in the spirit of etcd's quorum/testdata: each row is a
// configuration, what each member acknowledged (or how it voted; a member missing from the map
// has not answered) and the result. Expected values are worked out by hand in the comments.

@Suite struct QuorumTests {
    struct CommitCase: CustomTestStringConvertible, Sendable {
        var voters: [UInt64]
        var outgoing: [UInt64] = []
        var acked: [UInt64: UInt64]
        var committed: UInt64
        var testDescription: String { "in=\(voters) out=\(outgoing) acked=\(acked.sorted { $0.key < $1.key })" }
    }

    static let majorityCommits: [CommitCase] = [
        // An empty config commits everything, so that it does not hold a joint config back.
        CommitCase(voters: [], acked: [:], committed: .max),
        CommitCase(voters: [1], acked: [:], committed: 0),
        CommitCase(voters: [1], acked: [1: 5], committed: 5),
        // Two voters: both are the majority, so the smaller index.
        CommitCase(voters: [1, 2], acked: [1: 10, 2: 5], committed: 5),
        CommitCase(voters: [1, 2], acked: [1: 10], committed: 0),
        // Three voters: the second largest.
        CommitCase(voters: [1, 2, 3], acked: [1: 10, 2: 5, 3: 1], committed: 5),
        CommitCase(voters: [1, 2, 3], acked: [1: 10, 2: 5], committed: 5),
        CommitCase(voters: [1, 2, 3], acked: [1: 10], committed: 0),
        CommitCase(voters: [1, 2, 3], acked: [1: 2, 2: 2, 3: 2], committed: 2),
        // Acks from non-members do not count.
        CommitCase(voters: [1, 2, 3], acked: [1: 9, 4: 9, 5: 9], committed: 0),
        // Four voters need three: the third largest.
        CommitCase(voters: [1, 2, 3, 4], acked: [1: 10, 2: 9, 3: 8, 4: 7], committed: 8),
        CommitCase(voters: [1, 2, 3, 4], acked: [1: 10, 2: 9], committed: 0),
        // Five voters need three.
        CommitCase(voters: [1, 2, 3, 4, 5], acked: [1: 1, 2: 2, 3: 3, 4: 4, 5: 5], committed: 3),
        CommitCase(voters: [1, 2, 3, 4, 5], acked: [1: 5, 2: 5, 3: 5], committed: 5),
        CommitCase(voters: [1, 2, 3, 4, 5], acked: [1: 5, 2: 5], committed: 0),
        // Order of ids does not matter; the config sorts them.
        CommitCase(voters: [3, 1, 2], acked: [1: 1, 2: 7, 3: 4], committed: 4),
    ]

    @Test(arguments: majorityCommits)
    func majorityCommittedIndex(_ c: CommitCase) {
        let config = MajorityConfig(c.voters)
        #expect(config.committedIndex { c.acked[$0] ?? 0 } == c.committed)
    }

    static let jointCommits: [CommitCase] = [
        // Not joint: exactly the incoming majority.
        CommitCase(voters: [1, 2, 3], outgoing: [], acked: [1: 10, 2: 5, 3: 1], committed: 5),
        // Both halves must agree: incoming says 10, outgoing (1, 1, 5) says 1.
        CommitCase(voters: [1, 2, 3], outgoing: [3, 4, 5], acked: [1: 10, 2: 10, 3: 5, 4: 1, 5: 1], committed: 1),
        // Incoming 10, outgoing (2, 8, 10) says 8.
        CommitCase(voters: [1, 2, 3], outgoing: [3, 4, 5], acked: [1: 10, 2: 10, 3: 10, 4: 8, 5: 2], committed: 8),
        // The outgoing half may be the stricter or the looser one.
        CommitCase(voters: [1], outgoing: [1, 2, 3], acked: [1: 7, 2: 4], committed: 4),
        CommitCase(voters: [1, 2, 3], outgoing: [1], acked: [1: 3, 2: 9, 3: 9], committed: 3),
        // Identical halves behave as one.
        CommitCase(voters: [1, 2, 3], outgoing: [1, 2, 3], acked: [1: 6, 2: 4, 3: 2], committed: 4),
        // Nothing acknowledged by the outgoing half: nothing commits.
        CommitCase(voters: [1, 2], outgoing: [3, 4], acked: [1: 5, 2: 5], committed: 0),
    ]

    @Test(arguments: jointCommits)
    func jointCommittedIndex(_ c: CommitCase) {
        let config = JointConfig(incoming: MajorityConfig(c.voters), outgoing: MajorityConfig(c.outgoing))
        #expect(config.committedIndex { c.acked[$0] ?? 0 } == c.committed)
        // The joint result is never above either half's.
        let incoming = MajorityConfig(c.voters).committedIndex { c.acked[$0] ?? 0 }
        #expect(config.committedIndex { c.acked[$0] ?? 0 } <= incoming)
    }

    struct VoteCase: CustomTestStringConvertible, Sendable {
        var voters: [UInt64]
        var outgoing: [UInt64] = []
        var votes: [UInt64: Bool]
        var result: VoteResult
        var testDescription: String { "in=\(voters) out=\(outgoing) votes=\(votes.sorted { $0.key < $1.key })" }
    }

    static let majorityVotes: [VoteCase] = [
        // By convention an empty config wins.
        VoteCase(voters: [], votes: [:], result: .won),
        VoteCase(voters: [1], votes: [:], result: .pending),
        VoteCase(voters: [1], votes: [1: true], result: .won),
        VoteCase(voters: [1], votes: [1: false], result: .lost),
        VoteCase(voters: [1, 2], votes: [1: true], result: .pending),
        VoteCase(voters: [1, 2], votes: [1: true, 2: false], result: .lost),
        VoteCase(voters: [1, 2], votes: [1: true, 2: true], result: .won),
        VoteCase(voters: [1, 2, 3], votes: [1: true, 2: true], result: .won),
        VoteCase(voters: [1, 2, 3], votes: [1: false, 2: false], result: .lost),
        // One for, one against, one to come: it decides.
        VoteCase(voters: [1, 2, 3], votes: [1: true, 2: false], result: .pending),
        VoteCase(voters: [1, 2, 3], votes: [1: true], result: .pending),
        // Votes of non-members are ignored.
        VoteCase(voters: [1, 2, 3], votes: [1: true, 4: true, 5: true], result: .pending),
        // Four voters need three grants.
        VoteCase(voters: [1, 2, 3, 4], votes: [1: true, 2: true], result: .pending),
        VoteCase(voters: [1, 2, 3, 4], votes: [1: true, 2: false, 3: false], result: .lost),
        VoteCase(voters: [1, 2, 3, 4], votes: [1: true, 2: true, 3: true], result: .won),
        VoteCase(voters: [1, 2, 3, 4, 5], votes: [1: true, 2: true, 3: false, 4: false], result: .pending),
        VoteCase(voters: [1, 2, 3, 4, 5], votes: [1: false, 2: false, 3: false], result: .lost),
    ]

    @Test(arguments: majorityVotes)
    func majorityVoteResult(_ c: VoteCase) {
        #expect(MajorityConfig(c.voters).voteResult { c.votes[$0] } == c.result)
    }

    static let jointVotes: [VoteCase] = [
        VoteCase(voters: [1, 2, 3], outgoing: [], votes: [1: true, 2: true], result: .won),
        // Incoming won, outgoing (3 4 5) still pending.
        VoteCase(voters: [1, 2, 3], outgoing: [3, 4, 5], votes: [1: true, 2: true], result: .pending),
        VoteCase(voters: [1, 2, 3], outgoing: [3, 4, 5], votes: [1: true, 2: true, 4: true, 5: true], result: .won),
        // A lost half loses the joint election, whatever the other says.
        VoteCase(voters: [1, 2, 3], outgoing: [3, 4, 5], votes: [1: true, 2: true, 4: false, 5: false], result: .lost),
        VoteCase(voters: [1, 2, 3], outgoing: [3, 4, 5], votes: [1: false, 2: false, 4: true, 5: true], result: .lost),
        // 3 votes in both halves: its grant counts twice, and incoming still needs one more.
        VoteCase(voters: [1, 2, 3], outgoing: [3, 4, 5], votes: [3: true, 4: true], result: .pending),
        VoteCase(voters: [1, 2, 3], outgoing: [3, 4, 5], votes: [1: true, 3: true, 4: true], result: .won),
        // Outgoing: 3 and 4 against, only 5 left: lost.
        VoteCase(voters: [1, 2, 3], outgoing: [3, 4, 5], votes: [1: true, 2: true, 3: false, 4: false], result: .lost),
        VoteCase(voters: [1], outgoing: [2], votes: [1: true], result: .pending),
        VoteCase(voters: [1], outgoing: [2], votes: [1: true, 2: true], result: .won),
    ]

    @Test(arguments: jointVotes)
    func jointVoteResult(_ c: VoteCase) {
        let config = JointConfig(incoming: MajorityConfig(c.voters), outgoing: MajorityConfig(c.outgoing))
        #expect(config.voteResult { c.votes[$0] } == c.result)
    }

    @Test func majorityConfigKeepsIDsSortedAndUnique() {
        var config = MajorityConfig([5, 1, 3, 1])
        #expect(config.ids == [1, 3, 5])
        config.insert(2)
        config.insert(5)
        #expect(config.ids == [1, 2, 3, 5])
        config.remove(3)
        config.remove(9)
        #expect(config.ids == [1, 2, 5])
        #expect(config.contains(2) && !config.contains(3))
    }

    @Test func jointConfigIDsAreTheUnionOfBothHalves() {
        let joint = JointConfig(incoming: MajorityConfig([1, 2, 4]), outgoing: MajorityConfig([1, 2, 3]))
        #expect(joint.ids == [1, 2, 3, 4])
        #expect(joint.isJoint)
        #expect(joint.contains(3) && joint.contains(4) && !joint.contains(5))
        #expect(!JointConfig(incoming: MajorityConfig([1])).isJoint)
    }
}
