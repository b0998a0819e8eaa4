import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension RealProcesses {
    /// Real `flotilla serve` processes on loopback, driven over HTTP with curl.
    @Suite(
        .serialized,
        .needsFlotillaExecutable
    )
    struct EndToEndTests {
        @Test(.timeLimit(.minutes(2)))
        func writesSurviveALeaderCrashAndMembershipChanges() async throws {
            let cluster = LocalTestCluster(executable: try #require(flotillaExecutable), size: 3)
            defer { cluster.close() }
            // Write through node 1 (once the cluster has a leader), read through the others.
            try await cluster.startAll(writing: "alpha", "one")
            for id in [2, 3] {
                let response = cluster.node(id).get("alpha")
                #expect(response.status == 200 && response.body == "one", "node \(id): \(response)")
            }

            // kill -9 the leader; the others elect a new one and keep taking writes.
            var leaderFound: Int?
            _ = await eventually { leaderFound = cluster.leader(); return leaderFound != nil }
            let leader = try #require(leaderFound, "no leader\n\(cluster.logs)")
            cluster.node(leader).stop(SIGKILL)
            let survivor = cluster.nodes.first { $0.id != leader }!
            for i in 1...5 {
                let written = await eventually { survivor.put("after-crash-\(i)", "v\(i)") == 204 }
                #expect(written, "write \(i) after the crash of node \(leader)\n\(cluster.logs)")
            }

            // Restart it: it recovers from its data dir and catches up.
            try cluster.node(leader).start(executable: cluster.executable, cluster: cluster.clusterFlag)
            let caughtUp = await eventually {
                (1...5).allSatisfy { cluster.node(leader).localGet("after-crash-\($0)").body == "v\($0)" }
            }
            #expect(caughtUp, "node \(leader) did not catch up\n\(cluster.logs)")

            // Add a fourth node: POST /4 with its peer URL, then start it with --join.
            let fourth = ServerNode(id: 4, root: cluster.root)
            cluster.nodes.append(fourth)
            let added = await eventually { http("POST", "\(survivor.base)/4", body: fourth.peerURL).status == 204 }
            #expect(added, "POST /4 failed\n\(cluster.logs)")
            try fourth.start(executable: cluster.executable, cluster: cluster.clusterFlag, join: true)
            let fourthCaughtUp = await eventually {
                fourth.localGet("alpha").body == "one" && fourth.localGet("after-crash-5").body == "v5"
            }
            #expect(fourthCaughtUp, "node 4 did not catch up\n\(cluster.logs)")
            #expect(survivor.memberIDs() == [1, 2, 3, 4])

            // Remove a node that is not node 4 and not the survivor we talk to.
            let removed = cluster.nodes.first { $0.id != survivor.id && $0.id != 4 }!
            let deleted = await eventually { http("DELETE", "\(survivor.base)/\(removed.id)").status == 204 }
            #expect(deleted, "DELETE /\(removed.id) failed\n\(cluster.logs)")
            #expect(survivor.memberIDs() == [1, 2, 3, 4].filter { $0 != removed.id })
            removed.stop(SIGTERM)

            // The remaining three still take writes, and node 4 sees them.
            let lastWrite = await eventually { fourth.put("after-remove", "done") == 204 }
            #expect(lastWrite, "write after removing node \(removed.id)\n\(cluster.logs)")
            let response = survivor.get("after-remove")
            #expect(response.status == 200 && response.body == "done")
        }

        @Test(.timeLimit(.minutes(2)))
        func everyAcknowledgedWriteSurvivesAFullRestart() async throws {
            let cluster = LocalTestCluster(executable: try #require(flotillaExecutable), size: 3)
            defer { cluster.close() }
            try await cluster.startAll(writing: "ready", "yes")
            var acknowledged: [String: String] = ["ready": "yes"]
            for i in 0..<30 {
                let node = cluster.nodes[i % 3]
                if node.put("key-\(i)", "value-\(i)") == 204 { acknowledged["key-\(i)"] = "value-\(i)" }
            }
            #expect(acknowledged.count == 31)

            // SIGTERM stops every node cleanly.
            for node in cluster.nodes {
                let status = node.stop(SIGTERM)
                #expect(status == 0, "node \(node.id) exited with \(status)\n\(node.log.suffix(2000))")
            }

            // `flotilla wal dump` shows the writes in a stopped node's data directory.
            let dump = run(cluster.executable, ["wal", "dump", cluster.node(1).dataDir])
            #expect(dump.status == 0, "\(dump.output)")
            #expect(dump.output.contains("put key=key-0 (7 bytes)"), "\(dump.output)")
            #expect(dump.output.contains("end: clean"), "\(dump.output)")

            try cluster.startAll()
            for node in cluster.nodes {
                let all = await eventually {
                    acknowledged.allSatisfy { key, value in
                        let response = node.get(key)
                        return response.status == 200 && response.body == value
                    }
                }
                #expect(all, "node \(node.id) lost acknowledged writes after the restart\n\(cluster.logs)")
            }
        }

        /// Writers in parallel (their proposals share WAL writes and appends), then every node is
        /// killed with SIGKILL mid-load, all at once: after a restart, every write that was
        /// acknowledged is there, on every node.
        @Test(.timeLimit(.minutes(3)))
        func acknowledgedConcurrentWritesSurviveKillingEveryNode() async throws {
            let cluster = LocalTestCluster(executable: try #require(flotillaExecutable), size: 3)
            defer { cluster.close() }
            try await cluster.startAll(writing: "ready", "yes")

            // Writers on threads of their own: each request blocks in curl, which would starve the
            // few threads Swift concurrency has.
            let stop = StopFlag()
            let acknowledgedKeys = Mutex<[String]>([])
            let finished = DispatchGroup()
            for writer in 0..<12 {
                let base = cluster.nodes[writer % 3].base
                finished.enter()
                Thread {
                    var i = 0
                    while !stop.isSet {
                        let key = "w\(writer)-\(i)"
                        if http("PUT", "\(base)/\(key)", body: "v\(i)").status == 204 {
                            acknowledgedKeys.withLock { $0.append(key) }
                        }
                        i += 1
                    }
                    finished.leave()
                }.start()
            }
            try await Task.sleep(for: .seconds(3))
            for node in cluster.nodes {
                if let pid = node.process?.processIdentifier { kill(pid, SIGKILL) }
            }
            stop.set()
            await withCheckedContinuation { continuation in finished.notify(queue: .global()) { continuation.resume() } }
            let acknowledged = acknowledgedKeys.withLock { $0 }
            #expect(acknowledged.count > 50, "only \(acknowledged.count) writes acknowledged in 3 s\n\(cluster.logs)")
            for node in cluster.nodes { node.stop(SIGKILL) }  // reap them

            try cluster.startAll()
            for node in cluster.nodes {
                let caughtUp = await eventually(within: 30) { node.get("ready").status == 200 }
                #expect(caughtUp, "node \(node.id) did not come back\n\(cluster.logs)")
                // Local reads right after the linearizable one: applied up to the commit it saw.
                let statuses = getStatuses(acknowledged.map { "\(node.base)/v1/kv/\($0)?serializable=true" })
                let missing = zip(acknowledged, statuses).filter { $0.1 != 200 }.map(\.0)
                #expect(missing.isEmpty, "node \(node.id) lost \(missing.count) of \(acknowledged.count) acknowledged writes: \(missing.prefix(10))")
            }
        }

        @Test(.timeLimit(.minutes(2)))
        func aSecondServerOnTheSameDataDirectoryIsRefused() async throws {
            let cluster = LocalTestCluster(executable: try #require(flotillaExecutable), size: 1)
            defer { cluster.close() }
            try await cluster.startAll(writing: "before", "1")
            let node = cluster.node(1)

            // Same data directory, other ports: refused before it touches the WAL.
            let second = run(cluster.executable, [
                "serve", "--id", "1", "--cluster", "http://127.0.0.1:\(freePort())", "--port", "\(freePort())",
                "--data-dir", node.dataDir,
            ])
            #expect(second.status == 1, "\(second.output)")
            #expect(second.output.contains("the data directory is in use"), "\(second.output)")
            #expect(second.output.contains(node.dataDir + "/LOCK"), "\(second.output)")

            // The first goes on, with its data; `wal dump` reads beside it.
            #expect(node.put("after", "2") == 204)
            #expect(node.get("before").body == "1" && node.get("after").body == "2")
            let dump = run(cluster.executable, ["wal", "dump", "--entries-only", node.dataDir + "/wal"])
            #expect(dump.status == 0 && dump.output.contains("put key=after"), "\(dump.output)")
        }

        @Test(.timeLimit(.minutes(2)))
        func walDumpReportsDamageWithFileAndOffset() async throws {
            let cluster = LocalTestCluster(executable: try #require(flotillaExecutable), size: 1)
            defer { cluster.close() }
            try await cluster.startAll(writing: "some-key", "some-value")
            let node = cluster.node(1)
            node.stop(SIGTERM)

            let walDirectory = node.dataDir + "/wal"
            let segment = try #require(
                try FileManager.default.contentsOfDirectory(atPath: walDirectory).first { $0.hasSuffix(".wal") })
            let clean = run(cluster.executable, ["wal", "dump", "--entries-only", walDirectory])
            #expect(clean.status == 0, "\(clean.output)")
            #expect(clean.output.contains("confChange addNode node=1 at \(node.peerURL.dropFirst("http://".count))"), "\(clean.output)")
            // The last put's record: damage a byte inside it.
            let line = try #require(clean.output.split(separator: "\n").last { $0.contains("put key=some-key") })
            let offset = try #require(line.split(separator: " ").first { $0.hasPrefix("@") }.flatMap { Int($0.dropFirst()) })
            let path = walDirectory + "/" + segment
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[offset + 20] ^= 0xff
            try Data(bytes).write(to: URL(fileURLWithPath: path))

            let damaged = run(cluster.executable, ["wal", "dump", node.dataDir])
            #expect(damaged.status == 1, "\(damaged.output)")
            #expect(damaged.output.contains("DAMAGED: \(segment) at offset \(offset)"), "\(damaged.output)")
        }
    }
}

/// Set once, read from any task.
private final class StopFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
