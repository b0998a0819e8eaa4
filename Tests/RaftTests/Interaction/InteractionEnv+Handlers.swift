import Logging
@testable import Raft

// The transcript commands, named and spelled as etcd's rafttest handlers so that etcd's
// transcripts can be ported by copying their directives:
//
//   add-nodes <n> [voters=(ids)] [learners=(ids)] [index=<i>] [content=<s>] [prevote=<bool>]
//             [checkquorum=<bool>] [inflight=<n>] [max-committed-size-per-ready=<n>]
//             [max-size-per-msg=<n>] [read-only=safe|lease-based] [step-down-on-removal=<bool>]
//   campaign <id>                    propose <id> <data>
//   propose-conf-change <id> [v1=true] [transition=auto|implicit|explicit]
//       <changes: v1 adds a voter, l1 a learner, r1 removes, u1 updates; an empty line leaves joint>
//   stabilize [ids...]               process-ready <ids...>
//   deliver-msgs [ids...] [drop=(ids)] [type=<MsgType>]
//   tick-heartbeat <id>              tick-election <id>
//   set-randomized-election-timeout <id> timeout=<ticks>
//   transfer-leadership from=<id> to=<id>
//   report-unreachable <id> <unreachable id>
//   compact <id> <index>             raft-log <id>          raft-state         status <id>
//   log-level none|debug|info|warn|error

extension InteractionEnv {
    func dispatch(_ c: DataDrivenCase) throws {
        switch c.command {
        case "add-nodes": try addNodes(c)
        case "campaign": try node(c.firstID()).rawNode.campaign()
        case "propose":
            let args = c.bareArguments
            guard args.count == 2 else { throw DataDrivenError(description: "propose <id> <data>") }
            try node(c.firstID()).rawNode.propose(Array(args[1].utf8))
        case "propose-conf-change": try proposeConfChange(c)
        case "stabilize": try stabilize(c.ids())
        case "process-ready":
            let ids = try c.ids()
            for id in ids {
                let n = try node(id)
                if ids.count > 1 {
                    output.write("> \(id) handling Ready\n")
                    try output.indented { try processReady(n) }
                } else {
                    try processReady(n)
                }
            }
        case "deliver-msgs": try deliverMsgs(c)
        case "tick-heartbeat":
            let n = try node(c.firstID())
            for _ in 0..<n.heartbeatTick { n.rawNode.tick() }
        case "tick-election":
            let n = try node(c.firstID())
            for _ in 0..<n.electionTick { n.rawNode.tick() }
        case "set-randomized-election-timeout":
            let n = try node(c.firstID())
            n.rawNode.core.randomizedElectionTimeout = Int(try c.uint("timeout"))
        case "transfer-leadership":
            try node(c.uint("from")).rawNode.transferLeader(to: c.uint("to"))
        case "report-unreachable":
            let ids = try c.ids()
            guard ids.count == 2 else { throw DataDrivenError(description: "report-unreachable <id> <unreachable id>") }
            try node(ids[0]).rawNode.reportUnreachable(ids[1])
        case "compact": try compact(c)
        case "raft-log": try raftLog(node(c.firstID()))
        case "raft-state": raftState()
        case "status": try status(node(c.firstID()))
        case "log-level": try logLevel(c)
        default: throw DataDrivenError(description: "unknown command \(c.command)")
        }
    }

    private func addNodes(_ c: DataDrivenCase) throws {
        guard let first = c.bareArguments.first, let count = Int(first) else {
            throw DataDrivenError(description: "add-nodes <count> ...")
        }
        var confState = ConfState()
        var index: UInt64 = 0
        var content: [UInt8] = []
        var options: [(inout Config) -> Void] = []
        for arg in c.arguments where !arg.values.isEmpty {
            let value = arg.values[0]
            switch arg.key {
            case "voters": confState.voters = try arg.values.map(parseUInt)
            case "learners": confState.learners = try arg.values.map(parseUInt)
            case "index": index = try parseUInt(value)
            case "content": content = Array(value.utf8)
            case "prevote":
                let on = try parseBool(value)
                options.append { $0.preVote = on }
            case "checkquorum":
                let on = try parseBool(value)
                options.append { $0.checkQuorum = on }
            case "step-down-on-removal":
                let on = try parseBool(value)
                options.append { $0.stepDownOnRemoval = on }
            case "inflight":
                let n = Int(try parseUInt(value))
                options.append { $0.maxInflightMsgs = n }
            case "max-committed-size-per-ready":
                let n = try parseUInt(value)
                options.append { $0.maxCommittedSizePerReady = n }
            case "max-size-per-msg":
                let n = try parseUInt(value)
                options.append { $0.maxSizePerMsg = n }
            case "read-only":
                switch value {
                case "safe": options.append { $0.readOnlyOption = .safe }
                case "lease-based": options.append { $0.readOnlyOption = .leaseBased }
                default: throw DataDrivenError(description: "invalid read-only option \(value)")
                }
            default: throw DataDrivenError(description: "add-nodes: unknown argument \(arg.key)")
            }
        }
        // Nodes start from a snapshot at `index` (term 1) holding the configuration, as etcd's
        // do; without one they start empty and wait to learn the configuration from a leader.
        let bootstrap = !confState.voters.isEmpty || !confState.learners.isEmpty || index > 0
        if bootstrap && index <= 1 {
            throw DataDrivenError(description: "index must be specified as > 1 due to bootstrap")
        }
        let output = self.output
        for _ in 0..<count {
            let id = UInt64(nodes.count + 1)
            let storage = MemoryStorage()
            var snap = Snapshot()
            if bootstrap {
                snap = Snapshot(data: content, metadata: SnapshotMetadata(confState: confState, index: index, term: 1))
                try storage.applySnapshot(snap)
            }
            // etcd's raftConfigStub: short timeouts, no size limits, a huge inflight window.
            var config = Config(id: id, electionTick: 3, heartbeatTick: 1, storage: storage)
            config.applied = index
            config.maxSizePerMsg = .max
            config.maxInflightMsgs = Int(Int32.max)
            for option in options { option(&config) }
            config.logger = Logger(label: "raft") { _ in TranscriptLogHandler(output: output) }
            let rawNode = try RawNode(config: config)
            nodes.append(InteractionNode(
                rawNode: rawNode, storage: storage, electionTick: config.electionTick,
                heartbeatTick: config.heartbeatTick, initial: snap))
        }
    }

    private func proposeConfChange(_ c: DataDrivenCase) throws {
        let n = try node(c.firstID())
        let v1 = try c.argument("v1").map { try parseBool($0.values.first ?? "true") } ?? false
        var transition = ConfChangeTransition.auto
        if let t = c.argument("transition")?.values.first {
            switch t {
            case "auto": transition = .auto
            case "implicit": transition = .jointImplicit
            case "explicit": transition = .jointExplicit
            default: throw DataDrivenError(description: "unknown transition \(t)")
            }
        }
        let changes = try parseChanges(c.input.joined(separator: " "))
        if v1 {
            guard changes.count == 1, transition == .auto else {
                throw DataDrivenError(description: "v1 conf change needs exactly one change and no transition")
            }
            try n.rawNode.proposeConfChange(ConfChange(type: changes[0].type, nodeID: changes[0].nodeID))
        } else {
            try n.rawNode.proposeConfChange(ConfChangeV2(transition: transition, changes: changes))
        }
    }

    private func deliverMsgs(_ c: DataDrivenCase) throws {
        var recipients: [(id: UInt64, drop: Bool)] = try c.ids().map { ($0, false) }
        var type: MessageType?
        for arg in c.arguments where !arg.values.isEmpty {
            switch arg.key {
            case "drop":
                for v in arg.values {
                    let id = try parseUInt(v)
                    if recipients.contains(where: { $0.id == id }) {
                        throw DataDrivenError(description: "can't both deliver and drop msgs to \(id)")
                    }
                    recipients.append((id, true))
                }
            case "type":
                guard let t = MessageType(etcdName: arg.values[0]) else {
                    throw DataDrivenError(description: "unknown message type \(arg.values[0])")
                }
                type = t
            default: throw DataDrivenError(description: "deliver-msgs: unknown argument \(arg.key)")
            }
        }
        if deliver(to: recipients, type: type) == 0 { output.write("no messages\n") }
    }

    /// Compacts the log up to `index` (which must be applied). The storage's snapshot is always
    /// the newest applied state (see `processReady`), so a follower that needs a compacted entry
    /// is sent that.
    private func compact(_ c: DataDrivenCase) throws {
        let ids = try c.ids()
        guard ids.count == 2 else { throw DataDrivenError(description: "compact <id> <index>") }
        let n = try node(ids[0])
        guard ids[1] <= n.rawNode.status.applied else {
            throw DataDrivenError(description: "node \(n.id) has not applied index \(ids[1])")
        }
        try n.storage.compact(ids[1])
        try raftLog(n)
    }

    /// The entries in the node's storage (what it persisted), as etcd's raft-log prints them.
    func raftLog(_ n: InteractionNode) throws {
        let first = try n.storage.firstIndex()
        let last = try n.storage.lastIndex()
        guard last >= first else {
            output.write("log is empty: first index=\(first), last index=\(last)\n")
            return
        }
        for e in try n.storage.entries(first, last + 1, maxSize: .max) { output.write(Describe.entry(e) + "\n") }
    }

    /// Every node: its role, whether it votes, its term and the leader it knows.
    private func raftState() {
        for n in nodes {
            let st = n.rawNode.status
            let membership: String
            if st.config.voters.contains(st.id) || st.config.votersOutgoing.contains(st.id) {
                membership = "(Voter)"
            } else if st.config.learners.contains(st.id) {
                membership = "(Learner)"
            } else {
                membership = "(Non-Voter)"
            }
            output.write("\(st.id): \(st.raftState.etcdName) \(membership) Term:\(st.hardState.term) Lead:\(st.lead)\n")
        }
    }

    /// The leader's view of every member's replication (empty on a non-leader).
    private func status(_ n: InteractionNode) {
        let progress = n.rawNode.status.progress
        for id in progress.keys.sorted() { output.write("\(id): \(Describe.progress(progress[id]!))\n") }
    }

    private func logLevel(_ c: DataDrivenCase) throws {
        guard let level = c.bareArguments.first else { throw DataDrivenError(description: "log-level <level>") }
        switch level {
        case "none": output.logLevel = nil
        case "debug": output.logLevel = .debug
        case "info": output.logLevel = .info
        case "warn": output.logLevel = .warning
        case "error": output.logLevel = .error
        default: throw DataDrivenError(description: "unknown log level \(level)")
        }
    }
}

// MARK: Argument parsing

private func parseUInt(_ s: String) throws -> UInt64 {
    guard let v = UInt64(s) else { throw DataDrivenError(description: "not a number: \(s)") }
    return v
}

private func parseBool(_ s: String) throws -> Bool {
    switch s {
    case "true": return true
    case "false": return false
    default: throw DataDrivenError(description: "not a boolean: \(s)")
    }
}

/// etcd's ConfChangesFromString: `v2 l3 r4 u5`.
private func parseChanges(_ text: String) throws -> [ConfChangeSingle] {
    try text.split(separator: " ").map { token in
        guard let kind = token.first, let id = UInt64(token.dropFirst()) else {
            throw DataDrivenError(description: "malformed conf change \(token)")
        }
        switch kind {
        case "v": return ConfChangeSingle(type: .addNode, nodeID: id)
        case "l": return ConfChangeSingle(type: .addLearnerNode, nodeID: id)
        case "r": return ConfChangeSingle(type: .removeNode, nodeID: id)
        case "u": return ConfChangeSingle(type: .updateNode, nodeID: id)
        default: throw DataDrivenError(description: "unknown conf change type \(kind)")
        }
    }
}

extension DataDrivenCase {
    /// The bare numeric arguments: node ids (and, for some commands, an index).
    func ids() throws -> [UInt64] {
        try bareArguments.map(parseUInt)
    }

    func firstID() throws -> UInt64 {
        guard let first = bareArguments.first else { throw DataDrivenError(description: "\(command): missing node id") }
        return try parseUInt(first)
    }

    func uint(_ key: String) throws -> UInt64 {
        guard let v = argument(key)?.values.first else { throw DataDrivenError(description: "\(command): missing \(key)=") }
        return try parseUInt(v)
    }
}
