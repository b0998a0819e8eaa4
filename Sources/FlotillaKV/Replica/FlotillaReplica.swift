import Flotilla

/// The key-value store is the runtime's state machine: its commands are `Command.encoded()`, its
/// snapshots `snapshot()`. A command that does not decode (only a newer or broken writer makes
/// one) changes nothing, on every replica alike, and answers its error.
extension KeyValueStore: StateMachine {
    public mutating func apply(_ command: [UInt8], index: UInt64) -> Result<Outcome, KeyValueStoreError> {
        Result { () throws(KeyValueStoreError) in try apply(encoded: command) }
    }

    /// The changes since the previous capture (or, the first time, the store), encoded on the
    /// node's snapshot thread: spliced into the previous snapshot, or the store encoded whole.
    public mutating func captureSnapshot() -> @Sendable () throws -> [UInt8] {
        let capture = captureForSnapshot()
        return { capture.encode() }
    }
}

/// A `KeyValueReplica` on a `FlotillaNode`: durable (the node's WAL and snapshots), replicated
/// over its transport, with linearizable reads through ReadIndex.
///
/// It is a thin handle: run the node itself (it is a `Service`) beside the HTTP server.
public struct FlotillaReplica: KeyValueReplica {
    public let node: FlotillaNode<KeyValueStore>

    public init(node: FlotillaNode<KeyValueStore>) {
        self.node = node
    }

    /// Through `FlotillaNode.apply(_:completion:)`: no task, and `completion` runs on the
    /// node's actor as the write applies.
    public func write(
        key: [UInt8], value: [UInt8]?, completion: @escaping @Sendable (Result<KeyValueStore.Outcome, ReplicaError>) -> Void
    ) {
        let command: KeyValueStore.Command = value.map { .put(key: key, value: $0) } ?? .delete(key: key)
        node.apply(command.encoded()) { result in
            switch result {
            case .success(let response): completion(Self.outcome(of: response))
            case .failure(let error): completion(.failure(ReplicaError(error)))
            }
        }
    }

    /// The store's answer to its own command: refusing one is a failure of the replica.
    private static func outcome(of response: Result<KeyValueStore.Outcome, KeyValueStoreError>) -> Result<KeyValueStore.Outcome, ReplicaError> {
        response.mapError { .failed("the store refused its own command: \($0)") }
    }

    public func get(key: [UInt8], consistency: ReadConsistency) async throws -> [UInt8]? {
        do {
            switch consistency {
            case .linearizable: return try await node.read { $0.value(forKey: key) }
            case .serializable: return try await node.readLocal { $0.value(forKey: key) }
            }
        } catch let error as FlotillaError {
            throw ReplicaError(error)
        }
    }

    public func status() async -> ReplicaStatus {
        let status = await node.status
        return ReplicaStatus(
            id: status.nodeID, term: status.term, leader: status.leaderID, commit: status.commitIndex,
            applied: status.appliedIndex, state: "\(status.role)")
    }

    public func statusWhenCaughtUp(within timeout: Duration) async -> ReplicaStatus {
        let commit = await node.status.commitIndex
        try? await node.waitUntilApplied(commit, timeout: timeout)
        return await status()
    }

    public func members() async throws -> [ReplicaMember] {
        let (members, leader) = await (node.members, node.status.leaderID)
        return members.map { member in
            ReplicaMember(
                id: member.id, peerURL: member.address.map { PeerURL($0, isTLS: node.configuration.peerTLS != nil).description } ?? "",
                learner: member.isLearner, leader: member.id == leader)
        }
    }

    public func addMember(id: UInt64, peerURL: PeerURL, asLearner: Bool) async throws {
        // Every peer of a cluster speaks the same: TLS for all, or for none.
        guard peerURL.isTLS == (node.configuration.peerTLS != nil) else {
            throw ReplicaError.invalidRequest(
                "\(peerURL) is \(peerURL.isTLS ? "https" : "http"), but this cluster's peers speak \(peerURL.isTLS ? "plaintext: use http://" : "TLS: use https://")")
        }
        do {
            try await node.addMember(id: id, address: peerURL.address, asLearner: asLearner)
        } catch {
            throw ReplicaError(error)
        }
    }

    public func removeMember(id: UInt64) async throws {
        let members = await node.members
        guard members.contains(where: { $0.id == id }) else {
            throw ReplicaError.invalidRequest("node \(id) is not a member (members: \(members.map(\.id)))")
        }
        do {
            try await node.removeMember(id: id)
        } catch {
            throw ReplicaError(error)
        }
    }

    public func transferLeadership(to id: UInt64) async throws {
        let voters = await node.status.voters
        guard voters.contains(id) else {
            throw ReplicaError.invalidRequest("node \(id) is not a voter, so it cannot lead (voters: \(voters))")
        }
        do {
            try await node.transferLeadership(to: id)
        } catch {
            throw ReplicaError(error)
        }
    }
}
