import Raft

/// The simulator's checks after every step, the liveness phase once faults stop, and the
/// trace a failing seed prints.
extension ClusterSimulator {
    // MARK: - Checks

    func checkAfterStep(steps: Int) -> SimulationFailure? {
        if !touched.isEmpty {
            // The volatile commit index never goes back within an incarnation either.
            for id in touched.sorted() {
                guard let node = nodes[id], let commit = node.raw?.status.hardState.commit else { continue }
                if commit < node.volatileCommit {
                    checker.record("node \(id): commit went back from \(node.volatileCommit) to \(commit)")
                }
                node.volatileCommit = commit
            }
            checker.check(subject: self, changed: touched.sorted())
            touched.removeAll(keepingCapacity: true)
        }
        // The run stops at the first violation, so the first one recorded is this step's.
        guard let violation = checker.violations.first else { return nil }
        return failure(violation, steps: steps)
    }

    func failure(_ violation: String, steps: Int) -> SimulationFailure {
        note("VIOLATION: \(violation)")
        return SimulationFailure(
            seed: seed, step: stepNumber, steps: steps, violation: violation, options: options, features: features,
            trace: trace.contents)
    }

    // MARK: - Liveness

    /// Heals everything and requires a fresh write to be applied by every voter of the latest
    /// configuration within 50 election timeouts.
    func livenessPhase(steps: Int) -> SimulationFailure? {
        record("liveness: heal, restart everything, stop the faults")
        side.removeAll()
        for node in nodes.values.sorted(by: { $0.id < $1.id }) where node.raw == nil && !node.removed {
            record("restart n\(node.id)")
            start(node)
        }
        let bound = 50 * options.electionTick
        var write: UInt64?
        var proposedAt = 0
        for t in 1...bound {
            stepNumber += 1
            record("liveness tick \(t)")
            for id in liveIDs { tick(id) }
            handleReadies(all: true)
            var deliveries = 0
            while !queue.isEmpty && deliveries < 10_000 {
                deliver(at: 0)
                handleReadies(all: true)
                deliveries += 1
            }
            if let failure = checkAfterStep(steps: steps) { return failure }
            let voters = Set(latestConf.voters + latestConf.votersOutgoing)
            if t % (2 * options.electionTick) == 0, let leader = liveIDs.first(where: { nodes[$0]?.raw?.status.raftState == .leader }) {
                // Applications snapshot now and then; a node added after the last snapshot can
                // only restore one that includes it (etcd's restore refuses the others).
                compact(leader)
            }
            if let w = write, voters.allSatisfy({ nodes[$0]?.state.contains(w) == true }) {
                stats.livenessTicks = t
                note("liveness: w\(w) applied on every voter \(voters.sorted()) after \(t) ticks")
                return nil
            }
            if write == nil || t - proposedAt > 3 * options.electionTick {
                // (Re)propose on the leader of the highest term, once there is one.
                let leaders = liveIDs.compactMap { id -> (UInt64, UInt64)? in
                    guard let s = nodes[id]?.raw?.status, s.raftState == .leader else { return nil }
                    return (id, s.hardState.term)
                }
                if let (id, _) = leaders.max(by: { $0.1 < $1.1 }), let raw = nodes[id]?.raw {
                    let w = nextWrite
                    nextWrite += 1
                    writeProposer[w] = id
                    if (try? raw.propose(encodeWrite(w))) != nil {
                        write = w
                        proposedAt = t
                        record("liveness: propose w\(w) on n\(id)")
                        touched.insert(id)
                    }
                }
            }
        }
        let voters = (latestConf.voters + latestConf.votersOutgoing).sorted()
        let states = voters.map { id -> String in
            guard let s = nodes[id]?.raw?.status else { return "n\(id) down" }
            return "n\(id) \(s.raftState) term \(s.hardState.term) lead \(s.lead) commit \(s.hardState.commit) applied \(s.applied)"
        }
        return failure(
            "liveness: no write was applied on every voter within \(bound) ticks of healing; config \(describe(latestConf)); \(states.joined(separator: "; "))",
            steps: steps)
    }

    // MARK: - Trace

    func record(_ line: String) {
        let text = "#\(stepNumber) \(line)"
        trace.append(text)
        log?(text)
    }

    /// Verbose-only detail (not kept in the trace ring).
    func note(_ line: String) {
        log?(line)
    }

    func describe(_ m: Message) -> String {
        var s = "\(m.type) n\(m.from)->n\(m.to) t\(m.term)"
        switch m.type {
        case .append:
            s += " i\(m.index)/t\(m.logTerm) +\(m.entries.count) c\(m.commit)"
        case .appendResponse:
            s += " i\(m.index)\(m.reject ? " reject hint \(m.rejectHint)" : "")"
        case .vote, .preVote:
            s += " last \(m.index)/t\(m.logTerm)"
        case .voteResponse, .preVoteResponse:
            s += m.reject ? " rejected" : " granted"
        case .snapshot:
            s += " at \(m.snapshot?.metadata.index ?? 0)"
        case .heartbeat:
            s += " c\(m.commit)\(m.context.isEmpty ? "" : " read")"
        case .readIndexResponse:
            s += " i\(m.index)"
        default:
            break
        }
        return s
    }

    func describe(_ cs: ConfState) -> String {
        var s = "voters \(cs.voters)"
        if !cs.learners.isEmpty { s += " learners \(cs.learners)" }
        if !cs.votersOutgoing.isEmpty { s += " outgoing \(cs.votersOutgoing)\(cs.autoLeave ? " auto" : "")" }
        if !cs.learnersNext.isEmpty { s += " learnersNext \(cs.learnersNext)" }
        return s
    }
}
