import Flotilla
import Raft

extension NodeSimulator {
    // MARK: - The operator: membership changes

    /// The operator's look at the cluster, every few hundred milliseconds while the faults are
    /// on: a node that applied its own removal is shut down for good; then, with no change in
    /// flight, one change through whichever node leads: promote a learner, or start a spare
    /// and add it as a learner, or remove a voter (any of them, the leader too) while there are
    /// more than `nodeCount`. A change that timed out may still apply: the next look goes by
    /// the leader's configuration, not by what the operator asked.
    func operatorStep() {
        for id in nodes.keys.sorted() {
            guard let node = nodes[id], node.inService, let instance = node.instance else { continue }
            if Self.members(instance.confState).contains(id) {
                node.wasMember = true
            } else if node.wasMember {
                decommission(id, because: "it applied its own removal")
            }
        }
        guard membershipInFlight == nil, let leader = currentLeader(), let configuration = nodes[leader]?.instance?.confState,
            configuration.votersOutgoing.isEmpty
        else { return }
        let change: MembershipChange
        if let learner = configuration.learners.sorted().first {
            change = MembershipChange(type: .addNode, member: learner)
        } else if let spare = nodes.keys.sorted().first(where: {
            nodes[$0]!.isSpare && !nodes[$0]!.removed && !configuration.voters.contains($0)
        }) {
            if !nodes[spare]!.joined {
                nodes[spare]!.joined = true
                boot(spare)
            }
            change = MembershipChange(type: .addLearnerNode, member: spare)
        } else if configuration.voters.count > options.nodeCount, let victim = rng.pick(configuration.voters.sorted()) {
            change = MembershipChange(type: .removeNode, member: victim)
        } else {
            return
        }
        guard let node = nodes[leader], node.instance != nil else { return }
        record("operator → n\(leader): \(change)")
        membershipInFlight = change
        onNode(leader) { instance, _ in
            let requestID = instance.ids.make()
            node.requests[requestID] = .membership(change)
            instance.changeMembership(
                change.type, member: change.member, address: change.type == .removeNode ? nil : Self.address(of: change.member),
                id: requestID, deadline: origin + .nanoseconds(Int64(now)) + .seconds(2))
        }
    }

    /// The leader answered the operator's change: done (applied there) or refused.
    func membershipAnswered(_ change: MembershipChange, _ result: Result<Void, FlotillaError>, on node: SimulatedNode<Store>) {
        membershipInFlight = nil
        switch result {
        case .success:
            stats.membershipChanges += 1
            record("n\(node.id): \(change): applied")
            // Shut down once the change is in: not from inside the node's own actions.
            if change.type == .removeNode { schedule(after: 0, .decommission(change.member)) }
        case .failure(let error):
            record("n\(node.id): \(change) failed: \(error)")
        }
    }

    /// Node `id` leaves for good: stopped as the shell stops it (closing its storage), never
    /// started again.
    func decommission(_ id: UInt64, because reason: String) {
        guard let node = nodes[id], !node.removed else { return }
        record("decommission n\(id): \(reason)")
        if node.instance != nil { stop(id, closing: true) }
        node.removed = true
    }

    /// Every member of a configuration: voters and learners, incoming and outgoing.
    static func members(_ configuration: ConfState) -> Set<UInt64> {
        Set(configuration.voters + configuration.learners + configuration.votersOutgoing + configuration.learnersNext)
    }
}
