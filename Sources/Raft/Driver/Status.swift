/// What a node knows about itself and, when leading, about its followers.
public struct Status: Sendable, Hashable {
    public var id: UInt64
    public var hardState: HardState
    public var lead: UInt64
    public var raftState: StateType
    public var applied: UInt64
    /// The node leadership is being transferred to, or 0.
    public var leadTransferee: UInt64
    /// Every member's replication progress; filled on the leader only.
    public var progress: [UInt64: Progress]
    /// The current membership.
    public var config: ConfState

    public var softState: SoftState { SoftState(lead: lead, raftState: raftState) }

    public init(
        id: UInt64 = 0, hardState: HardState = HardState(), lead: UInt64 = 0, raftState: StateType = .follower,
        applied: UInt64 = 0, leadTransferee: UInt64 = 0, progress: [UInt64: Progress] = [:],
        config: ConfState = ConfState()
    ) {
        self.id = id
        self.hardState = hardState
        self.lead = lead
        self.raftState = raftState
        self.applied = applied
        self.leadTransferee = leadTransferee
        self.progress = progress
        self.config = config
    }

    init(core: RaftCore) {
        var progress: [UInt64: Progress] = [:]
        if core.state == .leader {
            for pr in core.tracker.progress.all { progress[pr.id] = pr }
        }
        self.init(
            id: core.id, hardState: core.hardState, lead: core.lead, raftState: core.state, applied: core.log.applied,
            leadTransferee: core.leadTransferee, progress: progress, config: core.tracker.confState)
    }
}
