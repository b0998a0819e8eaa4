import Histogram
import NIOCore
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

    public init(endpoints: [String], clients: Int, connections: Int, keySize: Int, valueSize: Int, limit: Limit, readRatio: Double, keySpace: Int) {
        self.endpoints = endpoints
        self.clients = clients
        self.connections = connections
        self.keySize = keySize
        self.valueSize = valueSize
        self.limit = limit
        self.readRatio = readRatio
        self.keySpace = keySpace
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

    public init(configuration: BenchConfiguration) {
        self.configuration = configuration
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
    public func run(firstError: (@Sendable (String) -> Void)? = nil) async throws -> BenchSummary {
        let config = configuration
        let client = FlotillaHTTPClient(endpoints: config.endpoints, connections: config.connections)
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: config.valueSize)
        let clock = ContinuousClock()
        let start = clock.now
        let deadline: ContinuousClock.Instant? = if case .duration(let s) = config.limit { start + .milliseconds(Int64(s * 1000)) } else { nil }
        let total: Int? = if case .total(let n) = config.limit { n } else { nil }
        let progress = self.progress

        let merged: LoopResult = await withTaskGroup(of: LoopResult.self) { group in
            for index in 0..<config.clients {
                // Spread the clients over the endpoints, as etcd's benchmark does.
                let endpointOrder = Array(config.endpoints[(index % config.endpoints.count)...] + config.endpoints[..<(index % config.endpoints.count)])
                group.addTask {
                    var result = LoopResult()
                    var rng = SystemRandomNumberGenerator()
                    while !Task.isCancelled {
                        if let total, progress.started.add(1, ordering: .relaxed).newValue > total { break }
                        if let deadline, clock.now >= deadline { break }
                        let isRead = config.readRatio > 0 && Double.random(in: 0..<1, using: &rng) < config.readRatio
                        let path = "/v1/kv/" + percentEncodePathSegment(config.key(Int.random(in: 0..<config.keySpace, using: &rng)).utf8)
                        let began = clock.now
                        var failure: String?
                        do {
                            let response = try await client.send(isRead ? .GET : .PUT, path, body: isRead ? nil : value, endpoints: endpointOrder)
                            // A GET of a key not written yet is a 404, not a failure.
                            if !(200..<300).contains(response.status) && !(isRead && response.status == 404) {
                                failure = "\(response.status) \(FlotillaHTTPClient.errorMessage(response.body))"
                            }
                        } catch {
                            failure = "\(error)"
                        }
                        let micros = (clock.now - began).microseconds
                        result.requests += 1
                        if isRead { result.reads += 1 } else { result.writes += 1 }
                        if let failure {
                            result.errors += 1
                            progress.errors.add(1, ordering: .relaxed)
                            if !progress.reportedError.exchange(true, ordering: .relaxed) { firstError?(failure) }
                        } else {
                            _ = result.histogram.record(UInt64(max(1, micros)))
                        }
                        progress.completed.add(1, ordering: .relaxed)
                    }
                    return result
                }
            }
            var merged = LoopResult()
            for await result in group {
                merged.histogram.add(result.histogram)
                merged.requests += result.requests
                merged.errors += result.errors
                merged.reads += result.reads
                merged.writes += result.writes
            }
            return merged
        }
        let elapsed = (clock.now - start).seconds
        try await client.shutdown()
        return BenchSummary(
            requests: merged.requests, errors: merged.errors, reads: merged.reads, writes: merged.writes,
            elapsedSeconds: elapsed, latency: BenchSummary.Latency(merged.histogram))
    }
}

extension Duration {
    var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }

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
