import Logging
import Synchronization
@testable import Raft

// The world a transcript runs in (etcd's rafttest.InteractionEnv): RawNodes on MemoryStorage,
// numbered 1, 2, … in the order they are added, and one queue of messages in flight between
// them. Nothing moves unless a command says so: Readies are handled by `process-ready` or
// `stabilize`, messages delivered by `deliver-msgs` or `stabilize`, time passes by `tick-*`.
// Every node is deterministic (its election jitter is seeded by its id), so a transcript
// produces the same output on every run.

/// The text a command produces: what the handlers print and what the nodes log, interleaved in
/// the order it happens, each line indented by the nesting it happens in (`> 2 receiving
/// messages` indents what node 2 logs while stepping them). Shared with the nodes' log
/// handlers, hence Sendable.
final class TranscriptOutput: Sendable {
    private struct State {
        var text = ""
        var indent = 0
        /// The least severe level printed; nil prints no log lines at all.
        var logLevel: Logger.Level?
    }

    private let state = Mutex(State())

    /// Appends `text` (one or more lines, the last one ending in "\n" or not), indented.
    func write(_ text: String) {
        state.withLock { s in
            let pad = String(repeating: " ", count: s.indent)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last == "" { lines.removeLast() }
            for line in lines { s.text += pad + line + "\n" }
        }
    }

    /// Runs `body` with everything it writes indented two more spaces.
    func indented<T>(_ body: () throws -> T) rethrows -> T {
        state.withLock { $0.indent += 2 }
        defer { state.withLock { $0.indent -= 2 } }
        return try body()
    }

    /// The text written since the last call.
    func take() -> String {
        state.withLock { s in
            defer { s.text = "" }
            return s.text
        }
    }

    var logLevel: Logger.Level? {
        get { state.withLock { $0.logLevel } }
        set { state.withLock { $0.logLevel = newValue } }
    }

    /// `INFO 1 became leader term=1`: the level, the node, the message, the rest of the
    /// metadata sorted by key (so that the line does not depend on dictionary order).
    func log(_ event: LogEvent) {
        guard let least = logLevel, event.level >= least else { return }
        let level: String
        switch event.level {
        case .trace, .debug: level = "DEBUG"
        case .info, .notice: level = "INFO"
        case .warning: level = "WARN"
        case .error, .critical: level = "ERROR"
        }
        var metadata = event.metadata ?? [:]
        let node = metadata.removeValue(forKey: "raft.id").map { "\($0) " } ?? ""
        let rest = metadata.keys.sorted().map { " \($0)=\(metadata[$0]!)" }.joined()
        write("\(level) \(node)\(event.message)\(rest)\n")
    }
}

/// Sends a node's log lines to the transcript. It passes everything on: the transcript's
/// current `log-level` decides what is printed, so that the level can change between commands.
struct TranscriptLogHandler: LogHandler {
    let output: TranscriptOutput
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        output.log(event)
    }
}

/// One node of the environment and the application around it.
final class InteractionNode {
    let rawNode: RawNode
    let storage: MemoryStorage
    let electionTick: Int
    let heartbeatTick: Int
    /// The application's state machine, an appender (as etcd's): the payloads of the entries
    /// applied so far, as a snapshot at the last of them with the configuration then in force.
    var applied: Snapshot

    init(rawNode: RawNode, storage: MemoryStorage, electionTick: Int, heartbeatTick: Int, initial: Snapshot) {
        self.rawNode = rawNode
        self.storage = storage
        self.electionTick = electionTick
        self.heartbeatTick = heartbeatTick
        self.applied = initial
    }

    var id: UInt64 { rawNode.id }
}

final class InteractionEnv {
    var nodes: [InteractionNode] = []
    /// Messages sent and not yet delivered or dropped, in the order they were sent.
    var messages: [Message] = []
    let output = TranscriptOutput()

    /// Runs one transcript command and returns what it printed ("ok" when nothing). A failing
    /// command prints its error: a transcript may show that something is refused.
    func handle(_ c: DataDrivenCase) -> String {
        do {
            try dispatch(c)
        } catch {
            output.write("\(error)\n")
        }
        let text = output.take()
        return text.isEmpty ? "ok\n" : text
    }

    func node(_ id: UInt64) throws -> InteractionNode {
        guard id >= 1, Int(id) <= nodes.count else { throw DataDrivenError(description: "no node \(id)") }
        return nodes[Int(id - 1)]
    }

    // MARK: Ready handling and delivery (the building blocks of the commands)

    /// Handles one Ready of `node` as a synchronous application does: print it, persist the hard
    /// state, snapshot and entries, apply the committed entries, queue the messages, advance.
    func processReady(_ node: InteractionNode) throws {
        let rd = node.rawNode.ready()
        output.write(Describe.ready(rd))
        if let hs = rd.hardState { try node.storage.setHardState(hs) }
        if let snap = rd.snapshot, !snap.isEmpty {
            try node.storage.applySnapshot(snap)
            // The state machine is replaced by the snapshot's.
            node.applied = snap
        }
        try node.storage.append(rd.entries)
        try apply(rd.committedEntries, on: node)
        if let last = rd.committedEntries.last {
            let state = node.applied
            // Keep the storage's snapshot at the state just applied, as etcd's environment does
            // (its storage answers Snapshot() with the newest state): a follower that needs a
            // snapshot gets the current configuration, which includes it.
            _ = try node.storage.createSnapshot(last.index, confState: state.metadata.confState, data: state.data)
        }
        messages.append(contentsOf: rd.messages)
        node.rawNode.advance(rd)
    }

    /// Applies committed entries: configuration changes go to the node (a refused one is
    /// printed), every entry's payload is appended to the state machine.
    func apply(_ entries: [Entry], on node: InteractionNode) throws {
        for e in entries {
            var update: [UInt8] = []
            var confState: ConfState?
            switch e.type {
            case .normal:
                update = e.data
            case .confChange:
                let cc = try ConfChange(serializedBytes: e.data)
                update = cc.context
                confState = applyConfChange(cc.asV2, on: node)
            case .confChangeV2:
                let cc = try ConfChangeV2(serializedBytes: e.data)
                update = cc.context
                confState = applyConfChange(cc, on: node)
            }
            node.applied.data += update
            node.applied.metadata.index = e.index
            node.applied.metadata.term = e.term
            if let confState { node.applied.metadata.confState = confState }
        }
    }

    private func applyConfChange(_ cc: ConfChangeV2, on node: InteractionNode) -> ConfState? {
        do {
            return try node.rawNode.applyConfChangeChecked(cc)
        } catch {
            output.write("refused conf change \(Describe.changes(cc.changes)): \(error)\n")
            return nil
        }
    }

    /// Delivers (or drops) the queued messages to each of `recipients`, of `type` if given,
    /// printing each; a message a node refuses prints the error. Returns how many were handled.
    @discardableResult
    func deliver(to recipients: [(id: UInt64, drop: Bool)], type: MessageType? = nil) -> Int {
        var handled = 0
        for r in recipients {
            var mine: [Message] = []
            var rest: [Message] = []
            // Never reorders: the messages to one node arrive in the order they were sent.
            for m in messages {
                if m.to == r.id && (type == nil || m.type == type) { mine.append(m) } else { rest.append(m) }
            }
            messages = rest
            handled += mine.count
            for m in mine {
                if r.drop {
                    output.write("dropped: " + Describe.message(m) + "\n")
                    continue
                }
                output.write(Describe.message(m) + "\n")
                guard m.to >= 1, Int(m.to) <= nodes.count else {
                    output.write("no node \(m.to); message lost\n")
                    continue
                }
                do {
                    try nodes[Int(m.to - 1)].rawNode.step(m)
                } catch {
                    output.write("\(error)\n")
                }
            }
        }
        return handled
    }

    /// Handles Readies and delivers messages among `ids` (every node if empty) until nothing
    /// changes, printing each step (etcd's Stabilize). Messages to nodes outside `ids` stay queued.
    func stabilize(_ ids: [UInt64]) throws {
        let group = try ids.isEmpty ? nodes : ids.map { try node($0) }
        // A healthy cluster settles within a handful of rounds; a livelock is a bug to report.
        for _ in 0..<1000 {
            var done = true
            for n in group where n.rawNode.hasReady {
                output.write("> \(n.id) handling Ready\n")
                try output.indented { try processReady(n) }
                done = false
            }
            for n in group where messages.contains(where: { $0.to == n.id }) {
                output.write("> \(n.id) receiving messages\n")
                output.indented { _ = deliver(to: [(n.id, false)]) }
                done = false
            }
            if done { return }
        }
        throw DataDrivenError(description: "stabilize did not settle in 1000 rounds")
    }
}
