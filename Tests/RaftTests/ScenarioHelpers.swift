@testable import Raft
import RaftTestKit

// Helpers shared by the scenario tests (paper, PreVote/CheckQuorum, proposals, RawNode).
//
// Every log here starts the way `SimulatedNetwork` bootstraps its nodes: a snapshot at index 1,
// term 1, whose configuration is the cluster. Index 1 therefore plays the part of the paper's
// first entry (term 1), and the logs of the paper's figures keep their indices.

/// Entries `first, first+1, …` with the given terms, as the paper's figures write a log.
func entries(from first: UInt64, terms: [UInt64]) -> [Entry] {
    terms.enumerated().map { Entry(term: $1, index: first + UInt64($0)) }
}

/// A normal entry carrying `data`.
func dataEntry(_ index: UInt64, _ term: UInt64, _ data: [UInt8]) -> Entry {
    Entry(term: term, index: index, data: data)
}

/// A storage as `SimulatedNetwork` bootstraps one (snapshot at (1, 1) with configuration
/// `voters`/`learners`), then `entries`, then `hardState` (whose commit must be at least 1).
func bootstrappedStorage(
    voters: [UInt64], learners: [UInt64] = [], entries: [Entry] = [], hardState: HardState? = nil
) throws -> MemoryStorage {
    let storage = MemoryStorage()
    try storage.applySnapshot(
        Snapshot(metadata: SnapshotMetadata(confState: ConfState(voters: voters, learners: learners), index: 1, term: 1)))
    try storage.append(entries)
    if let hardState { try storage.setHardState(hardState) }
    return storage
}

/// One `RawNode` on its own `MemoryStorage`, driven by hand the way etcd's raft_test.go drives
/// `newTestRaft`: step messages in, read back what it sends. Every Ready is handled in full
/// (persisted, committed entries recorded, advanced); configuration changes are not applied
/// automatically, so tests decide when they take effect.
final class TestNode {
    let node: RawNode
    let storage: MemoryStorage
    /// Every committed entry handed out by a Ready, in order.
    private(set) var committed: [Entry] = []
    /// Every Ready handled, in order.
    private(set) var readies: [Ready] = []

    convenience init(
        id: UInt64, voters: [UInt64], learners: [UInt64] = [], entries: [Entry] = [], hardState: HardState? = nil,
        configure: (inout Config) -> Void = { _ in }
    ) throws {
        try self.init(
            id: id, storage: bootstrappedStorage(voters: voters, learners: learners, entries: entries, hardState: hardState),
            configure: configure)
    }

    /// A node on `storage` as it is (empty, or restarting from what it holds).
    init(id: UInt64, storage: MemoryStorage, configure: (inout Config) -> Void = { _ in }) throws {
        self.storage = storage
        var config = Config(id: id, electionTick: 10, heartbeatTick: 1, storage: storage)
        configure(&config)
        node = try RawNode(config: config)
        _ = readMessages()
    }

    var id: UInt64 { node.id }
    var core: RaftCore { node.core }
    var state: StateType { node.core.state }
    var term: UInt64 { node.core.term }

    /// Handles every pending Ready and returns the messages they carried.
    @discardableResult
    func readMessages() -> [Message] {
        var messages: [Message] = []
        while node.hasReady {
            let rd = node.ready()
            readies.append(rd)
            if let snapshot = rd.snapshot { try! storage.applySnapshot(snapshot) }
            if let hs = rd.hardState { try! storage.setHardState(hs) }
            try! storage.append(rd.entries)
            committed.append(contentsOf: rd.committedEntries)
            messages.append(contentsOf: rd.messages)
            node.advance(rd)
        }
        return messages
    }

    /// The committed entries handed out since the last call.
    func takeCommitted() -> [Entry] {
        _ = readMessages()
        defer { committed.removeAll() }
        return committed
    }

    func step(_ m: Message) throws {
        try node.step(m)
    }

    /// Steps `m` and returns what the node sent in answer.
    func stepAndRead(_ m: Message) throws -> [Message] {
        try node.step(m)
        return readMessages()
    }

    func tick(_ n: Int = 1) {
        for _ in 0..<n { node.tick() }
    }

    func propose(_ data: [UInt8]) throws {
        try node.propose(data)
    }

    /// Campaigns and grants every (pre-)vote request, so this node leads. Returns the messages
    /// it sent once leader (the appends carrying its empty entry, sent to probe its followers).
    @discardableResult
    func becomeLeader() throws -> [Message] {
        try node.campaign()
        var sent = readMessages()
        while state != .leader {
            let requests = sent.filter { $0.type == .vote || $0.type == .preVote }
            precondition(!requests.isEmpty, "node \(id) is \(state) and asks for no votes")
            sent = []
            let round = state
            for r in requests where state == round {
                let type: MessageType = r.type == .vote ? .voteResponse : .preVoteResponse
                try node.step(Message(type: type, to: id, from: r.to, term: r.term))
                sent += readMessages()
            }
        }
        return sent.filter { $0.type != .vote && $0.type != .preVote }
    }

    /// Acknowledges every entry up to `index` on behalf of `from` (a follower's append response).
    func ack(from: UInt64, index: UInt64) throws -> [Message] {
        try stepAndRead(Message(type: .appendResponse, to: id, from: from, term: term, index: index))
    }
}

extension SimulatedNetwork {
    /// Campaigns on `id` and delivers every message: a healthy cluster elects it.
    func elect(_ id: UInt64) throws {
        try with(id) { try $0.campaign() }
        deliverAll()
    }

    /// Ticks every node once and delivers every message, `rounds` times.
    func run(rounds: Int) {
        for _ in 0..<rounds {
            tickAll()
            deliverAll()
        }
    }

    /// The single node that leads (and the term), or nil if none or several do.
    var leader: (id: UInt64, term: UInt64)? {
        let all = leaders
        return all.count == 1 ? all[0] : nil
    }

    func term(_ id: UInt64) -> UInt64 { status(id)?.hardState.term ?? 0 }
    func state(_ id: UInt64) -> StateType? { status(id)?.raftState }
    func commit(_ id: UInt64) -> UInt64 { status(id)?.hardState.commit ?? 0 }
}

/// A counter the network's filter closure can update.
final class MessageLog {
    private(set) var messages: [Message] = []
    func record(_ m: Message) { messages.append(m) }
    func removeAll() { messages.removeAll() }
    func of(_ type: MessageType, from: UInt64? = nil, to: UInt64? = nil) -> [Message] {
        messages.filter { $0.type == type && (from == nil || $0.from == from) && (to == nil || $0.to == to) }
    }
}

extension SimulatedNetwork {
    /// Records into `log` every message that gets past the network's faults (drops, cuts,
    /// ignored types) and is about to be queued; `keep` may drop some of them.
    func record(into log: MessageLog, keep: @escaping (Message) -> Bool = { _ in true }) {
        filter = { m in
            log.record(m)
            return keep(m)
        }
    }
}

/// A reference cell, for state a network filter closure updates.
final class Box<Value> {
    var value: Value
    init(_ value: Value) { self.value = value }
}
