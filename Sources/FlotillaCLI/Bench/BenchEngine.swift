import FlotillaHTTP
import Histogram
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// What `flotilla bench` does: `clients` concurrent request loops over a pool of `connections`
/// HTTP connections, each request a GET (with probability `readRatio`) or a PUT of `valueSize`
/// bytes, on a key drawn uniformly from `keySpace` keys of `keySize` bytes; until `total`
/// requests were sent or `duration` seconds passed.
public struct BenchConfiguration: Sendable, Equatable {
    public enum Limit: Sendable, Equatable {
        case total(Int)
        case duration(Double)
    }

    public var endpoints: [String]
    public var clients: Int
    public var connections: Int
    public var keySize: Int
    public var valueSize: Int
    public var limit: Limit
    public var readRatio: Double
    public var keySpace: Int
    public var api: BenchAPI

    public init(
        endpoints: [String], clients: Int, connections: Int, keySize: Int, valueSize: Int, limit: Limit, readRatio: Double,
        keySpace: Int, api: BenchAPI = .flotilla
    ) {
        self.endpoints = endpoints
        self.clients = clients
        self.connections = connections
        self.keySize = keySize
        self.valueSize = valueSize
        self.limit = limit
        self.readRatio = readRatio
        self.keySpace = keySpace
        self.api = api
    }

    /// Key number `n` as `keySize` bytes: its decimal digits, left-padded with zeros (longer
    /// when `keySpace` needs more digits than `keySize`).
    public func key(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, keySize - digits.count)) + digits
    }
}

/// Counters the request loops share with the progress bar.
public final class BenchProgress: Sendable {
    /// Requests started (a loop claims one before sending it, so `--total` is exact).
    let started = Atomic<Int>(0)
    public let completed = Atomic<Int>(0)
    public let errors = Atomic<Int>(0)
    /// Whether the first failure was reported.
    let reportedError = Atomic<Bool>(false)

    public init() {}
}

/// Runs a benchmark against a cluster.
public struct BenchEngine: Sendable {
    public let configuration: BenchConfiguration
    public let progress = BenchProgress()
    /// For `https://` endpoints: the client side of TLS (see `ClientTLSOptions`).
    public let tls: NIOSSLContext?

    public init(configuration: BenchConfiguration, tls: NIOSSLContext? = nil) {
        self.configuration = configuration
        self.tls = tls
    }

    /// How far the run is, 0…1, `elapsed` seconds after its start.
    public func fraction(elapsed: Double) -> Double {
        switch configuration.limit {
        case .total(let total): return total > 0 ? Double(progress.completed.load(ordering: .relaxed)) / Double(total) : 1
        case .duration(let seconds): return seconds > 0 ? elapsed / seconds : 1
        }
    }

    /// What one request loop measured.
    struct LoopResult: Sendable {
        var histogram = BenchSummary.makeHistogram()
        var requests = 0
        var errors = 0
        var reads = 0
        var writes = 0
    }

    /// Sends the load and summarizes it. `firstError` is told of the first failure (to show why
    /// requests fail).
    ///
    /// The clients are spread over `connections` connections per endpoint (as etcd's benchmark
    /// spreads them over its endpoints); each connection runs its clients' request loops on its
    /// event loop (`BenchConnectionHandler`). A connection that breaks fails its request in
    /// flight and is reopened, to the next endpoint when it cannot be.
    public func run(firstError: (@Sendable (String) -> Void)? = nil) async throws -> BenchSummary {
        let config = configuration
        let targets = try config.endpoints.map(Self.target)
        if targets.contains(where: \.isTLS) && tls == nil {
            throw ClientError.badEndpoint("\(config.endpoints.joined(separator: ",")) (https:// needs the engine's TLS context)")
        }
        let tls = tls
        let start = NIODeadline.now()
        let plan = BenchPlan(configuration: config, progress: progress, start: start, firstError: firstError)
        let slots = min(config.clients, config.connections * targets.count)

        let merged: LoopResult = await withTaskGroup(of: LoopResult.self) { group in
            for slot in 0..<slots {
                let clients = config.clients / slots + (slot < config.clients % slots ? 1 : 0)
                let first = slot % targets.count
                let order = Array(targets[first...] + targets[..<first])
                group.addTask { await Self.runConnection(clients: clients, endpoints: order, tls: tls, plan: plan) }
            }
            var merged = LoopResult()
            for await result in group { merged.add(result) }
            return merged
        }
        let elapsed = Double((NIODeadline.now() - start).nanoseconds) / 1e9
        return BenchSummary(
            requests: merged.requests, errors: merged.errors, reads: merged.reads, writes: merged.writes,
            elapsedSeconds: elapsed, latency: BenchSummary.Latency(merged.histogram))
    }

    /// One connection's clients, until they are done: connect, run them, and when the
    /// connection breaks, connect again (to the next endpoint if this one cannot be reached).
    private static func runConnection(clients: Int, endpoints: [Target], tls: NIOSSLContext?, plan: BenchPlan) async -> LoopResult {
        var merged = LoopResult()
        var clients = clients
        var claimed = 0
        var attempt = 0
        while clients > 0 {
            let target = endpoints[attempt % endpoints.count]
            let (host, port) = (target.host, target.port)
            let box = BenchOutcomeBox()
            let active = clients
            let preclaimed = claimed
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .channelOption(.socketOption(.so_reuseaddr), value: 1)
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .connectTimeout(.seconds(2))
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let pipeline = channel.pipeline.syncOperations
                            if target.isTLS, let tls {
                                // SNI and name checks take a DNS name; an IP address is checked
                                // against the address connected to.
                                let isIP = (try? SocketAddress(ipAddress: host, port: 0)) != nil
                                try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: isIP ? nil : host))
                            }
                            try pipeline.addHandler(IdleStateHandler(readTimeout: .seconds(30)))
                            try pipeline.addHandler(BenchConnectionHandler(
                                plan: plan, host: "\(host):\(port)", clients: active, claimed: preclaimed, done: box))
                        }
                    }
                    .connect(host: host, port: port).get()
                try? await channel.closeFuture.get()
            } catch {
                // Not even connected: each client's next request (a read or a write, by the
                // mix) fails, then another try, on the next endpoint, after a pause.
                var stillGoing = 0
                var rng = SystemRandomNumberGenerator()
                for client in 0..<clients where client < claimed || plan.claim() {
                    merged.requests += 1
                    if plan.drawIsRead(using: &rng) { merged.reads += 1 } else { merged.writes += 1 }
                    merged.errors += 1
                    plan.reportFailure("cannot connect to \(host):\(port): \(error)")
                    plan.progress.completed.add(1, ordering: .relaxed)
                    stillGoing += 1
                }
                clients = stillGoing
                claimed = 0
                attempt += 1
                try? await Task.sleep(for: .milliseconds(50))
                continue
            }
            guard let outcome = box.outcome else { break }
            merged.add(outcome.result)
            clients = outcome.clients
            claimed = outcome.claimed
            if outcome.result.requests == 0 { attempt += 1 }  // it answered nothing: try the next
        }
        return merged
    }

    /// An endpoint to connect to.
    typealias Target = HTTPEndpoint

    /// `http://host:port` or `https://host:port` → the host (an IPv6 one without its brackets),
    /// the port, and whether to speak TLS.
    static func target(_ endpoint: String) throws -> Target {
        guard let target = HTTPEndpoint(parsing: endpoint) else {
            throw ClientError.badEndpoint(endpoint + " (flotilla bench speaks http:// and https://)")
        }
        return target
    }
}

extension BenchEngine.LoopResult {
    mutating func add(_ other: Self) {
        histogram.add(other.histogram)
        requests += other.requests
        errors += other.errors
        reads += other.reads
        writes += other.writes
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Parses a duration like `10s`, `500ms`, `2m`, `1h` or a plain number of seconds.
public func parseDuration(_ text: String) -> Double? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        if let n = Double(text.dropLast(suffix.count)), n.isFinite, n >= 0 { return n * scale }
    }
    if let n = Double(text), n.isFinite, n >= 0 { return n }
    return nil
}
