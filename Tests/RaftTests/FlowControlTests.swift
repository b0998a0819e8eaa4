import Testing
@testable import Raft
import RaftTestKit

/// Flow control, in the manner of etcd's raft_flow_control_test.go and the TestProgress*,
/// TestSendAppendForProgress* and TestUncommittedEntryLimit tests: the inflight window (by
/// messages and by bytes), probing, pagination of appends and of committed entries, the
/// uncommitted-tail limit, and unreachable reports.
@Suite struct FlowControlTests {
    /// A leader of term 1 over 1 and 2, with 2 replicating (it acknowledged the empty entry).
    private func replicatingLeader(configure: (inout Config) -> Void = { _ in }) throws -> TestNode {
        let n = try TestNode(id: 1, voters: [1, 2], configure: configure)
        try n.becomeLeader()
        _ = try n.ack(from: 2, index: 2)
        n.readMessages()
        #expect(n.node.status.progress[2]?.state == .replicate)
        return n
    }

    /// Proposes `data` and returns the appends carrying entries that went to node 2.
    private func proposeAndCount(_ n: TestNode, _ data: [UInt8] = Array("somedata".utf8)) throws -> [Message] {
        try n.propose(data)
        return appendsWithEntries(n.readMessages())
    }

    private func appendsWithEntries(_ messages: [Message], to peer: UInt64 = 2) -> [Message] {
        messages.filter { $0.type == .append && $0.to == peer && !$0.entries.isEmpty }
    }

    private func inflights(_ n: TestNode, _ peer: UInt64 = 2) -> Inflights? {
        n.node.status.progress[peer]?.inflights
    }

    // MARK: - The inflight window (maxInflightMsgs)

    /// A replicating follower gets one append per proposal until the window is full; then
    /// nothing more, however many proposals come (etcd's TestMsgAppFlowControlFull).
    @Test func fullWindowPausesAReplicatingFollower() throws {
        let n = try replicatingLeader { $0.maxInflightMsgs = 4 }
        for i in 0..<4 {
            #expect(try proposeAndCount(n).count == 1, "proposal \(i)")
        }
        #expect(inflights(n)?.isFull == true && inflights(n)?.count == 4)
        #expect(n.node.status.progress[2]?.isPaused == true)
        for i in 0..<10 {
            #expect(try proposeAndCount(n).isEmpty, "proposal \(i) while full")
        }
        #expect(n.node.status.progress[2]?.next == 7, "next stops after the last append sent")
    }

    /// Acknowledgements free every slot up to them, letting as many appends go; stale ones free
    /// nothing (etcd's TestMsgAppFlowControlMoveForward).
    @Test func acknowledgementsMoveTheWindowForward() throws {
        let n = try replicatingLeader { $0.maxInflightMsgs = 4 }
        for _ in 0..<4 { _ = try proposeAndCount(n) }  // entries 3…6 in flight
        for tt: UInt64 in 3..<12 {
            _ = try n.ack(from: 2, index: tt)
            #expect(inflights(n)?.count == 3, "ack \(tt) frees one slot")
            #expect(try proposeAndCount(n).map { $0.entries.map(\.index) } == [[tt + 4]])
            #expect(inflights(n)?.isFull == true)
            for stale in 0..<tt {
                _ = try n.ack(from: 2, index: stale)
                #expect(inflights(n)?.isFull == true, "a stale ack (\(stale)) frees nothing")
            }
        }
        // One acknowledgement of several appends frees them all; the backlog goes out at once.
        for _ in 0..<3 { #expect(try proposeAndCount(n).isEmpty) }
        let sent = appendsWithEntries(try n.ack(from: 2, index: 14))
        #expect(sent.map { $0.entries.map(\.index) } == [Array(16...18)])
        #expect(inflights(n)?.count == 2)
    }

    /// A heartbeat answer proves the follower alive: it frees exactly one slot of a full window,
    /// however many arrive, so a stalled window cannot stay stalled (etcd's
    /// TestMsgAppFlowControlRecvHeartbeat).
    @Test func heartbeatResponseFreesExactlyOneSlot() throws {
        let n = try replicatingLeader { $0.maxInflightMsgs = 4 }
        for _ in 0..<4 { _ = try proposeAndCount(n) }
        let heartbeatResponse = Message(type: .heartbeatResponse, to: 1, from: 2, term: 1)
        for tt in 1..<5 {
            #expect(inflights(n)?.isFull == true, "round \(tt)")
            for i in 0..<tt {
                let sent = try n.stepAndRead(heartbeatResponse)
                #expect(appendsWithEntries(sent).isEmpty, "nothing new to send yet")
                #expect(inflights(n)?.count == 3 && inflights(n)?.isFull == false, "round \(tt), response \(i)")
            }
            #expect(try proposeAndCount(n).count == 1, "one slot, round \(tt)")
            for _ in 0..<10 { #expect(try proposeAndCount(n).isEmpty, "just one slot, round \(tt)") }
            // The next heartbeat answer frees one slot, and the backlog goes out in it.
            let backlog = appendsWithEntries(try n.stepAndRead(heartbeatResponse))
            #expect(backlog.map(\.entries.count) == [10], "round \(tt)")
        }
        #expect(n.node.status.progress[2]?.match == 2, "nothing was acknowledged")
    }

    /// Through the network: a slow follower whose answers are lost gets a full window of appends
    /// and then nothing but heartbeats; the other follower keeps the quorum and gets everything.
    @Test func slowFollowerGetsNoMoreThanTheWindow() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.maxInflightMsgs = 4 }
        try net.elect(1)
        net.drop(from: 2, to: 1)
        let log = MessageLog()
        net.record(into: log)
        for i in 0..<20 {
            try net.with(1) { try $0.propose([UInt8(i)]) }
            net.deliverAll()
            if i % 5 == 4 { net.tick(1); net.deliverAll() }
        }
        #expect(log.of(.append, from: 1, to: 2).filter { !$0.entries.isEmpty }.count == 4)
        #expect(log.of(.heartbeat, from: 1, to: 2).count == 4)
        #expect(log.of(.append, from: 1, to: 3).flatMap(\.entries).count == 20)
        #expect(net.commit(1) == 22 && net.appliedData(3).count == 20)
        #expect(net.status(1)?.progress[2]?.isPaused == true)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - The inflight window by bytes (maxInflightBytes)

    /// With maxInflightBytes the window is full once the payload bytes in flight reach the
    /// limit, however few messages that is; acknowledgements free the bytes.
    @Test func inflightBytesPauseReplication() throws {
        let payload = Array(repeating: UInt8(7), count: 10)
        let n = try replicatingLeader {
            $0.maxSizePerMsg = 10  // one entry per append
            $0.maxInflightBytes = 25
        }
        #expect(try proposeAndCount(n, payload).count == 1)
        #expect(try proposeAndCount(n, payload).count == 1)
        #expect(inflights(n)?.bytes == 20 && inflights(n)?.isFull == false)
        #expect(try proposeAndCount(n, payload).count == 1, "20 < 25: one more may go")
        #expect(inflights(n)?.bytes == 30 && inflights(n)?.isFull == true && inflights(n)?.count == 3)
        for _ in 0..<5 { #expect(try proposeAndCount(n, payload).isEmpty) }

        // Acknowledging the first append frees its 10 bytes: one more goes, and the window is full again.
        let sent = appendsWithEntries(try n.ack(from: 2, index: 3))
        #expect(sent.map { $0.entries.map(\.index) } == [[6]])
        #expect(inflights(n)?.bytes == 30 && inflights(n)?.isFull == true)
        // Acknowledging everything sent frees the window for the backlog (entries 7…10).
        let rest = appendsWithEntries(try n.ack(from: 2, index: 6))
        #expect(rest.map { $0.entries.map(\.index) } == [[7], [8], [9]])

        // Without a byte limit the message window alone decides.
        let free = try replicatingLeader { $0.maxSizePerMsg = 10 }
        for _ in 0..<10 { #expect(try proposeAndCount(free, payload).count == 1) }
    }

    // MARK: - Pagination

    /// A follower handed a long run of committed entries applies it over several Readies, each
    /// within maxCommittedSizePerReady (but at least one entry), in order, none lost or repeated,
    /// even when more entries commit between two Readies.
    @Test(arguments: [UInt64(1), 40, 100])
    func committedEntriesArePaginatedAcrossReadies(limit: UInt64) throws {
        let n = try TestNode(id: 2, voters: [1, 2, 3]) { $0.maxCommittedSizePerReady = limit }
        let first = (2...11).map { dataEntry($0, 1, [UInt8($0)]) }
        let more = (12...21).map { dataEntry($0, 1, [UInt8($0)]) }
        try n.step(Message(type: .append, to: 2, from: 1, term: 1, logTerm: 1, index: 1, entries: first, commit: 11))
        var pages: [[Entry]] = []
        // Take one Ready, then more entries commit, then take the rest.
        let rd = n.node.ready()
        try n.storage.append(rd.entries)
        if let hs = rd.hardState { try n.storage.setHardState(hs) }
        pages.append(rd.committedEntries)
        n.node.advance(rd)
        try n.step(Message(type: .append, to: 2, from: 1, term: 1, logTerm: 1, index: 11, entries: more, commit: 21))
        let before = n.readies.count
        n.readMessages()
        pages += n.readies[before...].map(\.committedEntries)
        pages.removeAll { $0.isEmpty }

        let perPage = max(1, Int(limit / first[0].byteSize))
        #expect(pages.count >= (20 + perPage - 1) / perPage, "limit \(limit): \(pages.map(\.count))")
        for page in pages {
            let bytes = page.reduce(0) { $0 + $1.byteSize }
            #expect(page.count == 1 || bytes <= limit, "\(page.count) entries, \(bytes) bytes > \(limit)")
        }
        #expect(pages.flatMap { $0 } == first + more)
        #expect(n.node.status.applied == 21)
        #expect(!n.node.hasReady)
    }

    /// Through the network: a follower that catches up applies everything, one entry per Ready,
    /// contiguously (the invariant checker watches every Ready).
    @Test func catchingUpFollowerAppliesPagedEntriesInOrder() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.maxCommittedSizePerReady = 1 }
        try net.elect(1)
        net.isolate(3)
        let payloads = (0..<15).map { [UInt8($0), 0xEE] }
        for p in payloads { try net.with(1) { try $0.propose(p) } }
        net.deliverAll()
        net.heal()
        net.run(rounds: 3)
        for id: UInt64 in 1...3 { #expect(net.appliedData(id) == payloads, "node \(id)") }
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    /// A follower catching up gets the backlog in appends of at most maxSizePerMsg bytes (but at
    /// least one entry), each following the previous one.
    @Test func catchUpAppendsArePaginatedByMaxSizePerMsg() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.maxSizePerMsg = 60 }
        try net.elect(1)
        net.isolate(3)
        for i in 0..<10 { try net.with(1) { try $0.propose(Array(repeating: UInt8(i), count: 10)) } }
        net.deliverAll()
        net.heal()
        let log = MessageLog()
        net.record(into: log)
        net.run(rounds: 3)
        let pages = log.of(.append, from: 1, to: 3).filter { !$0.entries.isEmpty }
        #expect(pages.map { $0.entries.map(\.index) } == [[3, 4, 5], [6, 7, 8], [9, 10, 11], [12]])
        for m in pages { #expect(m.entries.reduce(0) { $0 + $1.byteSize } <= 60) }
        for (a, b) in zip(pages, pages.dropFirst()) { #expect(b.index == a.entries.last!.index) }
        #expect(net.log(3) == net.log(1))
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - The uncommitted tail (maxUncommittedEntriesSize), beyond ProposalTests

    /// A new leader counts only what it appended itself: entries of an earlier term still
    /// uncommitted in its log do not fill its tail. When they commit together with its own, the
    /// count saturates at zero instead of going below (etcd's reduceUncommittedSize).
    @Test func newLeaderStartsWithAnEmptyTail() throws {
        let n = try TestNode(id: 2, voters: [1, 2, 3]) { $0.maxUncommittedEntriesSize = 64 }
        let old = (2...4).map { dataEntry($0, 1, Array(repeating: UInt8($0), count: 16)) }
        try n.step(Message(type: .append, to: 2, from: 1, term: 1, logTerm: 1, index: 1, entries: old, commit: 1))
        n.readMessages()
        try n.becomeLeader()
        #expect(n.term == 2 && n.core.log.lastIndex == 5)
        #expect(n.core.uncommittedSize == 0)
        for _ in 0..<4 { try n.propose(Array(repeating: 1, count: 16)) }
        #expect(n.core.uncommittedSize == 64)
        #expect(throws: RaftError.proposalDropped) { try n.propose(Array(repeating: 1, count: 16)) }

        _ = try n.ack(from: 3, index: n.core.log.lastIndex)
        #expect(n.takeCommitted().count == 8, "three old, the empty one, four new")
        #expect(n.core.uncommittedSize == 0)
        for _ in 0..<4 { try n.propose(Array(repeating: 2, count: 16)) }
        #expect(throws: RaftError.proposalDropped) { try n.propose(Array(repeating: 2, count: 16)) }
    }

    /// A leader that steps down with a full tail forgets it: when it leads again it accepts a
    /// full tail's worth.
    @Test func tailLimitRecoversAcrossLeaderChanges() throws {
        let net = try SimulatedNetwork(ids: [1, 2, 3]) { $0.maxUncommittedEntriesSize = 64 }
        try net.elect(1)
        net.isolate(1)
        for _ in 0..<4 { try net.with(1) { try $0.propose(Array(repeating: 9, count: 16)) } }
        #expect(throws: RaftError.proposalDropped) { try net.with(1) { try $0.propose([9]) } }
        #expect(net.nodes[1]!.core.uncommittedSize == 64)

        try net.elect(2)
        net.heal()
        net.run(rounds: 2)
        #expect(net.leader?.id == 2 && net.state(1) == .follower)
        #expect(net.nodes[1]!.core.uncommittedSize == 0)
        #expect(net.appliedData(1).isEmpty, "its uncommitted entries were overwritten")

        net.with(2) { $0.transferLeader(to: 1) }
        net.deliverAll()
        #expect(net.leader?.id == 1)
        net.isolate(1)
        for i in 0..<4 { try net.with(1) { try $0.propose(Array(repeating: UInt8(i), count: 16)) } }
        #expect(throws: RaftError.proposalDropped) { try net.with(1) { try $0.propose([9]) } }
        net.heal()
        net.run(rounds: 2)
        #expect(net.appliedData(3).count == 4)
        #expect(net.nodes[1]!.core.uncommittedSize == 0)
        #expect(net.checker.violations.isEmpty, "\(net.checker.violations)")
    }

    // MARK: - Probing and unreachable peers

    /// In the probe state one append is in flight at a time: further proposals send nothing,
    /// heartbeats are only heartbeats, until a heartbeat answer (which lets one more probe go)
    /// or the probe's own answer arrives (etcd's TestSendAppendForProgressProbe).
    @Test func probeIsPausedUntilAnsweredOrHeartbeatResponse() throws {
        // A leader of term 2 over a log (1, 1) … (4, 1): it probes node 2 at index 4.
        let n = try TestNode(id: 1, voters: [1, 2], entries: entries(from: 2, terms: [1, 1, 1]), hardState: HardState(term: 1, commit: 1))
        let first = try n.becomeLeader()
        #expect(n.term == 2)
        #expect(first.map { [$0.index, UInt64($0.entries.count)] } == [[4, 1]])
        for round in 0..<3 {
            #expect(n.node.status.progress[2]?.state == .probe && n.node.status.progress[2]?.isPaused == true)
            for _ in 0..<5 { #expect(try proposeAndCount(n).isEmpty, "round \(round)") }
            n.tick()
            #expect(n.readMessages().map(\.type) == [.heartbeat], "round \(round)")
        }
        // A heartbeat answer lets one probe go, from where the last one started.
        var sent = try n.stepAndRead(Message(type: .heartbeatResponse, to: 1, from: 2, term: 2))
        #expect(sent.map(\.type) == [.append])
        #expect(sent.first?.index == 4 && sent.first?.entries.map(\.index) == Array(5...20))
        #expect(n.node.status.progress[2]?.isPaused == true)
        #expect(try proposeAndCount(n).isEmpty)
        // A rejection answers the probe: the next one goes at once, further back.
        sent = try n.stepAndRead(
            Message(type: .appendResponse, to: 1, from: 2, term: 2, logTerm: 1, index: 4, reject: true, rejectHint: 2))
        #expect(sent.map { [$0.index, $0.logTerm] } == [[2, 1]])
        #expect(sent.first?.entries.map(\.index) == Array(3...21))
        #expect(try proposeAndCount(n).isEmpty)
        // An acceptance ends probing.
        _ = try n.ack(from: 2, index: 22)
        #expect(n.node.status.progress[2]?.state == .replicate)
        #expect(try proposeAndCount(n).count == 1)
        #expect(try proposeAndCount(n).count == 1)
    }

    /// A follower that lost entries it acknowledged (a disk that lied about fsync) rejects the
    /// probe at its own match. The rejection cannot move `next`, so the leader does not answer
    /// it with the same probe at once (etcd does, and the two then trade rejection and probe as
    /// fast as the network goes: 5 million messages in 5 simulated seconds in the node
    /// simulator's seed 5 with the planted early acknowledgement); the probe waits for the next
    /// heartbeat answer, as an unanswered one does.
    @Test func aRejectionAtMatchDoesNotSendTheSameProbeAgainAtOnce() throws {
        let n = try replicatingLeader()
        for _ in 0..<3 { _ = try proposeAndCount(n) }
        _ = try n.ack(from: 2, index: 5)
        n.readMessages()
        n.node.reportUnreachable(2)
        let probe = try proposeAndCount(n)
        #expect(probe.map(\.index) == [5], "a probe right after match")
        let paused = try #require(n.node.status.progress[2])
        #expect(paused.state == .probe && paused.match == 5 && paused.isPaused)
        for _ in 0..<3 {
            let answer = try n.stepAndRead(
                Message(type: .appendResponse, to: 1, from: 2, term: n.term, logTerm: 1, index: 5, reject: true, rejectHint: 3))
            #expect(answer.isEmpty, "the same probe is not sent again at once")
            #expect(n.node.status.progress[2] == paused)
        }
        // A heartbeat answer lets the probe go again, from match.
        let again = try n.stepAndRead(Message(type: .heartbeatResponse, to: 1, from: 2, term: n.term))
        #expect(again.filter { $0.type == .append }.map(\.index) == [5])
    }

    /// A replicating follower reported unreachable has probably lost the appends in flight: the
    /// leader falls back to probing from its last acknowledged index, sending one append with
    /// everything after it, then waits. A probing follower stays as it is.
    @Test func unreachableReplicatingFollowerIsProbedFromItsMatch() throws {
        let n = try replicatingLeader()
        for _ in 0..<3 { _ = try proposeAndCount(n) }
        #expect(n.node.status.progress[2]?.next == 6 && inflights(n)?.count == 3)
        n.node.reportUnreachable(2)
        let pr = try #require(n.node.status.progress[2])
        #expect(pr.state == .probe && pr.next == 3 && pr.inflights.count == 0 && !pr.isPaused)
        #expect(n.readMessages().isEmpty, "nothing is resent on the report itself")

        let resent = try proposeAndCount(n)
        #expect(resent.map { $0.entries.map(\.index) } == [[3, 4, 5, 6]])
        #expect(try proposeAndCount(n).isEmpty, "probing: one at a time")
        let probing = n.node.status.progress[2]
        n.node.reportUnreachable(2)
        #expect(n.node.status.progress[2] == probing)
    }
}
