import Flotilla
import Raft

/// A client: one request at a time, each to a node of its choosing.
struct SimulatedClient {
    let id: Int
    var stopped = false
    var issued = 0
}

extension NodeSimulator {
    // MARK: - Clients

    /// The client's next request: a put (70 %), a get (20 %) or a delete, on one of a few keys,
    /// to a random node that is up.
    func clientNext(_ client: Int) {
        guard client < clients.count, !clients[client].stopped, clients[client].issued < options.operationsPerClient else { return }
        let up = nodes.keys.sorted().filter { nodes[$0]!.instance != nil }
        // Like `FlotillaNode.apply` and `read`, which wait for a leader before they go to raft.
        guard let id = rng.pick(up), let node = nodes[id], node.instance?.leader != 0 else {
            schedule(after: 10_000_000, .clientNext(client))
            return
        }
        clients[client].issued += 1
        let key = Array("k\(rng.below(UInt64(options.keyCount)))".utf8)
        let roll = rng.below(10)
        let deadline = origin + .nanoseconds(Int64(now)) + .seconds(2)
        let operation = history.count
        if roll < 2 {
            history.append(KeyValueOperation(client: client, key: key, kind: .get(observed: nil), invoked: now, returned: nil))
            onNode(id) { instance, _ in
                let requestID = instance.ids.make()
                node.requests[requestID] = .readIndex(operation: operation)
                instance.readIndex(id: requestID, deadline: deadline)
            }
        } else {
            let kind: KeyValueOperation.Kind
            let command: [UInt8]
            if roll < 9 {
                let value = Array("c\(client)-\(operation)".utf8)
                kind = .put(value: value)
                command = Store.putCommand(key: key, value: value)
            } else {
                kind = .delete
                command = Store.deleteCommand(key: key)
            }
            history.append(KeyValueOperation(client: client, key: key, kind: kind, invoked: now, returned: nil))
            onNode(id) { instance, _ in
                let requestID = instance.ids.make()
                node.requests[requestID] = .write(operation: operation)
                instance.propose(command, id: requestID, deadline: deadline)
            }
        }
        record("client \(client) → n\(id): \(history[operation])")
    }

    /// A node answered request `requestID`.
    func answered(_ requestID: UInt64, _ outcome: RequestOutcome<Store.Response>, on node: SimulatedNode<Store>) {
        guard let request = node.requests.removeValue(forKey: requestID) else { return }
        switch (request, outcome) {
        case (.write(let operation), .applied(let result)):
            if case .success = result {
                history[operation].returned = now
                stats.acknowledgedWrites += 1
                if strikeAtNextAcknowledgement { struck = true }
            }
            // A failed write may still have been committed: its outcome stays unknown.
            finish(operation)
        case (.readIndex(let operation), .readIndex(.success(let index))):
            guard node.instance != nil else { return }
            if node.instance!.applied >= index {
                read(operation, on: node)
            } else {
                let waitID = node.instance!.ids.make()
                node.requests[waitID] = .readApplied(operation: operation)
                node.instance!.waitUntilApplied(index, id: waitID, deadline: origin + .nanoseconds(Int64(now)) + .seconds(2))
                perform(node.instance!.takeActions(), on: node)
            }
        case (.readApplied(let operation), .done(.success)):
            read(operation, on: node)
        case (.readIndex(let operation), _), (.readApplied(let operation), _):
            // A read that failed took no effect: it leaves the history (unanswered).
            finish(operation)
        case (.membership(let change), .done(let result)):
            membershipAnswered(change, result, on: node)
        default:
            fail("request \(requestID) on n\(node.id) was answered with \(outcome), which is not what it asked")
        }
    }

    /// A get whose index is applied on `node`: the value is read now.
    func read(_ operation: Int, on node: SimulatedNode<Store>) {
        guard let instance = node.instance else { return }
        history[operation].kind = .get(observed: instance.machine.inner.value(forKey: history[operation].key))
        history[operation].returned = now
        stats.readsAnswered += 1
        finish(operation)
    }

    /// The client of `operation` is free again: its next request after a short pause.
    func finish(_ operation: Int) {
        let client = history[operation].client
        schedule(after: 100_000 + rng.below(5_000_000), .clientNext(client))
    }

    /// The node working on a request is gone: the client gives up on it (a write's outcome
    /// stays unknown, a read took no effect).
    func abandon(_ requestID: UInt64, _ request: PendingRequest) {
        switch request {
        case .write(let operation):
            finish(operation)
        case .readIndex(let operation), .readApplied(let operation):
            finish(operation)
        case .membership:
            membershipInFlight = nil
        }
    }

    /// The lowest-numbered node that is up and believes it leads (nil: none).
    func currentLeader() -> UInt64? {
        nodes.keys.sorted().first(where: { nodes[$0]!.instance?.role == .leader })
    }

    /// After recovery: a linearizable read of every key, through the leader.
    func finalReads() {
        guard let leader = currentLeader() else {
            fail("no leader 3 s after every node restarted from its disk")
            return
        }
        let reader = options.clientCount
        for k in 0..<options.keyCount {
            let key = Array("k\(k)".utf8)
            let operation = history.count
            history.append(KeyValueOperation(client: reader, key: key, kind: .get(observed: nil), invoked: now, returned: nil))
            guard let node = nodes[leader] else { return }
            onNode(leader) { instance, _ in
                let requestID = instance.ids.make()
                node.requests[requestID] = .readIndex(operation: operation)
                instance.readIndex(id: requestID, deadline: origin + .nanoseconds(Int64(now)) + .seconds(2))
            }
        }
        runUntil(now + 1_000_000_000)
        let unanswered = (history.count - options.keyCount..<history.count).filter { history[$0].returned == nil }
        if !unanswered.isEmpty {
            fail("\(unanswered.count) final reads unanswered a second after recovery")
        }
        // Reads that got no answer took no effect; writes without one may have.
        history = history.filter { operation in
            if case .get = operation.kind { return operation.returned != nil }
            return true
        }
    }

    /// After recovery and the final reads, with the network whole: every member applies what
    /// the leader has committed within a second (a follower whose log went back behind what it
    /// acknowledged, and a leader that trusts the acknowledgement, would leave it stuck). The
    /// members are those of the leader's configuration that are in service: a spare whose
    /// addition never applied is no member.
    func checkEveryNodeCaughtUp() {
        let deadline = now + 1_000_000_000
        while true {
            guard let leader = currentLeader(), let instance = nodes[leader]?.instance else {
                fail("no leader while the followers catch up")
                return
            }
            let target = instance.committed
            let members = Self.members(instance.confState)
            let behind = nodes.keys.sorted().filter {
                members.contains($0) && nodes[$0]!.inService && (nodes[$0]!.instance?.applied ?? 0) < target
            }
            if behind.isEmpty { return }
            guard now < deadline else {
                fail(behind.map { "n\($0) applied \(nodes[$0]!.instance.map { "\($0.applied)" } ?? "nothing (it is down)")" }
                    .joined(separator: ", ") + " of the \(target) entries the leader n\(leader) committed, a second after the final reads")
                return
            }
            runUntil(now + 10_000_000)
            guard failure == nil else { return }
        }
    }

    /// After recovery, straight from the log rather than through the history: the leader has
    /// applied every acknowledged put, and where its log still holds that index (not compacted
    /// into a snapshot), the entry there is the put's own command. A delete's bytes repeat, so
    /// only puts (unique values) are checked this way; the history checks the rest.
    func checkAcknowledgedWritesKept() {
        guard let leader = currentLeader(), let node = nodes[leader], let instance = node.instance, let storage = node.storage
        else {
            fail("no leader to check the acknowledged writes against")
            return
        }
        do {
            let first = try storage.firstIndex()
            let last = try storage.lastIndex()
            for operation in history where operation.returned != nil {
                guard case .put(let value) = operation.kind, operation.client < options.clientCount else { continue }
                let command = Store.putCommand(key: operation.key, value: value)
                guard let index = ledger.indexOfCommand[command] else {
                    fail("acknowledged \(operation) was never applied by any node")
                    return
                }
                guard instance.applied >= index else {
                    fail("acknowledged \(operation) at index \(index), but the leader n\(leader) applied only \(instance.applied) after the power loss")
                    return
                }
                guard index >= first, index <= last else { continue }
                let entry = try storage.entries(index, index + 1, maxSize: .max)[0]
                let kept = ProposalEnvelope(decoding: entry.data)?.command
                guard kept == command else {
                    fail("acknowledged \(operation) at index \(index) is lost: the leader n\(leader)'s log holds "
                        + (kept.map(printable) ?? "a \(entry.type) entry of \(entry.data.count) bytes") + " there after the power loss")
                    return
                }
            }
        } catch {
            fail("cannot read the leader n\(leader)'s log: \(error)")
        }
    }
}
