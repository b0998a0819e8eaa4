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

/// Every suite that starts `flotilla` processes, one at a time: each starts clusters of several
/// processes, and run side by side on a small machine they starve each other (and every other
/// test in the run) into timeouts.
@Suite(.serialized) enum RealProcesses {}

/// The built `flotilla` executable: `$FLOTILLA_BINARY`, or `flotilla` next to the test bundle
/// (`.build/debug/flotilla`). Nil when neither exists.
let flotillaExecutable: URL? = {
    let fileManager = FileManager.default
    if let path = ProcessInfo.processInfo.environment["FLOTILLA_BINARY"], fileManager.isExecutableFile(atPath: path) {
        return URL(fileURLWithPath: path)
    }
    var candidates: [URL] = []
    if let url = Bundle.main.executableURL { candidates.append(url) }
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]))
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        candidates.append(bundle.bundleURL)
    }
    for candidate in candidates {
        // Walk up from the test binary (…/debug/FlotillaPackageTests.xctest[/Contents/MacOS/…]).
        var directory = candidate.resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let binary = directory.appendingPathComponent("flotilla")
            if fileManager.isExecutableFile(atPath: binary.path) { return binary }
            directory = directory.deletingLastPathComponent()
        }
    }
    return nil
}()

extension Trait where Self == ConditionTrait {
    /// Runs a suite only where the `flotilla` executable was built.
    static var needsFlotillaExecutable: Self {
        .enabled(
            if: flotillaExecutable != nil,
            "no flotilla executable next to the test bundle: run `swift build --product flotilla` first (or set FLOTILLA_BINARY)")
    }
}

/// A new TCP socket, and `call` (`connect` or `bind`) on it with 127.0.0.1:`port`: the socket
/// and whether the call succeeded.
private func loopbackSocket(
    port: Int, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32
) -> (fd: Int32, succeeded: Bool) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return (-1, false) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return (fd, result == 0)
}

/// A TCP socket to 127.0.0.1:`port`, connected, or -1.
func connectLoopback(port: Int) -> Int32 {
    let (fd, connected) = loopbackSocket(port: port) { connect($0, $1, $2) }
    guard connected else {
        if fd >= 0 { close(fd) }
        return -1
    }
    return fd
}

/// A free TCP port on 127.0.0.1 below 32768 (outside the ephemeral range, where a port can be
/// taken at any moment by someone's outgoing connection): random ports tried until one binds.
/// Ports handed out before are not handed out again by this process.
func freePort() -> Int {
    while true {
        let port = Int.random(in: 10_000..<32_000)
        guard handedOutPorts.withLock({ $0.insert(port).inserted }) else { continue }
        let (fd, bound) = loopbackSocket(port: port) { bind($0, $1, $2) }
        precondition(fd >= 0, "socket: errno \(errno)")
        close(fd)
        if bound { return port }
    }
}

private let handedOutPorts = Mutex<Set<Int>>([])

struct HTTPResponse {
    var status: Int
    var body: String
}

/// One HTTP request with curl (status 0 when it could not connect or timed out); `curlArguments`
/// go before the URL (TLS files, say).
func http(_ method: String, _ url: String, body: String? = nil, timeout: Double = 3, curlArguments: [String] = []) -> HTTPResponse {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    var arguments = ["curl", "-s", "-X", method, "--max-time", "\(timeout)", "-w", "\n%{http_code}"] + curlArguments
    if let body { arguments += ["--data-binary", body] }
    arguments.append(url)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return HTTPResponse(status: 0, body: "curl: \(error)") }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    var text = String(decoding: data, as: UTF8.self)
    guard let newline = text.lastIndex(of: "\n") else { return HTTPResponse(status: 0, body: text) }
    let status = Int(text[text.index(after: newline)...]) ?? 0
    text.removeSubrange(newline...)
    return HTTPResponse(status: status, body: text)
}

/// The status of a GET of each of `urls` (0 when it failed), with one curl per 200 URLs over
/// kept-alive connections: for checking many keys quickly.
func getStatuses(_ urls: [String]) -> [Int] {
    var statuses: [Int] = []
    var start = 0
    while start < urls.count {
        let batch = Array(urls[start..<min(start + 200, urls.count)])
        start += batch.count
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["curl", "-s", "--max-time", "30", "-w", "%{http_code}\\n"]
            + batch.flatMap { ["-o", "/dev/null", $0] }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return statuses + Array(repeating: 0, count: urls.count - statuses.count) }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let codes = String(decoding: data, as: UTF8.self).split(separator: "\n").map { Int($0) ?? 0 }
        statuses += codes + Array(repeating: 0, count: max(0, batch.count - codes.count))
    }
    return statuses
}

/// Runs `executable` with `arguments` to its end: its exit status and its stdout and stderr.
func run(_ executable: URL, _ arguments: [String]) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = out
    do { try process.run() } catch { return (-1, "\(error)") }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Polls `condition` every 100 ms until it holds; false at the deadline.
func eventually(within seconds: Double = 15, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return condition()
}

/// One `flotilla serve` process.
final class ServerNode {
    let id: Int
    let peerPort: Int
    let httpPort: Int
    let dataDir: String
    let logPath: String
    var process: Process?

    init(id: Int, root: String) {
        self.id = id
        self.peerPort = freePort()
        self.httpPort = freePort()
        self.dataDir = "\(root)/node\(id)"
        self.logPath = "\(root)/node\(id).log"
    }

    var peerURL: String { "http://127.0.0.1:\(peerPort)" }
    var base: String { "http://127.0.0.1:\(httpPort)" }

    func start(executable: URL, cluster: String, join: Bool = false, extraArguments: [String] = []) throws {
        let process = Process()
        process.executableURL = executable
        process.arguments =
            ["serve", "--id", "\(id)", "--cluster", cluster, "--port", "\(httpPort)", "--data-dir", dataDir]
            + (join ? ["--join"] : []) + extraArguments
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    /// Sends `sig` and waits for the process to exit; its exit status.
    @discardableResult
    func stop(_ sig: Int32) -> Int32 {
        guard let process else { return 0 }
        if process.isRunning { kill(process.processIdentifier, sig) }
        process.waitUntilExit()
        self.process = nil
        return process.terminationStatus
    }

    var isRunning: Bool { process?.isRunning ?? false }

    func put(_ key: String, _ value: String) -> Int { http("PUT", "\(base)/\(key)", body: value).status }
    /// A linearizable read.
    func get(_ key: String) -> HTTPResponse { http("GET", "\(base)/\(key)") }
    /// A local read (no ReadIndex): what this node has applied.
    func localGet(_ key: String) -> HTTPResponse { http("GET", "\(base)/v1/kv/\(key)?serializable=true") }

    func status() -> [String: Any]? {
        let response = http("GET", "\(base)/v1/status", timeout: 1)
        guard response.status == 200 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(response.body.utf8))) as? [String: Any]
    }

    func memberIDs() -> [Int]? {
        let response = http("GET", "\(base)/v1/members")
        guard response.status == 200,
            let object = (try? JSONSerialization.jsonObject(with: Data(response.body.utf8))) as? [String: Any],
            let members = object["members"] as? [[String: Any]]
        else { return nil }
        return members.compactMap { ($0["id"] as? NSNumber)?.intValue }.sorted()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// Nodes in a temporary directory; `close()` kills whatever still runs and removes it.
final class LocalTestCluster {
    let executable: URL
    let root: String
    var nodes: [ServerNode] = []

    init(executable: URL, size: Int) {
        self.executable = executable
        root = NSTemporaryDirectory() + "flotilla-e2e-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for id in 1...size { nodes.append(ServerNode(id: id, root: root)) }
    }

    var clusterFlag: String { nodes.map(\.peerURL).joined(separator: ",") }

    func node(_ id: Int) -> ServerNode { nodes.first { $0.id == id }! }

    func startAll() throws {
        for node in nodes { try node.start(executable: executable, cluster: clusterFlag) }
    }

    /// Starts every node, then waits until `key` = `value` is written through node 1 (so the
    /// cluster has a leader); records an issue, with the logs, when it is not.
    func startAll(
        writing key: String, _ value: String, within seconds: Double = 15,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        try startAll()
        let written = await eventually(within: seconds) { node(1).put(key, value) == 204 }
        #expect(written, "no write accepted\n\(logs)", sourceLocation: sourceLocation)
    }

    /// The leader's id as the running nodes agree on it, nil while there is none.
    func leader() -> Int? {
        let leaders = nodes.filter(\.isRunning).compactMap { ($0.status()?["leader"] as? NSNumber)?.intValue }
        guard let first = leaders.first, first != 0, leaders.allSatisfy({ $0 == first }) else { return nil }
        return first
    }

    /// Every node's log, for a failure message.
    var logs: String { nodes.map { "--- node \($0.id)\n" + String($0.log.suffix(3000)) }.joined(separator: "\n") }

    func close() {
        for node in nodes { node.stop(SIGKILL) }
        try? FileManager.default.removeItem(atPath: root)
    }
}
