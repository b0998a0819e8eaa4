public enum ConfChangeType: UInt8, Sendable, Hashable, CaseIterable {
    case addNode = 0
    case removeNode = 1
    case updateNode = 2
    case addLearnerNode = 3
}

/// A single-node membership change (etcd's original ConfChange).
public struct ConfChange: Sendable, Hashable {
    public var id: UInt64
    public var type: ConfChangeType
    public var nodeID: UInt64
    public var context: [UInt8]

    public init(id: UInt64 = 0, type: ConfChangeType = .addNode, nodeID: UInt64 = 0, context: [UInt8] = []) {
        self.id = id
        self.type = type
        self.nodeID = nodeID
        self.context = context
    }

    /// The same change in the V2 form the state machine works with.
    public var asV2: ConfChangeV2 {
        ConfChangeV2(transition: .auto, changes: [ConfChangeSingle(type: type, nodeID: nodeID)], context: context)
    }
}

/// How a `ConfChangeV2` with several changes passes through joint consensus.
public enum ConfChangeTransition: UInt8, Sendable, Hashable, CaseIterable {
    /// Joint consensus when needed (more than one voter changes), left automatically.
    case auto = 0
    /// Always joint; left automatically once the joint entry is applied.
    case jointImplicit = 1
    /// Always joint; the application leaves by proposing an empty `ConfChangeV2`.
    case jointExplicit = 2
}

public struct ConfChangeSingle: Sendable, Hashable {
    public var type: ConfChangeType
    public var nodeID: UInt64

    public init(type: ConfChangeType, nodeID: UInt64) {
        self.type = type
        self.nodeID = nodeID
    }
}

/// A membership change of any number of nodes. An empty one leaves a joint configuration.
public struct ConfChangeV2: Sendable, Hashable {
    public var transition: ConfChangeTransition
    public var changes: [ConfChangeSingle]
    public var context: [UInt8]

    public init(transition: ConfChangeTransition = .auto, changes: [ConfChangeSingle] = [], context: [UInt8] = []) {
        self.transition = transition
        self.changes = changes
        self.context = context
    }

    /// Whether applying this change enters a joint configuration, and if so whether
    /// it is left automatically (etcd's EnterJoint).
    public var entersJoint: (joint: Bool, autoLeave: Bool) {
        // Only changes of more than one node, or an explicit request, go through joint consensus.
        guard transition != .auto || changes.count > 1 else { return (false, false) }
        switch transition {
        case .auto, .jointImplicit: return (true, true)
        case .jointExplicit: return (true, false)
        }
    }

    /// An empty V2 change (context aside) is the instruction to leave a joint configuration.
    public var leavesJoint: Bool { changes.isEmpty && transition == .auto }
}
