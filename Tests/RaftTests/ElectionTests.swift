import Testing
@testable import Raft
import RaftTestKit

/// Elections through the simulated network (Raft paper §5.2, thesis §9.6 PreVote).
@Suite struct ElectionTests {
    @Test func singleNodeBecomesLeaderAndCommits() throws {
        let net = try SimulatedNetwork(ids: [1])
        try net.with(1) { try $0.campaign() }
        #expect(net.status(1)?.raftState == .leader)
        try net.with(1) { try $0.propose(Array("x".utf8)) }
        #expect(net.appliedData(1) == [Array("x".utf8)])
        #expect(net.checker.violations.isEmpty)
    }

    @Test func threeNodesElectInOneRoundAndReplicate() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.with(1) { try $0.campaign() }
        net.deliverAll()
        #expect(net.status(1)?.raftState == .leader)
        #expect(net.status(2)?.lead == 1)
        #expect(net.status(3)?.lead == 1)
        for i in 0..<10 { try net.with(1) { try $0.propose([UInt8(i)]) } }
        net.deliverAll()
        for id: UInt64 in [1, 2, 3] {
            #expect(net.appliedData(id) == (0..<10).map { [UInt8($0)] }, "node \(id)")
        }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    @Test func followerForwardsProposalsToLeader() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        try net.with(1) { try $0.campaign() }
        net.deliverAll()
        try net.with(3) { try $0.propose([7]) }
        net.deliverAll()
        for id: UInt64 in [1, 2, 3] { #expect(net.appliedData(id) == [[7]]) }
    }

    @Test func electionByTicks() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3])
        for _ in 0..<30 {
            net.tickAll()
            net.deliverAll()
        }
        #expect(net.leaders.count == 1)
        #expect(net.checker.violations.isEmpty)
    }
}
