import Logging
import Testing

@testable import FlotillaKV

/// The one-node replica driven directly: writes return once applied, reads are linearizable,
/// snapshots and compaction keep the data, stopping fails what waits.
@Suite struct SingleNodeReplicaTests {
    static let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` with a running replica, then stops it and checks that `run()` returned.
    func withReplica(
        _ configuration: SingleNodeReplica.Configuration = .init(tickInterval: .milliseconds(10)),
        _ body: (SingleNodeReplica) async throws -> Void
    ) async throws {
        let replica = try SingleNodeReplica(configuration: configuration, logger: Self.quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await replica.run() }
            do {
                try await replica.waitForLeader(timeout: .seconds(10))
                try await body(replica)
            } catch {
                await replica.stop()
                throw error
            }
            await replica.stop()
            try await group.waitForAll()
        }
    }

    @Test(.timeLimit(.minutes(1))) func writesAreAppliedBeforeTheyReturn() async throws {
        try await withReplica { (replica: SingleNodeReplica) async throws in
            let k = Array("k".utf8)
            #expect(try await replica.put(key: k, value: [1]) == .stored(replaced: false))
            // Applied already: a serializable (local) read sees it.
            #expect(try await replica.get(key: k, consistency: .serializable) == [1])
            #expect(try await replica.put(key: k, value: [2]) == .stored(replaced: true))
            #expect(try await replica.get(key: k, consistency: .linearizable) == [2])
            #expect(try await replica.delete(key: k) == .deleted(existed: true))
            #expect(try await replica.get(key: k, consistency: .linearizable) == nil)
            #expect(try await replica.delete(key: k) == .deleted(existed: false))

            let status = await replica.status()
            #expect(status.leader == 1)
            #expect(status.state == "leader")
            #expect(status.applied == status.commit)
            #expect(status.isHealthy)
        }
    }

    @Test(.timeLimit(.minutes(1))) func concurrentWritesAllApplyAndReadsSeeThem() async throws {
        try await withReplica { replica in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        _ = try await replica.put(key: Array("key\(i)".utf8), value: Array("value\(i)".utf8))
                        // Linearizable: a read after the write returned sees it.
                        let read = try await replica.get(key: Array("key\(i)".utf8), consistency: .linearizable)
                        #expect(read == Array("value\(i)".utf8))
                    }
                }
                try await group.waitForAll()
            }
            for i in 0..<200 {
                #expect(try await replica.get(key: Array("key\(i)".utf8), consistency: .serializable) == Array("value\(i)".utf8))
            }
        }
    }

    @Test(.timeLimit(.minutes(1))) func snapshotsAndCompactionKeepTheData() async throws {
        let configuration = SingleNodeReplica.Configuration(
            tickInterval: .milliseconds(10), snapshotCount: 7, snapshotCatchUpEntries: 3)
        try await withReplica(configuration) { replica in
            for i in 0..<60 {
                _ = try await replica.put(key: [UInt8(i % 20)], value: [UInt8(i)])
            }
            for k in 0..<20 {
                #expect(try await replica.get(key: [UInt8(k)], consistency: .linearizable) == [UInt8(40 + k)])
            }
            let status = await replica.status()
            #expect(status.applied >= 62)
        }
    }

    @Test(.timeLimit(.minutes(1))) func stoppedReplicaRefusesRequests() async throws {
        let replica = try SingleNodeReplica(
            configuration: .init(tickInterval: .milliseconds(10)), logger: Self.quietLogger)
        let run = Task { try await replica.run() }
        try await replica.waitForLeader(timeout: .seconds(10))
        _ = try await replica.put(key: [1], value: [1])
        await replica.stop()
        try await run.value
        await #expect(throws: ReplicaError.stopped) { try await replica.put(key: [1], value: [2]) }
        await #expect(throws: ReplicaError.stopped) { try await replica.get(key: [1], consistency: .linearizable) }
        await #expect(throws: ReplicaError.stopped) { try await replica.get(key: [1], consistency: .serializable) }
        await #expect(throws: ReplicaError.self) { try await replica.run() }
    }

    @Test(.timeLimit(.minutes(1))) func cancellingRunStopsTheReplica() async throws {
        let replica = try SingleNodeReplica(
            configuration: .init(tickInterval: .milliseconds(10)), logger: Self.quietLogger)
        let run = Task { try await replica.run() }
        try await replica.waitForLeader(timeout: .seconds(10))
        run.cancel()
        try await run.value
        await #expect(throws: ReplicaError.stopped) { try await replica.delete(key: [1]) }
    }

    @Test(.timeLimit(.minutes(1))) func withoutALeaderRequestsFailWithNoLeader() async throws {
        // Never run: no leader is ever elected.
        let replica = try SingleNodeReplica(
            configuration: .init(leaderWait: .milliseconds(100)), logger: Self.quietLogger)
        let clock = ContinuousClock()
        let start = clock.now
        // Nothing ticks, so nothing expires the wait either: run the ticker's sweep by hand.
        let sweeper = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(20))
                await replica.expireWaiters()
            }
        }
        defer { sweeper.cancel() }
        await #expect(throws: ReplicaError.noLeader) { try await replica.put(key: [1], value: [1]) }
        await #expect(throws: ReplicaError.noLeader) { try await replica.get(key: [1], consistency: .linearizable) }
        #expect(clock.now - start < .seconds(5))
        // A serializable read needs no leader.
        #expect(try await replica.get(key: [1], consistency: .serializable) == nil)
        #expect(await replica.status().isHealthy == false)
    }
}

@Suite struct WaiterTableTests {
    @Test func outcomeBeforeAttachIsKept() async throws {
        var table = WaiterTable<Int>()
        table.register(7, deadline: .now + .seconds(60), expiry: .timeout)
        let first = table.resolve(7, .success(42))
        let second = table.resolve(7, .success(43))
        #expect(first)
        #expect(!second)  // the first outcome wins
        let outcome = await withCheckedContinuation { table.attach(7, $0) }
        #expect(try outcome.get() == 42)
        #expect(table.count == 0)
    }

    @Test func overdueWaitersExpireWithTheirError() async {
        var table = WaiterTable<Int>()
        let now = ContinuousClock.now
        table.register(1, deadline: now - .seconds(1), expiry: .timeout)
        table.register(2, deadline: now + .seconds(60), expiry: .timeout)
        table.register(3, deadline: now - .seconds(1), expiry: .noLeader)
        table.expire(now: now)
        let one = await withCheckedContinuation { table.attach(1, $0) }
        let three = await withCheckedContinuation { table.attach(3, $0) }
        #expect(throws: ReplicaError.timeout) { try one.get() }
        #expect(throws: ReplicaError.noLeader) { try three.get() }
        #expect(table.contains(2))
        table.resolveAll(.failure(.stopped))
        let two = await withCheckedContinuation { table.attach(2, $0) }
        #expect(throws: ReplicaError.stopped) { try two.get() }
    }

    @Test func unknownWaiterFailsInsteadOfHanging() async {
        var table = WaiterTable<Int>()
        let outcome = await withCheckedContinuation { table.attach(99, $0) }
        #expect(throws: ReplicaError.self) { try outcome.get() }
    }
}
