import ArgumentParser
import Flotilla
import FlotillaCLI
import FlotillaKV
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `flotilla serve`: run one node and its HTTP API until SIGINT or SIGTERM.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a node of a cluster, and its HTTP API, until SIGINT or SIGTERM.")

    @Option(help: "This node's id; node N's peer URL is the N-th of --cluster.")
    var id: UInt64 = 1

    @Option(help: "Peer URLs (http://host:port, or https:// with the --peer-* TLS flags), comma-separated; ids 1, 2, 3 … in order.")
    var cluster: String = "http://127.0.0.1:12379"

    @Option(help: "HTTP client API port.")
    var port: Int = 12380

    @Option(help: "Address the HTTP client API listens on.")
    var listenHost: String = "127.0.0.1"

    @Flag(help: "Join a running cluster (after the node was added with POST /ID) instead of forming one. Ignored when the data directory already holds data.")
    var join: Bool = false

    @Option(help: "Data directory: the WAL in DIR/wal, snapshots in DIR/snap (default flotilla-<id>).")
    var dataDir: String?

    @Option(help: "Names the cluster: nodes of clusters with different tokens refuse each other. Every node of a cluster needs the same one.")
    var clusterToken: String = "flotilla"

    @Option(help: "Applied entries between snapshots of the store (the log behind a snapshot is discarded).")
    var snapshotCount: UInt64 = 10_000

    @Option(help: "Largest key, in bytes.")
    var maxKeyBytes: Int = 1024

    @Option(help: "Largest value, in bytes.")
    var maxValueBytes: Int = 1 << 20

    @Option(help: "Seconds a request may take before it fails with 504.")
    var requestTimeout: Double = 5

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(help: "Serve the client API over HTTPS with this certificate (PEM, with --key-file).")
    var certFile: String?

    @Option(help: "The private key of --cert-file (PEM).")
    var keyFile: String?

    @Option(help: "The CA (PEM) whose certificates clients must present, with --client-cert-auth.")
    var trustedCAFile: String?

    @Flag(help: "Require a client certificate of --trusted-ca-file on every API connection.")
    var clientCertAuth: Bool = false

    @Option(help: "This node's peer certificate (PEM): mutual TLS between peers, with --peer-key-file, --peer-trusted-ca-file and https:// in --cluster.")
    var peerCertFile: String?

    @Option(help: "The private key of --peer-cert-file (PEM).")
    var peerKeyFile: String?

    @Option(help: "The CA (PEM) every peer's certificate must chain to.")
    var peerTrustedCAFile: String?

    @Option(help: "Client connections at once; more wait until one closes, so the node keeps descriptors for its WAL and snapshots.")
    var maxConnections: Int = 1024

    @Option(help: "Close a client connection that sends no complete request head within this long of opening or of its last answer (like 10s or 500ms).")
    var readHeaderTimeout: String = "10s"

    @Option(help: "Close a client connection over which nothing travels for this long.")
    var idleTimeout: String = "60s"

    @Option(help: "Origins (scheme://host[:port]) whose web pages may call the API, comma-separated; every other cross-site browser request is refused with 403.")
    var allowedOrigins: String = ""

    @Option(help: "Event-loop threads for the HTTP API, the peer transport and the node (Swift concurrency runs on them too).")
    var ioThreads: Int = ServerThreads.defaultCount

    func validate() throws {
        guard id >= 1 else { throw ValidationError("--id must be 1 or more (0 means \"no node\" in raft)") }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be between 1 and 65535") }
        guard maxKeyBytes >= 1 else { throw ValidationError("--max-key-bytes must be at least 1") }
        guard maxValueBytes >= 0 else { throw ValidationError("--max-value-bytes must not be negative") }
        guard requestTimeout > 0, requestTimeout.isFinite else {
            throw ValidationError("--request-timeout must be a positive number of seconds")
        }
        guard ioThreads >= 1 else { throw ValidationError("--io-threads must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        for (flag, text) in [("--read-header-timeout", readHeaderTimeout), ("--idle-timeout", idleTimeout)] {
            guard let seconds = parseDuration(text), seconds > 0 else {
                throw ValidationError("\(flag): \"\(text)\" is not a positive duration like 10s, 500ms or 2m")
            }
        }
        guard (certFile == nil) == (keyFile == nil) else {
            throw ValidationError("--cert-file and --key-file go together: give both for HTTPS, or neither")
        }
        if clientCertAuth {
            guard certFile != nil, trustedCAFile != nil else {
                throw ValidationError("--client-cert-auth needs HTTPS (--cert-file, --key-file) and the clients' CA (--trusted-ca-file)")
            }
        } else if trustedCAFile != nil {
            throw ValidationError("--trusted-ca-file is the CA of client certificates: add --client-cert-auth to require them")
        }
        let peerFlags = [peerCertFile, peerKeyFile, peerTrustedCAFile]
        guard peerFlags.allSatisfy({ $0 == nil }) || peerFlags.allSatisfy({ $0 != nil }) else {
            throw ValidationError("--peer-cert-file, --peer-key-file and --peer-trusted-ca-file go together: give all three for peer TLS, or none")
        }
    }

    /// Peer TLS from the flags, checked against the scheme of the `--cluster` URLs.
    func peerTLS(for peers: [PeerURL]) throws -> PeerTLS? {
        let wantsTLS = peerCertFile != nil
        if let plain = peers.first(where: { $0.isTLS != wantsTLS }) {
            throw ServeError(wantsTLS
                ? "--cluster: \(plain) is http://, but the --peer-* flags turn on peer TLS: give every peer URL as https://"
                : "--cluster: \(plain) is https://, which needs peer TLS: give --peer-cert-file, --peer-key-file and --peer-trusted-ca-file")
        }
        guard let peerCertFile, let peerKeyFile, let peerTrustedCAFile else { return nil }
        do {
            return try PeerTLS(certificateFile: peerCertFile, keyFile: peerKeyFile, trustedCAFile: peerTrustedCAFile)
        } catch {
            throw ServeError("peer TLS: \(error)")
        }
    }

    /// HTTPS for the API from the flags, or nil.
    func apiTLS() throws -> APITLS? {
        guard let certFile, let keyFile else { return nil }
        do {
            return try APITLS(certificateFile: certFile, keyFile: keyFile, clientCAFile: clientCertAuth ? trustedCAFile : nil)
        } catch {
            throw ServeError("API TLS: \(error)")
        }
    }

    func run() async throws {
        let peers: [PeerURL]
        do {
            peers = try PeerURL.parseList(cluster)
        } catch {
            throw ServeError("--cluster: \(error); give the peer URLs comma-separated, node 1's first")
        }
        guard id <= UInt64(peers.count) else {
            throw ServeError("--id \(id) has no peer URL: --cluster lists \(peers.count) URL(s), for ids 1 to \(peers.count)")
        }

        let peerTLS = try self.peerTLS(for: peers)
        let apiTLS = try self.apiTLS()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in ServerLogHandler(label: label, level: level) }
        let logger = Logger(label: "flotilla")
        // The node's swift-metrics go to this registry, which `GET /metrics` shows.
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // The WAL's fdatasync takes tens of microseconds to milliseconds: the default buckets
        // (5 ms and up) would put every save in the first one.
        factory.durationHistogramBuckets["flotilla_wal_save_duration"] = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        MetricsSystem.bootstrap(factory)

        var others: [UInt64: TransportAddress] = [:]
        for (index, url) in peers.enumerated() where UInt64(index + 1) != id { others[UInt64(index + 1)] = url.address }
        let own = peers[Int(id - 1)]
        let dataDir = self.dataDir ?? "flotilla-\(id)"
        let timeout = Duration.milliseconds(Int64(requestTimeout * 1000))
        let configuration = FlotillaConfiguration(
            nodeID: id, clusterID: Self.clusterID(clusterToken), peers: others, listenAddress: own.address,
            dataDirectory: dataDir, bootstrap: join ? .join : .newCluster, snapshotInterval: snapshotCount,
            maxProposalSize: KeyValueStore.Command.maxEncodedSize(keyBytes: maxKeyBytes, valueBytes: maxValueBytes),
            requestTimeout: timeout,
            leaderWait: min(timeout, .seconds(3)), maxFrameSize: max(4 << 20, 2 * (maxValueBytes + maxKeyBytes) + (1 << 16)),
            peerTLS: peerTLS)
        let node = try FlotillaNode(configuration: configuration, stateMachine: KeyValueStore(), logger: logger)
        do {
            try await node.start()
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EADDRNOTAVAIL {
            throw ServeError(
                "cannot listen for peers on \(own.address): \(error.errnoCode == EADDRINUSE ? "the port is in use (is another flotilla running?)" : "the address is not on this machine"); check --cluster and --id")
        }
        logger.notice(
            "serving",
            metadata: [
                "id": "\(id)", "peerURL": "\(own)", "api": "\(apiTLS == nil ? "http" : "https")://\(listenHost):\(port)",
                "dataDir": "\(dataDir)",
                "snapshotCount": "\(snapshotCount)",
            ])

        // A loopback API answers only loopback Host names: a rebound DNS name gets 421.
        let protection = BrowserProtection(
            requiresLoopbackHost: listenHost == "::1" || BrowserProtection.isLoopbackHost(listenHost.utf8),
            allowedOrigins: Set(allowedOrigins.split(separator: ",").map { String($0) }))
        let api = HTTPAPI(
            replica: FlotillaReplica(node: node), limits: HTTPAPI.Limits(maxKeyBytes: maxKeyBytes, maxValueBytes: maxValueBytes),
            metrics: registry, browserProtection: protection)
        let app = makeApplication(
            api: api, services: [node], address: .hostname(listenHost, port: port), tls: apiTLS,
            limits: ClientConnectionLimits(
                maxConnections: maxConnections, readHeaderTimeout: Self.timeAmount(readHeaderTimeout),
                idleTimeout: Self.timeAmount(idleTimeout)),
            logger: logger)
        // SIGINT and SIGTERM trigger a graceful shutdown: the HTTP server stops taking
        // connections and finishes its requests, then the node stops and closes its WAL.
        do {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EADDRNOTAVAIL {
            await node.shutdown()
            throw ServeError(
                "cannot listen on \(listenHost):\(port): \(error.errnoCode == EADDRINUSE ? "the port is in use (is another flotilla running?)" : "the address is not on this machine"); choose another --port or --listen-host")
        }
        logger.notice("stopped")
    }

    /// A validated duration flag as a `TimeAmount`.
    static func timeAmount(_ text: String) -> TimeAmount {
        .nanoseconds(Int64((parseDuration(text) ?? 0) * 1e9))
    }

    /// The raft cluster id: FNV-1a (64 bits) of the token, never 0.
    static func clusterID(_ token: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in token.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash == 0 ? 1 : hash
    }
}

/// A startup error, printed as `Error: …` with exit status 1.
struct ServeError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
