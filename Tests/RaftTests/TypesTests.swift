import Testing
@testable import Raft

@Suite struct TypesTests {
    @Test func varintSizes() {
        #expect(varintSize(0) == 1)
        #expect(varintSize(127) == 1)
        #expect(varintSize(128) == 2)
        #expect(varintSize(UInt64.max) == 10)
    }

    @Test func emptinessFollowsEtcd() {
        #expect(HardState().isEmpty)
        #expect(!HardState(term: 1).isEmpty)
        #expect(Snapshot().isEmpty)
        #expect(!Snapshot(metadata: SnapshotMetadata(index: 3, term: 1)).isEmpty)
    }

    @Test func confChangeV2Transitions() {
        let one = ConfChangeV2(changes: [ConfChangeSingle(type: .addNode, nodeID: 2)])
        #expect(one.entersJoint == (false, false))
        let two = ConfChangeV2(changes: [ConfChangeSingle(type: .addNode, nodeID: 2), ConfChangeSingle(type: .removeNode, nodeID: 1)])
        #expect(two.entersJoint == (true, true))
        #expect(ConfChangeV2(transition: .jointExplicit, changes: one.changes).entersJoint == (true, false))
        #expect(ConfChangeV2(context: [1]).leavesJoint)
        #expect(!one.leavesJoint)
    }
}
