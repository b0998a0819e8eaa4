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
    /// `flotilla cluster`: one command starts the nodes, prefixes their output, and Ctrl-C stops
    /// them all.
    @Suite(
        .serialized,
        .needsFlotillaExecutable
    )
    struct LocalClusterCommandTests {
        @Test(.timeLimit(.minutes(2)))
        func startsServesAndStopsEveryNodeOnCtrlC() async throws {
            let executable = try #require(flotillaExecutable)
            let root = NSTemporaryDirectory() + "flotilla-cluster-cmd-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: root) }
            let base = try #require(freeBasePort(nodes: 3), "no free ports for a three-node cluster")

            // First run: write through node 1, read through node 3.
            let first = try ClusterCommand(executable: executable, root: root, basePort: base, log: "run1.log")
            let pids = await first.nodePIDs()
            #expect(pids.count == 3, "the banner names three nodes\n\(first.output)")
            let wrote = await eventually(within: 30) { http("PUT", "http://127.0.0.1:\(base + 1)/greeting", body: "hello").status == 204 }
            #expect(wrote, "no write accepted\n\(first.output)")
            let read = http("GET", "http://127.0.0.1:\(base + 20_001)/greeting")
            #expect(read.status == 200 && read.body == "hello", "\(read)")

            // Every node's lines are prefixed with its name (no colour: stdout is not a terminal).
            let output = first.output
            for k in 1...3 {
                #expect(output.contains("[n\(k)] "), "no line from n\(k)\n\(output)")
            }
            #expect(!output.contains("\u{1b}["))

            // Ctrl-C: every node gets SIGTERM and the command waits for them.
            let status = first.stop(SIGINT)
            #expect(status == 0, "\(first.output)")
            for pid in pids {
                #expect(kill(pid, 0) == -1 && errno == ESRCH, "node process \(pid) still exists")
            }
            let stopped = first.output
            for k in 1...3 {
                #expect(stopped.contains("n\(k) stopped"), "\(stopped)")
            }

            // Second run on the same data: the acknowledged write is there.
            let second = try ClusterCommand(executable: executable, root: root, basePort: base, log: "run2.log")
            let recovered = await eventually(within: 30) {
                let response = http("GET", "http://127.0.0.1:\(base + 10_001)/greeting")
                return response.status == 200 && response.body == "hello"
            }
            #expect(recovered, "\(second.output)")
            #expect(second.stop(SIGTERM) == 0, "\(second.output)")
        }

        @Test func ioThreadsMustBePositive() throws {
            let executable = try #require(flotillaExecutable)
            for bad in [["--io-threads", "0"], ["--io-threads=0"]] {
                let (status, output) = run(executable, ["serve"] + bad)
                #expect(status != 0)
                #expect(output.contains("--io-threads must be at least 1"), "\(output)")
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func serverWithSeveralIOThreads() async throws {
            let executable = try #require(flotillaExecutable)
            let root = NSTemporaryDirectory() + "flotilla-io-threads-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: root) }
            let node = ServerNode(id: 1, root: root)
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try node.start(executable: executable, cluster: node.peerURL, extraArguments: ["--io-threads", "3"])
            defer { node.stop(SIGKILL) }
            let wrote = await eventually(within: 30) { node.put("threads", "three") == 204 }
            #expect(wrote, "\(node.log)")
            #expect(node.get("threads").body == "three")
            #expect(node.stop(SIGTERM) == 0)
        }

        @Test func portsPastTheRangeAreRefusedWithTheLimit() throws {
            let executable = try #require(flotillaExecutable)
            let (status, output) = run(executable, ["cluster", "--nodes", "3", "--base-port", "50000"])
            #expect(status != 0)
            #expect(output.contains("at most 45534"), "\(output)")
        }
    }
}

/// A `flotilla cluster` process, its output in a file.
final class ClusterCommand {
    let process = Process()
    let logPath: String

    init(executable: URL, root: String, basePort: Int, log: String, extraArguments: [String] = []) throws {
        logPath = "\(root)/\(log)"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = executable
        process.arguments = ["cluster", "--nodes", "3", "--base-port", "\(basePort)", "--data-dir", "\(root)/data"] + extraArguments
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The node pids the banner lists (`  nK: pid P, …`), once it is printed.
    func nodePIDs() async -> [pid_t] {
        var pids: [pid_t] = []
        _ = await eventually(within: 15) {
            pids = output.split(separator: "\n").compactMap { line in
                guard let range = line.range(of: ": pid ") else { return nil }
                return pid_t(line[range.upperBound...].prefix { $0.isNumber })
            }
            return pids.count == 3
        }
        return pids
    }

    /// Sends `sig` and waits (up to 30 s, then SIGKILL) for the command to exit.
    func stop(_ sig: Int32) -> Int32 {
        kill(process.processIdentifier, sig)
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A base port B in [13000, 15000) with B + (K−1)·10000 and the port above free for every node.
/// A base port whose cluster ports (base + k·10000 and the one above) are all free and all
/// below 32768, outside the ephemeral range.
func freeBasePort(nodes: Int) -> Int? {
    for _ in 0..<50 {
        let base = Int.random(in: 2_000..<(32_767 - (nodes - 1) * 10_000 - 1))
        let ports = (0..<nodes).flatMap { [base + $0 * 10_000, base + $0 * 10_000 + 1] }
        if ports.allSatisfy(isFree) { return base }
    }
    return nil
}

private func isFree(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

extension RealProcesses {
    /// `flotilla bench` against a real server: the JSON summary, and the exit status.
    @Suite(
        .serialized,
        .needsFlotillaExecutable
    )
    struct BenchCommandTests {
        @Test(.timeLimit(.minutes(2)))
        func benchReportsAndFailsOnErrors() async throws {
            let executable = try #require(flotillaExecutable)
            let cluster = LocalTestCluster(executable: executable, size: 1)
            defer { cluster.close() }
            try await cluster.startAll(writing: "warm-up", "1", within: 30)
            let node = cluster.node(1)

            let (status, output) = run(executable, [
                "bench", "--endpoints", node.base, "--clients", "8", "--conns", "4", "--total", "300",
                "--read-ratio", "0.25", "--key-space", "50", "--no-progress", "--json",
            ])
            #expect(status == 0, "\(output)")
            let json = try #require(output.split(separator: "\n").first { $0.hasPrefix("{") }, "\(output)")
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            #expect((summary["requests"] as? NSNumber)?.intValue == 300)
            #expect((summary["errors"] as? NSNumber)?.intValue == 0)
            #expect(((summary["reads"] as? NSNumber)?.intValue ?? 0) > 0)
            #expect(((summary["throughput"] as? NSNumber)?.doubleValue ?? 0) > 0)

            // Nothing listens: every request fails, the exit status says so.
            let dead = "http://127.0.0.1:\(freePort())"
            let failed = run(executable, ["bench", "--endpoints", dead, "--total", "20", "--no-progress"])
            #expect(failed.status == 1, "\(failed.output)")
            #expect(failed.output.contains("20 request(s) failed"), "\(failed.output)")
            let tolerated = run(executable, ["bench", "--endpoints", dead, "--total", "20", "--no-progress", "--max-errors", "20"])
            #expect(tolerated.status == 0, "\(tolerated.output)")
            // Requests that found no connection are counted as the mix says: all reads here.
            let reads = run(executable, [
                "bench", "--endpoints", dead, "--total", "20", "--read-ratio", "1", "--no-progress", "--max-errors", "20", "--json",
            ])
            let readsJSON = try #require(reads.output.split(separator: "\n").first { $0.hasPrefix("{") }, "\(reads.output)")
            let readsSummary = try #require(try JSONSerialization.jsonObject(with: Data(readsJSON.utf8)) as? [String: Any])
            #expect((readsSummary["errors"] as? NSNumber)?.intValue == 20, "\(reads.output)")
            #expect((readsSummary["reads"] as? NSNumber)?.intValue == 20, "\(reads.output)")
            #expect((readsSummary["writes"] as? NSNumber)?.intValue == 0, "\(reads.output)")
        }
    }
}
