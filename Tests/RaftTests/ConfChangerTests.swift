import Testing
@testable import Raft

// The ConfChanger on its own (etcd's confchange tests): simple changes, entering and leaving
// joint consensus, and the changes it must refuse. Every test starts from a configuration
// rebuilt with `ConfChanger.restore`, as a node does at start-up.

/// A tracker holding the configuration `cs`, every member's progress starting at `lastIndex`.
private func tracker(_ cs: ConfState = ConfState(), lastIndex: UInt64 = 10) throws -> ProgressTracker {
    var t = ProgressTracker(maxInflight: 8, maxInflightBytes: 0)
    let outcome = try ConfChanger.restore(cs, tracker: t, lastIndex: lastIndex)
    t.config = outcome.config
    t.progress = outcome.progress
    return t
}

private func v(_ id: UInt64) -> ConfChangeSingle { ConfChangeSingle(type: .addNode, nodeID: id) }
private func l(_ id: UInt64) -> ConfChangeSingle { ConfChangeSingle(type: .addLearnerNode, nodeID: id) }
private func r(_ id: UInt64) -> ConfChangeSingle { ConfChangeSingle(type: .removeNode, nodeID: id) }
private func u(_ id: UInt64) -> ConfChangeSingle { ConfChangeSingle(type: .updateNode, nodeID: id) }

/// Applies an outcome to the tracker, as the core does once a change is applied.
private func adopt(_ outcome: ConfChanger.Outcome, into t: inout ProgressTracker) {
    t.config = outcome.config
    t.progress = outcome.progress
}

private func expectInvalid(_ body: () throws -> Void, _ fragment: String) {
    do {
        try body()
        Issue.record("expected invalidConfChange containing '\(fragment)', got success")
    } catch {
        guard case .invalidConfChange(let why)? = error as? RaftError else {
            Issue.record("expected invalidConfChange, got \(error)")
            return
        }
        #expect(why.contains(fragment), "\(why)")
    }
}

@Suite struct ConfChangerTests {
    // MARK: Simple changes

    @Test func simpleAddsVotersOneAtATime() throws {
        var t = try tracker()
        adopt(try ConfChanger(tracker: t, lastIndex: 10).simple([v(1)]), into: &t)
        adopt(try ConfChanger(tracker: t, lastIndex: 12).simple([v(2)]), into: &t)
        #expect(t.config.confState == ConfState(voters: [1, 2]))
        // A new member probes from the leader's last index and counts as recently active.
        let pr = try #require(t.progress[2])
        #expect(pr.next == 12 && pr.match == 0 && pr.state == .probe && pr.recentActive && !pr.isLearner)
        #expect(t.progress[1]?.next == 10)
    }

    @Test func simpleAddsARemovesAndReaddsLearners() throws {
        var t = try tracker(ConfState(voters: [1, 2, 3]))
        adopt(try ConfChanger(tracker: t, lastIndex: 10).simple([l(4)]), into: &t)
        #expect(t.config.confState == ConfState(voters: [1, 2, 3], learners: [4]))
        #expect(t.progress[4]?.isLearner == true)
        // Adding a learner twice changes nothing.
        adopt(try ConfChanger(tracker: t, lastIndex: 10).simple([l(4)]), into: &t)
        #expect(t.config.confState == ConfState(voters: [1, 2, 3], learners: [4]))
        adopt(try ConfChanger(tracker: t, lastIndex: 10).simple([r(4)]), into: &t)
        #expect(t.config.confState == ConfState(voters: [1, 2, 3]))
        #expect(t.progress[4] == nil)
    }

    @Test func simplePromotesALearnerKeepingItsProgress() throws {
        var t = try tracker(ConfState(voters: [1, 2], learners: [3]))
        t.progress[3]!.match = 7
        adopt(try ConfChanger(tracker: t, lastIndex: 10).simple([v(3)]), into: &t)
        #expect(t.config.confState == ConfState(voters: [1, 2, 3]))
        let pr = try #require(t.progress[3])
        #expect(!pr.isLearner && pr.match == 7)
    }

    @Test func simpleDemotesAVoterToLearner() throws {
        var t = try tracker(ConfState(voters: [1, 2, 3]))
        adopt(try ConfChanger(tracker: t, lastIndex: 10).simple([l(3)]), into: &t)
        #expect(t.config.confState == ConfState(voters: [1, 2], learners: [3]))
        #expect(t.progress[3]?.isLearner == true)
    }

    @Test func simpleRemovesAVoterAndItsProgress() throws {
        var t = try tracker(ConfState(voters: [1, 2, 3]))
        adopt(try ConfChanger(tracker: t, lastIndex: 10).simple([r(2)]), into: &t)
        #expect(t.config.confState == ConfState(voters: [1, 3]))
        #expect(t.progress.ids == [1, 3])
        // Removing a node that is not a member, updating one, and node id 0 are no-ops.
        let same = try ConfChanger(tracker: t, lastIndex: 10).simple([r(9), u(1), v(0)])
        #expect(same.config == t.config && same.progress == t.progress)
    }

    @Test func simpleAllowsSeveralLearnerChangesWithOneVoter() throws {
        let t = try tracker(ConfState(voters: [1, 2, 3]))
        let outcome = try ConfChanger(tracker: t, lastIndex: 10).simple([l(4), l(5), v(6)])
        #expect(outcome.config.confState == ConfState(voters: [1, 2, 3, 6], learners: [4, 5]))
    }

    @Test func simpleRefusesChangingTwoVoters() throws {
        let t = try tracker(ConfState(voters: [1, 2, 3]))
        expectInvalid({ _ = try ConfChanger(tracker: t, lastIndex: 10).simple([v(4), v(5)]) }, "more than one voter")
        expectInvalid({ _ = try ConfChanger(tracker: t, lastIndex: 10).simple([r(1), v(4)]) }, "more than one voter")
        // Demoting one voter and removing another changes two voters as well.
        expectInvalid({ _ = try ConfChanger(tracker: t, lastIndex: 10).simple([l(1), r(2)]) }, "more than one voter")
    }

    @Test func refusesRemovingEveryVoter() throws {
        let t = try tracker(ConfState(voters: [1]))
        expectInvalid({ _ = try ConfChanger(tracker: t, lastIndex: 10).simple([r(1)]) }, "removes every voter")
        expectInvalid({ _ = try ConfChanger(tracker: t, lastIndex: 10).simple([l(1)]) }, "removes every voter")
        let three = try tracker(ConfState(voters: [1, 2, 3]))
        expectInvalid(
            { _ = try ConfChanger(tracker: three, lastIndex: 10).enterJoint(autoLeave: false, [r(1), r(2), r(3)]) },
            "removes every voter")
    }

    @Test func simpleRefusedInAJointConfig() throws {
        var t = try tracker(ConfState(voters: [1, 2, 3]))
        adopt(try ConfChanger(tracker: t, lastIndex: 10).enterJoint(autoLeave: false, [v(4)]), into: &t)
        expectInvalid({ _ = try ConfChanger(tracker: t, lastIndex: 10).simple([l(5)]) }, "leave it first")
    }

    // MARK: Joint consensus

    @Test func enterJointReplacesVotersThroughBothHalves() throws {
        let t = try tracker(ConfState(voters: [1, 2, 3]))
        let outcome = try ConfChanger(tracker: t, lastIndex: 10).enterJoint(autoLeave: true, [v(4), r(1)])
        #expect(outcome.config.confState == ConfState(voters: [2, 3, 4], votersOutgoing: [1, 2, 3], autoLeave: true))
        // The removed voter keeps its progress: it still votes in the outgoing half.
        #expect(outcome.progress.ids == [1, 2, 3, 4])
        #expect(outcome.config.voters.isJoint)
    }

    @Test func leaveJointDropsTheOutgoingHalf() throws {
        var t = try tracker(ConfState(voters: [1, 2, 3]))
        adopt(try ConfChanger(tracker: t, lastIndex: 10).enterJoint(autoLeave: true, [v(4), r(1)]), into: &t)
        adopt(try ConfChanger(tracker: t, lastIndex: 10).leaveJoint(), into: &t)
        #expect(t.config.confState == ConfState(voters: [2, 3, 4]))
        #expect(t.progress.ids == [2, 3, 4])
        #expect(!t.config.voters.isJoint && !t.config.autoLeave)
    }

    @Test func demotionInJointStagesTheLearnerUntilLeaving() throws {
        var t = try tracker(ConfState(voters: [1, 2, 3]))
        adopt(try ConfChanger(tracker: t, lastIndex: 10).enterJoint(autoLeave: false, [l(3)]), into: &t)
        // 3 still votes in the outgoing half, so it is a learner only once the joint config ends.
        #expect(t.config.confState == ConfState(voters: [1, 2], votersOutgoing: [1, 2, 3], learnersNext: [3]))
        #expect(t.progress[3]?.isLearner == false)
        adopt(try ConfChanger(tracker: t, lastIndex: 10).leaveJoint(), into: &t)
        #expect(t.config.confState == ConfState(voters: [1, 2], learners: [3]))
        #expect(t.progress[3]?.isLearner == true)
    }

    @Test func enterJointAddsLearnersDirectly() throws {
        let t = try tracker(ConfState(voters: [1, 2, 3]))
        let outcome = try ConfChanger(tracker: t, lastIndex: 10).enterJoint(autoLeave: false, [l(4), v(5)])
        // 4 was never a voter: it is a learner at once, not staged.
        #expect(outcome.config.confState == ConfState(voters: [1, 2, 3, 5], learners: [4], votersOutgoing: [1, 2, 3]))
    }

    @Test func enteringJointTwiceIsRefused() throws {
        var t = try tracker(ConfState(voters: [1, 2, 3]))
        adopt(try ConfChanger(tracker: t, lastIndex: 10).enterJoint(autoLeave: false, [v(4)]), into: &t)
        expectInvalid({ _ = try ConfChanger(tracker: t, lastIndex: 10).enterJoint(autoLeave: false, [v(5)]) }, "already joint")
    }

    @Test func enteringJointFromNoVotersIsRefused() throws {
        let t = try tracker()
        expectInvalid({ _ = try ConfChanger(tracker: t, lastIndex: 10).enterJoint(autoLeave: false, [v(1)]) }, "zero-voter")
    }

    @Test func leavingWhenNotJointIsRefused() throws {
        let t = try tracker(ConfState(voters: [1, 2, 3]))
        expectInvalid({ _ = try ConfChanger(tracker: t, lastIndex: 10).leaveJoint() }, "non-joint")
    }

    @Test func aRefusedChangeLeavesTheTrackerUntouched() throws {
        let t = try tracker(ConfState(voters: [1, 2, 3]))
        let before = (t.config, t.progress)
        _ = try? ConfChanger(tracker: t, lastIndex: 10).simple([v(4), v(5)])
        #expect(t.config == before.0 && t.progress == before.1)
    }

    // MARK: Invariants and restore

    @Test func aNodeCannotBeLearnerAndVoterAtOnce() throws {
        // Restoring such a state is refused, not quietly repaired.
        #expect(throws: RaftError.self) { _ = try tracker(ConfState(voters: [1, 2], learners: [2])) }
        #expect(throws: RaftError.self) {
            _ = try tracker(ConfState(voters: [1, 2], learners: [3], votersOutgoing: [1, 3]))
        }
        // And the invariants reject a hand-built config with the overlap.
        let t = try tracker(ConfState(voters: [1, 2], learners: [3]))
        var config = t.config
        config.voters.incoming.insert(3)
        expectInvalid({ try ConfChanger.checkInvariants(config, t.progress) }, "both a learner and a voter")
    }

    @Test func invariantsRejectInconsistentConfigs() throws {
        let t = try tracker(ConfState(voters: [1, 2, 3]))
        var missing = t.config
        missing.voters.incoming.insert(9)
        expectInvalid({ try ConfChanger.checkInvariants(missing, t.progress) }, "no progress for member 9")
        var staged = t.config
        staged.learnersNext.insert(2)
        expectInvalid({ try ConfChanger.checkInvariants(staged, t.progress) }, "not an outgoing voter")
        var autoLeave = t.config
        autoLeave.autoLeave = true
        expectInvalid({ try ConfChanger.checkInvariants(autoLeave, t.progress) }, "autoLeave")
        // A learner whose progress is not marked as one.
        var unmarked = t.progress
        var config = t.config
        config.voters.incoming.remove(3)
        config.learners.insert(3)
        unmarked[3]!.isLearner = false
        expectInvalid({ try ConfChanger.checkInvariants(config, unmarked) }, "not marked")
    }

    @Test(arguments: [
        ConfState(voters: [1]),
        ConfState(voters: [1, 2, 3], learners: [4, 5]),
        ConfState(voters: [1, 2, 4], votersOutgoing: [1, 2, 3]),
        ConfState(voters: [2, 4], learners: [5], votersOutgoing: [1, 2, 3], learnersNext: [3], autoLeave: true),
        ConfState(voters: [4, 5, 6], votersOutgoing: [1, 2, 3], autoLeave: false),
    ])
    func restoreRebuildsTheConfState(_ cs: ConfState) throws {
        let t = try tracker(cs, lastIndex: 7)
        #expect(t.config.confState.isEquivalent(to: cs))
        #expect(t.progress.ids == Set(cs.voters + cs.learners + cs.votersOutgoing).sorted())
        for pr in t.progress.all { #expect(pr.next == 7 && pr.isLearner == cs.learners.contains(pr.id)) }
    }
}
