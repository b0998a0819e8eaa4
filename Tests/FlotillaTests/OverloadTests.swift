import Dispatch
import Flotilla
import Foundation
import Synchronization
import Testing

/// A state machine whose apply of `block` holds the node's Ready loop until `release()`: the
/// loop takes nothing from its inbox meanwhile, so the test decides how full it is.
struct GatedValues: StateMachine {
    static let gate = DispatchSemaphore(value: 0)
    static let entered = Atomic<Bool>(false)

    var values: [String: String] = [:]

    mutating func apply(_ command: [UInt8], index: UInt64) -> UInt64 {
        let text = String(decoding: command, as: UTF8.self)
        if text == "block" {
            Self.entered.store(true, ordering: .sequentiallyConsistent)
            Self.gate.wait()
        } else if let equals = text.firstIndex(of: "=") {
            values[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        return index
    }

    func snapshot() throws -> [UInt8] { Array(try JSONEncoder().encode(values)) }
    mutating func restore(from snapshot: [UInt8]) throws {
        values = try JSONDecoder().decode([String: String].self, from: Data(snapshot))
    }
}

/// Bounded by default: writes beyond `maxQueuedWrites` fail at once with `overloaded` (they
/// are not queued without end), the ones taken are applied once the node can, and the node
/// goes on.
@Suite("Overload", .serialized)
struct OverloadTests {
    @Test("writes beyond maxQueuedWrites fail at once with overloaded; the rest are applied", .timeLimit(.minutes(1)))
    func queuedWritesAreBounded() async throws {
        let cluster = TestCluster { $0.maxQueuedWrites = 10 }
        let node = try FlotillaNode(
            configuration: cluster.configuration(1, members: [1]), stateMachine: GatedValues(), logger: quiet)
        try await node.start()
        _ = try await node.apply(command("warm", "up"))

        let blocked = Task { try await node.apply(Array("block".utf8)) }
        try await eventually("the Ready loop is held in apply") { GatedValues.entered.load(ordering: .sequentiallyConsistent) }
        let outcomes = Outcomes()
        for request in 0..<30 { node.apply(command("k\(request)", "v"), completion: outcomes.handler(request)) }
        // The 20 beyond the limit were refused at once, on this thread.
        #expect(outcomes.calls == 20)
        #expect(outcomes.all.values.allSatisfy { $0 == [.failure(.overloaded(queued: 10, limit: 10))] })
        #expect((0..<10).allSatisfy { outcomes.all[$0] == nil })

        GatedValues.gate.signal()
        _ = try await blocked.value
        try await outcomes.waitFor(30)
        #expect((0..<10).allSatisfy { (try? outcomes.all[$0]?.first?.get()) != nil }, "the queued writes were applied")
        #expect(try await node.readLocal { machine in (0..<10).allSatisfy { machine.values["k\($0)"] == "v" } })
        #expect(try await node.readLocal { $0.values["k10"] } == nil)
        _ = try await node.apply(command("after", "1"))
        await node.shutdown()
    }

    @Test("a leader that cannot commit refuses writes once its uncommitted tail is full", .timeLimit(.minutes(1)))
    func theUncommittedTailIsBounded() async throws {
        #expect(RaftOptions().maxUncommittedEntriesSize == 64 << 20, "bounded by default")
        let (cluster, node) = try await TestCluster.isolatedLeader { $0.raftOptions.maxUncommittedEntriesSize = 4096 }
        // One write over the limit is admitted (raft always takes one into an empty tail)...
        let outcomes = Outcomes()
        node.apply(command("big", String(repeating: "x", count: 5000)), completion: outcomes.handler(0))
        // ...and every later one is dropped at once, never queued: it answers while the big one
        // still cannot commit. (A small one that rode in the big one's batch is admitted with it.)
        var refused = false
        for request in 1...20 where !refused {
            node.apply(command("k\(request)", "v"), completion: outcomes.handler(request))
            try? await eventually("write \(request) is answered", timeout: .milliseconds(500)) { outcomes.all[request] != nil }
            refused = outcomes.all[request] == [.failure(.proposalDropped)]
        }
        #expect(refused, "no write was refused: \(outcomes.all)")
        #expect(outcomes.all[0] == nil, "the big write is still waiting for a quorum")
        await node.shutdown()
        await cluster.shutdown()
    }
}
