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
    public func apply(_ command: [UInt8]) async throws(FlotillaError) -> Machine.Response {
        try checkRunning()
        if let tooLarge = proposalSizeError(command) { throw tooLarge }
        metrics.proposals.increment()
        do {
            let deadline = ContinuousClock.now + configuration.requestTimeout
            try await waitForLeader(until: deadline)
            let id = ids.make()
            return try await park(id) { (continuation: Waiters<Machine.Response>.Continuation) in
                writes.register(id, deadline: deadline, continuation)
                batchProposal(command, id: id)
                wake()
            }
        } catch {
            metrics.proposalsFailed.increment()
            throw error
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
        let deadline = ContinuousClock.now + configuration.requestTimeout
        try await waitForLeader(until: deadline)
        let id = ids.make()
        let index: UInt64 = try await park(id) { (continuation: Waiters<UInt64>.Continuation) in
            readIndexes.register(id, deadline: deadline, continuation)
            // One read-index round serves the reads gathered before the next Ready.
            batch.readIDs.append(id)
            wake()
        }
        if applied < index {
            try await waitUntilApplied(index, timeout: deadline - ContinuousClock.now)
        }
        try checkRunning()
        return try body(machine)
    }

    /// Returns once this node has applied `index` (at once if it has). Throws `.timeout` after
    /// `timeout`, `.cancelled`, `.stopped`.
    public func waitUntilApplied(_ index: UInt64, timeout: Duration) async throws(FlotillaError) {
        try checkRunning()
        guard applied < index else { return }
        let id = ids.make()
        try await park(id) { (continuation: Waiters<Void>.Continuation) in
            appliedWaits.register(id, key: index, deadline: ContinuousClock.now + timeout, continuation)
        }
    }

    /// Runs `body` on this node's state machine as it is (serializable): fast and available
    /// without a leader, but possibly behind the cluster. Throws `.stopped`, or what `body` throws.
    public func readLocal<T: Sendable>(_ body: @Sendable (Machine) throws -> T) throws -> T {
        try checkRunning()
        return try body(machine)
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
        try await changeMembership(.addNode, nodeID: id, address: addresses[id])
    }

    /// Removes a member (voter or learner). A leader that removes itself steps down.
    public func removeMember(id: UInt64) async throws(FlotillaError) {
        try await changeMembership(.removeNode, nodeID: id, address: nil)
    }

    private func changeMembership(_ type: ConfChangeType, nodeID member: UInt64, address: TransportAddress?) async throws(FlotillaError) {
        try checkRunning()
        guard member != 0 else { throw .invalidMembershipChange("member id 0 means \"none\"") }
        let deadline = ContinuousClock.now + configuration.requestTimeout
        try await waitForLeader(until: deadline)
        let id = ids.make()
        let change = ConfChange(type: type, nodeID: member, context: MemberContext(requestID: id, address: address).encoded())
        try await park(id) { (continuation: Waiters<Void>.Continuation) in
            memberships.register(id, deadline: deadline, continuation)
            do {
                try raw.proposeConfChange(change)
                wake()
            } catch {
                memberships.resolve(id, .failure(droppedError(error)))
            }
        }
    }

    // MARK: Leadership

    /// Asks the leader to hand leadership to `target` (a voter) and returns once this node sees
    /// `target` lead. Throws `.timeout` if it did not happen within `requestTimeout`.
    public func transferLeadership(to target: UInt64) async throws(FlotillaError) {
        try checkRunning()
        let deadline = ContinuousClock.now + configuration.requestTimeout
        try await waitForLeader(until: deadline)
        if leader == target { return }
        let id = ids.make()
        _ = try await park(id) { (continuation: Waiters<UInt64>.Continuation) in
            leaderWaits.register(id, key: target, deadline: deadline, expiry: .timeout, continuation)
            raw.transferLeader(to: target)
            wake()
        }
    }

    /// Returns the leader's id once one is known; throws `.noLeader` after `timeout` (at most).
    @discardableResult
    public func waitForLeader(timeout: Duration) async throws(FlotillaError) -> UInt64 {
        try checkRunning()
        try await waitForLeader(until: ContinuousClock.now + timeout, leaderWait: timeout)
        return leader
    }

    // MARK: Helpers

    /// `.proposalTooLarge` for a command over `maxProposalSize` once enveloped; nil when it fits.
    func proposalSizeError(_ command: [UInt8]) -> FlotillaError? {
        let limit = configuration.maxProposalSize - ProposalEnvelope.headerSize
        return command.count <= limit ? nil : .proposalTooLarge(size: command.count, limit: limit)
    }

    /// Adds write `id` to the batch: proposed with the others gathered before the next Ready,
    /// in one message.
    func batchProposal(_ command: [UInt8], id: UInt64) {
        batch.commands.append(ProposalEnvelope(requestID: id, command: command).encoded())
        batch.proposalIDs.append(id)
    }

    func checkRunning() throws(FlotillaError) {
        switch lifecycle {
        case .running: return
        case .idle, .starting: throw .notStarted
        case .stopping, .stopped: throw failure.map { .failed($0) } ?? .stopped
        }
    }

    private func waitForLeader(until deadline: ContinuousClock.Instant, leaderWait: Duration? = nil) async throws(FlotillaError) {
        if leader != 0 { return }
        let id = ids.make()
        let limit = min(deadline, ContinuousClock.now + (leaderWait ?? configuration.leaderWait))
        _ = try await park(id) { (continuation: Waiters<UInt64>.Continuation) in
            leaderWaits.register(id, key: 0, deadline: limit, expiry: .noLeader, continuation)
        }
    }

    /// The error for a proposal raft refused.
    func droppedError(_ error: any Error) -> FlotillaError {
        guard let error = error as? RaftError, error == .proposalDropped else { return .failed("\(error)") }
        if leader == 0 { return .noLeader }
        if leader != nodeID { return .notLeader(leaderID: leader) }
        return .proposalDropped
    }

    /// Suspends the calling request until its waiter is resolved. `register` runs at once, on
    /// the actor, and must register a waiter under `id` (and hand raft its work). Cancelling
    /// the task resolves the waiter with `.cancelled`.
    private func park<Value: Sendable>(
        _ id: UInt64, _ register: (Waiters<Value>.Continuation) -> Void
    ) async throws(FlotillaError) -> Value {
        // `isolation: self`: the operation closure is not isolated to the actor (it does not
        // capture `self`), so without it `register`, which touches raft and the waiter tables,
        // ran on the global executor, racing the Ready loop (a crash under concurrent requests).
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation(isolation: self) { (continuation: Waiters<Value>.Continuation) in
                self.preconditionIsolated("register must run on the node's actor")
                if Task.isCancelled {
                    continuation.resume(returning: .failure(.cancelled))
                } else {
                    register(continuation)
                }
            }
        } onCancel: {
            Task { await self.cancelRequest(id) }
        }
        return try outcome.get()
    }

    private func cancelRequest(_ id: UInt64) {
        let cancelled: Result<Void, FlotillaError> = .failure(.cancelled)
        _ = writes.resolve(id, .failure(.cancelled))
            || readIndexes.resolve(id, .failure(.cancelled))
            || appliedWaits.resolve(id, cancelled)
            || leaderWaits.resolve(id, .failure(.cancelled))
            || memberships.resolve(id, cancelled)
    }
}
