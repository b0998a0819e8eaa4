import Raft
import RaftNIO

extension FlotillaNode {
    // MARK: Writes

    /// Replicates `command` and returns the state machine's response once it is applied on this
    /// node. Works on every member: a follower forwards the proposal to the leader.
    ///
    /// Throws `.proposalTooLarge`, `.noLeader` (none elected within `leaderWait`),
    /// `.notLeader(leaderID:)` (forwarding turned off), `.proposalDropped`, `.timeout`
    /// (`requestTimeout`), `.cancelled` (the task was), `.stopped`. After `.timeout` or
    /// `.cancelled` the command may still be applied.
    ///
    /// The same write as `apply(_:completion:)` (both go through `submitWrite`), awaited: the
    /// continuation is the completion.
    public func apply(_ command: [UInt8]) async throws(FlotillaError) -> Machine.Response {
        try checkRunning()
        let id = instance.ids.make()
        return try await park(id) { continuation in
            submitWrite(command, id: id, now: clock.now) { continuation.resume(returning: $0) }
        }
    }

    // MARK: Reads

    /// Runs `body` on the state machine once it reflects every write that completed before
    /// this call (linearizable): ReadIndex asks the leader for its commit index and confirms
    /// its leadership, this node waits until it has applied that index, then reads. Works on
    /// every member.
    ///
    /// Throws `.noLeader`, `.timeout`, `.cancelled`, `.stopped`, or what `body` throws.
    public func read<T: Sendable>(_ body: @Sendable (Machine) throws -> T) async throws -> T {
        try checkRunning()
        let deadline = clock.now + configuration.requestTimeout
        try await waitForLeader(until: deadline)
        let id = instance.ids.make()
        let index: UInt64 = try await park(id) { continuation in
            parked[id] = .readIndex(continuation)
            // One read-index round serves the reads gathered before the next Ready.
            instance.readIndex(id: id, deadline: deadline)
            wake()
        }
        if instance.applied < index {
            try await waitUntilApplied(index, timeout: deadline - clock.now)
        }
        try checkRunning()
        return try body(instance.machine)
    }

    /// Returns once this node has applied `index` (at once if it has). Throws `.timeout` after
    /// `timeout`, `.cancelled`, `.stopped`.
    public func waitUntilApplied(_ index: UInt64, timeout: Duration) async throws(FlotillaError) {
        try checkRunning()
        guard instance.applied < index else { return }
        let id = instance.ids.make()
        let deadline = clock.now + timeout
        try await park(id) { continuation in
            parked[id] = .done(continuation)
            instance.waitUntilApplied(index, id: id, deadline: deadline)
        }
    }

    /// Runs `body` on this node's state machine as it is (serializable): fast and available
    /// without a leader, but possibly behind the cluster. Throws `.stopped`, or what `body` throws.
    public func readLocal<T: Sendable>(_ body: @Sendable (Machine) throws -> T) throws -> T {
        try checkRunning()
        return try body(instance.machine)
    }

    // MARK: Membership

    /// Adds a member that listens at `address`: a voter, or a learner (which receives the log
    /// but does not vote) when `asLearner`. Start the new node with `bootstrap: .join`. Returns
    /// once the change is applied on this node; every member's transport then knows the address.
    public func addMember(id: UInt64, address: TransportAddress, asLearner: Bool = false) async throws(FlotillaError) {
        try await changeMembership(asLearner ? .addLearnerNode : .addNode, nodeID: id, address: address)
    }

    /// Makes a learner a voter.
    public func promoteMember(id: UInt64) async throws(FlotillaError) {
        try await changeMembership(.addNode, nodeID: id, address: instance.addresses[id])
    }

    /// Removes a member (voter or learner). A leader that removes itself steps down.
    public func removeMember(id: UInt64) async throws(FlotillaError) {
        try await changeMembership(.removeNode, nodeID: id, address: nil)
    }

    private func changeMembership(_ type: ConfChangeType, nodeID member: UInt64, address: TransportAddress?) async throws(FlotillaError) {
        try checkRunning()
        guard member != 0 else { throw .invalidMembershipChange("member id 0 means \"none\"") }
        let deadline = clock.now + configuration.requestTimeout
        try await waitForLeader(until: deadline)
        let id = instance.ids.make()
        try await park(id) { continuation in
            parked[id] = .done(continuation)
            instance.changeMembership(type, member: member, address: address, id: id, deadline: deadline)
            wake()
        }
    }

    // MARK: Leadership

    /// Asks the leader to hand leadership to `target` (a voter) and returns once this node sees
    /// `target` lead. Throws `.timeout` if it did not happen within `requestTimeout`.
    public func transferLeadership(to target: UInt64) async throws(FlotillaError) {
        try checkRunning()
        let deadline = clock.now + configuration.requestTimeout
        try await waitForLeader(until: deadline)
        if instance.leader == target { return }
        let id = instance.ids.make()
        _ = try await park(id) { continuation in
            parked[id] = .leader(continuation)
            instance.transferLeadership(to: target, id: id, deadline: deadline)
            wake()
        }
    }

    /// Returns the leader's id once one is known; throws `.noLeader` after `timeout` (at most).
    @discardableResult
    public func waitForLeader(timeout: Duration) async throws(FlotillaError) -> UInt64 {
        try checkRunning()
        try await waitForLeader(until: clock.now + timeout, leaderWait: timeout)
        return instance.leader
    }

    // MARK: Helpers

    /// `.proposalTooLarge` for a command over `maxProposalSize`; nil when it fits.
    func proposalSizeError(_ command: [UInt8]) -> FlotillaError? {
        let limit = configuration.maxProposalSize
        return command.count <= limit ? nil : .proposalTooLarge(size: command.count, limit: limit)
    }

    func checkRunning() throws(FlotillaError) {
        switch lifecycle {
        case .running: return
        case .idle, .starting: throw .notStarted
        case .stopping, .stopped: throw failure.map { .failed($0) } ?? .stopped
        }
    }

    private func waitForLeader(until deadline: ContinuousClock.Instant, leaderWait: Duration? = nil) async throws(FlotillaError) {
        if instance.leader != 0 { return }
        let id = instance.ids.make()
        let limit = min(deadline, clock.now + (leaderWait ?? configuration.leaderWait))
        _ = try await park(id) { continuation in
            parked[id] = .leader(continuation)
            instance.waitForLeader(0, id: id, deadline: limit, expiry: .noLeader)
        }
    }

    /// Suspends the calling request until the instance answers it. `register` runs at once, on
    /// the actor, and must park the continuation under `id` (in `parked`) and hand the instance
    /// the request (which may answer it at once). Cancelling the task fails it with `.cancelled`.
    private func park<Value: Sendable>(
        _ id: UInt64, _ register: (CheckedContinuation<Result<Value, FlotillaError>, Never>) -> Void
    ) async throws(FlotillaError) -> Value {
        // `isolation: self`: the operation closure is not isolated to the actor (it does not
        // capture `self`), so without it `register`, which touches raft and the waiter tables,
        // ran on the global executor, racing the Ready loop (a crash under concurrent requests).
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation(isolation: self) { (continuation: CheckedContinuation<Result<Value, FlotillaError>, Never>) in
                self.preconditionIsolated("register must run on the node's actor")
                if Task.isCancelled {
                    continuation.resume(returning: .failure(.cancelled))
                } else {
                    register(continuation)
                    perform(instance.takeActions())
                }
            }
        } onCancel: {
            Task { await self.cancelRequest(id) }
        }
        return try outcome.get()
    }

    private func cancelRequest(_ id: UInt64) {
        instance.cancel(id)
        perform(instance.takeActions())
    }
}
