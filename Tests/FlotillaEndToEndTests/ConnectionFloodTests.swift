import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension RealProcesses {
    /// Descriptor exhaustion: a client opens far more connections than `--max-connections` and
    /// sends nothing on them. The node holds at most the limit (the rest wait in the listen
    /// backlog), keeps its descriptors for the WAL, keeps replicating, and, as the read-header
    /// deadline closes the silent ones, serves real clients again while the flood is still open.
    @Suite(.needsFlotillaExecutable, .serialized)
    struct ConnectionFloodTests {
        static func openDescriptors(of pid: pid_t) -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
        }

        @Test(.timeLimit(.minutes(3)))
        func aConnectionFloodHoldsNoMoreThanTheLimit() async throws {
            let executable = try #require(flotillaExecutable)
            let cluster = LocalTestCluster(executable: executable, size: 3)
            defer { cluster.close() }
            let limits = ["--max-connections", "20", "--read-header-timeout", "500ms", "--idle-timeout", "5s"]
            for node in cluster.nodes {
                try node.start(executable: executable, cluster: cluster.clusterFlag, extraArguments: node.id == 1 ? limits : [])
            }
            let written = await eventually(within: 20) { cluster.node(2).put("before", "1") == 204 }
            #expect(written, "\(cluster.logs)")
            let target = cluster.node(1)
            let pid = try #require(target.process?.processIdentifier)
            let baseline = Self.openDescriptors(of: pid)

            // 200 silent connections (the listen backlog takes what the node does not accept).
            var flood: [Int32] = []
            for _ in 0..<200 {
                let fd = connectLoopback(port: target.httpPort)
                if fd >= 0 { flood.append(fd) }
            }
            defer { flood.forEach { close($0) } }
            #expect(flood.count >= 100, "could open only \(flood.count) connections")
            var peak = 0
            for _ in 0..<20 {
                peak = max(peak, Self.openDescriptors(of: pid))
                try await Task.sleep(for: .milliseconds(50))
            }
            // The limit, and a few for peer streams that come and go.
            #expect(peak <= baseline + 20 + 8, "the node holds \(peak) descriptors, from \(baseline) before the flood")

            // Replication goes on: a write through node 2 reaches node 1's state machine.
            #expect(cluster.node(2).put("during", "2") == 204)
            // And node 1 serves a real client while the flood is still open on the client side: the
            // read-header deadline closes the silent ones, 20 at a time.
            let served = await eventually(within: 30) { target.localGet("during").body == "2" }
            #expect(served, "node 1 did not serve a client during the flood\n\(target.log.suffix(2000))")
            #expect(target.isRunning)
        }
    }
}
