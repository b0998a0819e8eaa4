import NIOSSL
import ArgumentParser

/// `flotilla bench`: a load generator in the manner of etcd's `benchmark` tool.
public struct Bench: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Load a cluster with PUTs and GETs and report throughput and latency percentiles.",
        discussion: """
            Runs --clients concurrent request loops over a pool of --conns HTTP connections per \
            endpoint, until --total requests were sent or --duration passed (default: --total \
            10000). Each request is a GET with probability --read-ratio, else a PUT of --val-size \
            bytes, on a key drawn uniformly from --key-space keys. Latencies are those of the \
            successful requests (a GET of an absent key counts as one), from an HDR histogram. \
            With --api etcd the same load goes to an etcd v3 cluster's JSON gateway instead \
            (POST /v3/kv/put and /v3/kv/range, keys and values base64), for a side-by-side \
            comparison driven by one load generator.
            """)

    @OptionGroup public var options: EndpointOptions

    @Option(help: "Concurrent requests (request loops).")
    public var clients: Int = 1

    @Option(help: "HTTP connections per endpoint.")
    public var conns: Int = 1

    @Option(help: "Key size in bytes (decimal key numbers, zero-padded).")
    public var keySize: Int = 8

    @Option(help: "Value size in bytes.")
    public var valSize: Int = 64

    @Option(help: "Requests to send (exclusive with --duration; default 10000).")
    public var total: Int?

    @Option(help: "How long to run, like 10s, 500ms or 2m (exclusive with --total).")
    public var duration: String?

    @Option(help: "The fraction of requests that are GETs, 0 to 1.")
    public var readRatio: Double = 0

    @Option(help: "Number of distinct keys.")
    public var keySpace: Int = 100_000

    @Option(help: "Failed requests tolerated: with more, the exit status is 1 (the summary is printed either way).")
    public var maxErrors: Int = 0

    @Option(help: "The API the endpoints speak: flotilla (PUT/GET /v1/kv/KEY) or etcd (an etcd v3 JSON gateway).")
    public var api: BenchAPI = .flotilla

    @Flag(help: "Do not draw the progress bar on stderr.")
    public var noProgress = false

    @Flag(help: "Print the summary as JSON.")
    public var json = false

    public init() {}

    public func validate() throws {
        guard clients >= 1 else { throw ValidationError("--clients must be at least 1") }
        guard conns >= 1 else { throw ValidationError("--conns must be at least 1") }
        guard keySize >= 1 else { throw ValidationError("--key-size must be at least 1") }
        guard valSize >= 0 else { throw ValidationError("--val-size must not be negative") }
        guard keySpace >= 1 else { throw ValidationError("--key-space must be at least 1") }
        guard maxErrors >= 0 else { throw ValidationError("--max-errors must not be negative") }
        guard (0...1).contains(readRatio) else { throw ValidationError("--read-ratio must be between 0 and 1") }
        guard total == nil || duration == nil else { throw ValidationError("give --total or --duration, not both") }
        if let total, total < 1 { throw ValidationError("--total must be at least 1") }
        if let duration, parseDuration(duration) == nil {
            throw ValidationError("--duration: \"\(duration)\" is not a duration like 10s, 500ms or 2m")
        }
    }

    /// The engine's configuration from the options.
    public func benchConfiguration() throws -> BenchConfiguration {
        let limit: BenchConfiguration.Limit =
            if let duration, let seconds = parseDuration(duration) { .duration(seconds) } else { .total(total ?? 10_000) }
        return BenchConfiguration(
            endpoints: try parseEndpoints(options.endpoints), clients: clients, connections: conns,
            keySize: keySize, valueSize: valSize, limit: limit, readRatio: readRatio, keySpace: keySpace, api: api)
    }

    public func run() async throws {
        let configuration = try benchConfiguration()
        let tls = configuration.endpoints.contains { $0.hasPrefix("https://") }
            ? try NIOSSLContext(configuration: options.tls.configuration()) : nil
        let engine = BenchEngine(configuration: configuration, tls: tls)
        let total: Int? = if case .total(let n) = engine.configuration.limit { n } else { nil }
        let clock = ContinuousClock()
        let start = clock.now
        let drawProgress = !noProgress
        let progressTask = Task {
            guard drawProgress else { return }
            while !Task.isCancelled {
                let elapsed = (clock.now - start).seconds
                writeStandardError("\r" + ProgressBar.render(
                    fraction: engine.fraction(elapsed: elapsed), completed: engine.progress.completed.load(ordering: .relaxed),
                    total: total, errors: engine.progress.errors.load(ordering: .relaxed), elapsed: elapsed))
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        let summary = try await engine.run(firstError: { message in
            writeStandardError("\nfirst error: \(message)\n")
        })
        progressTask.cancel()
        await progressTask.value
        if drawProgress {
            let elapsed = (clock.now - start).seconds
            writeStandardError("\r" + ProgressBar.render(
                fraction: 1, completed: summary.requests, total: total, errors: summary.errors, elapsed: elapsed) + "\n")
        }
        print(json ? summary.json : summary.text)
        if summary.errors > maxErrors {
            writeStandardError("flotilla bench: \(summary.errors) request(s) failed (--max-errors \(maxErrors))\n")
            throw ExitCode(1)
        }
    }
}

/// What `flotilla bench` speaks to its endpoints.
public enum BenchAPI: String, Sendable, Equatable, CaseIterable, ExpressibleByArgument {
    /// `PUT /v1/kv/KEY` with the value as the body; `GET /v1/kv/KEY` (linearizable).
    case flotilla
    /// etcd v3's JSON gateway: `POST /v3/kv/put {"key","value"}` and `POST /v3/kv/range {"key"}`
    /// (linearizable), keys and values base64.
    case etcd
}
