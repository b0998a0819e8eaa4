import Flotilla
import Foundation
import Logging
import Metrics

/// A key-value state machine for the tests: commands are `key=value`; the response is the
/// entry's index.
struct KeyValues: StateMachine {
    var values: [String: String] = [:]

    mutating func apply(_ command: [UInt8], index: UInt64) -> UInt64 {
        let text = String(decoding: command, as: UTF8.self)
        if let equals = text.firstIndex(of: "=") {
            values[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        return index
    }

    func snapshot() throws -> [UInt8] {
        Array(try JSONEncoder().encode(values))
    }

    mutating func restore(from snapshot: [UInt8]) throws {
        values = try JSONDecoder().decode([String: String].self, from: Data(snapshot))
    }
}

typealias Node = FlotillaNode<KeyValues>

func command(_ key: String, _ value: String) -> [UInt8] { Array("\(key)=\(value)".utf8) }

/// Silent, unless FLOTILLA_TEST_LOG is set (to a level: debug, info…).
let quiet: Logger = {
    guard let level = ProcessInfo.processInfo.environment["FLOTILLA_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) else {
        return Logger(label: "flotilla.test", factory: { _ in SwiftLogNoOpLogHandler() })
    }
    var logger = Logger(label: "flotilla.test", factory: { StreamLogHandler.standardError(label: $0) })
    logger.logLevel = level
    return logger
}()

/// Nodes of one cluster in this process, over loopback sockets, each with a temporary data
/// directory.
final class TestCluster {
    let root: String
    let clusterID: UInt64 = 7
    var nodes: [UInt64: Node] = [:]
    var ports: [UInt64: Int] = [:]
    let tune: (inout FlotillaConfiguration) -> Void

    init(tune: @escaping (inout FlotillaConfiguration) -> Void = { _ in }) {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-\(UUID().uuidString)").path
        self.tune = tune
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func address(_ id: UInt64) -> TransportAddress { TransportAddress(host: "127.0.0.1", port: ports[id] ?? 0) }

    func configuration(
        _ id: UInt64, members: [UInt64], bootstrap: FlotillaConfiguration.Bootstrap = .newCluster
    ) -> FlotillaConfiguration {
        var peers: [UInt64: TransportAddress] = [:]
        for member in members where member != id { peers[member] = address(member) }
        var config = FlotillaConfiguration(
            nodeID: id, clusterID: clusterID, peers: peers, listenAddress: address(id),
            dataDirectory: "\(root)/node-\(id)", bootstrap: bootstrap,
            tickInterval: .milliseconds(10), electionTicks: 10, heartbeatTicks: 1,
            requestTimeout: .seconds(5), leaderWait: .seconds(3))
        tune(&config)
        return config
    }

    /// Creates and starts `ids` as a new cluster, then tells each where the others listen.
    static func start(
        _ ids: [UInt64] = [1, 2, 3], metrics: (any MetricsFactory)? = nil,
        tune: @escaping (inout FlotillaConfiguration) -> Void = { _ in }
    ) async throws -> TestCluster {
        let cluster = TestCluster(tune: tune)
        for id in ids {
            let node = try Node(
                configuration: cluster.configuration(id, members: ids), stateMachine: KeyValues(), logger: quiet,
                metricsFactory: metrics)
            cluster.nodes[id] = node
            cluster.ports[id] = try await node.start()
        }
        for id in ids {
            for other in ids where other != id { await cluster.nodes[id]!.updatePeer(id: other, address: cluster.address(other)) }
        }
        return cluster
    }

    /// Starts a node that joins the running cluster, and returns it (not yet added).
    func startJoining(_ id: UInt64) async throws -> Node {
        let node = try Node(
            configuration: configuration(id, members: Array(nodes.keys), bootstrap: .join),
            stateMachine: KeyValues(), logger: quiet)
        nodes[id] = node
        ports[id] = try await node.start()
        return node
    }

    /// Restarts a stopped node from its data directory, on the port it had.
    func restart(_ id: UInt64) async throws -> Node {
        let node = try Node(
            configuration: configuration(id, members: Array(nodes.keys)), stateMachine: KeyValues(), logger: quiet)
        nodes[id] = node
        _ = try await node.start()
        return node
    }

    /// Starts a cluster whose leader, once it has committed a first write, is left alone (the
    /// others stopped) and, without checkQuorum, keeps leading: nothing it proposes commits.
    static func isolatedLeader(
        tune: @escaping (inout FlotillaConfiguration) -> Void = { _ in }
    ) async throws -> (cluster: TestCluster, leader: Node) {
        let cluster = try await TestCluster.start {
            $0.raftOptions.checkQuorum = false
            $0.requestTimeout = .seconds(30)
            tune(&$0)
        }
        let leader = try await cluster.leader()
        let node = cluster.nodes[leader]!
        try await applyRetrying(node, command("k", "v"))
        for id in cluster.nodes.keys where id != leader { await cluster.stop(id) }
        return (cluster, node)
    }

    func stop(_ id: UInt64) async {
        await nodes[id]?.shutdown()
    }

    func shutdown() async {
        for node in nodes.values { await node.shutdown() }
    }

    /// The leader that the running `among` nodes agree on.
    func leader(among ids: [UInt64]? = nil) async throws -> UInt64 {
        let ids = ids ?? Array(nodes.keys)
        var found: UInt64 = 0
        try await eventually("a leader is elected") {
            var leaders: Set<UInt64> = []
            for id in ids { leaders.insert(await nodes[id]!.status.leaderID) }
            guard leaders.count == 1, let leader = leaders.first, leader != 0, ids.contains(leader) else { return false }
            found = leader
            return true
        }
        return found
    }
}

struct Timeout: Error, CustomStringConvertible {
    let description: String
}

/// Polls `condition` until it holds, or throws after `timeout`.
func eventually(
    _ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw Timeout(description: "timed out waiting until \(what)")
}

/// Applies `command` on `node`, retrying while the cluster elects a leader.
@discardableResult
func applyRetrying(_ node: Node, _ command: [UInt8], timeout: Duration = .seconds(20)) async throws -> UInt64 {
    let deadline = ContinuousClock.now + timeout
    while true {
        let result: Result<UInt64, FlotillaError>
        do {
            result = .success(try await node.apply(command))
        } catch {
            result = .failure(error)
        }
        switch result {
        case .success(let index):
            return index
        case .failure(let error):
            if error == .stopped || ContinuousClock.now >= deadline { throw error }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
