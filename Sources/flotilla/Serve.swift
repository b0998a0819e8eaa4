import ArgumentParser
import FlotillaKV
import Hummingbird
import Logging
import NIOCore

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
        abstract: "Run a node (in this build: a one-node cluster, in memory).")

    @Option(help: "This node's id; node N's peer URL is the N-th of --cluster.")
    var id: UInt64 = 1

    @Option(help: "Peer URLs (http://host:port), comma-separated; ids 1, 2, 3 … in order.")
    var cluster: String = "http://127.0.0.1:12379"

    @Option(help: "HTTP client API port.")
    var port: Int = 12380

    @Option(help: "Address the HTTP client API listens on.")
    var listenHost: String = "127.0.0.1"

    @Flag(help: "Join a running cluster instead of forming one (needs the transport: not in this build).")
    var join: Bool = false

    @Option(help: "Data directory (default flotilla-<id>). Not used yet: this build keeps data in memory.")
    var dataDir: String?

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

    func validate() throws {
        guard id >= 1 else { throw ValidationError("--id must be 1 or more (0 means \"no node\" in raft)") }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be between 1 and 65535") }
        guard maxKeyBytes >= 1 else { throw ValidationError("--max-key-bytes must be at least 1") }
        guard maxValueBytes >= 0 else { throw ValidationError("--max-value-bytes must not be negative") }
        guard requestTimeout > 0, requestTimeout.isFinite else {
            throw ValidationError("--request-timeout must be a positive number of seconds")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        let peers = try PeerURL.parseList(cluster)
        guard peers.count == 1 else {
            throw ServeError(
                "--cluster lists \(peers.count) peers, but this build runs one-node clusters only: multi-node clusters arrive with the peer transport. Start one node with a single --cluster URL (or none).")
        }
        guard id <= UInt64(peers.count) else {
            throw ServeError("--id \(id) has no peer URL: --cluster lists \(peers.count) URL(s), for ids 1 to \(peers.count)")
        }
        if join {
            throw ServeError("--join needs the peer transport, which this build does not have: it can only form a new one-node cluster")
        }

        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "flotilla")

        let dataDir = self.dataDir ?? "flotilla-\(id)"
        logger.warning(
            "this build keeps its data in memory only: --data-dir \(dataDir) is not used, and every key is lost when the process exits (the write-ahead log lands next)")
        logger.notice(
            "starting a one-node cluster",
            metadata: [
                "id": "\(id)", "peerURL": "\(peers[0])", "api": "http://\(listenHost):\(port)",
                "snapshotCount": "\(snapshotCount)",
            ])

        let replica = try SingleNodeReplica(
            configuration: SingleNodeReplica.Configuration(
                id: id, requestTimeout: .milliseconds(Int64(requestTimeout * 1000)), snapshotCount: snapshotCount),
            logger: logger)
        let api = HTTPAPI(replica: replica, limits: HTTPAPI.Limits(maxKeyBytes: maxKeyBytes, maxValueBytes: maxValueBytes))
        let app = makeApplication(
            api: api, services: [replica], address: .hostname(listenHost, port: port), logger: logger)
        // SIGINT and SIGTERM trigger a graceful shutdown: the HTTP server stops taking
        // connections and finishes its requests, then the replica stops.
        do {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EADDRNOTAVAIL {
            throw ServeError(
                "cannot listen on \(listenHost):\(port): \(error.errnoCode == EADDRINUSE ? "the port is in use (is another flotilla running?)" : "the address is not on this machine"); choose another --port or --listen-host")
        }
        logger.notice("stopped")
    }
}

/// A startup error, printed as `Error: …` with exit status 1.
struct ServeError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A peer URL of `--cluster`: `http://host:port`.
struct PeerURL: CustomStringConvertible {
    var host: String
    var port: Int

    var description: String { "http://\(host):\(port)" }

    static func parseList(_ list: String) throws -> [PeerURL] {
        let items = list.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingSpaces()
        }
        guard !items.isEmpty, !items.contains(where: \.isEmpty) else {
            throw ServeError("--cluster \"\(list)\" has an empty entry; give peer URLs like http://127.0.0.1:12379, comma-separated")
        }
        return try items.map(parse)
    }

    static func parse(_ text: Substring) throws -> PeerURL {
        let bad = ServeError("--cluster: \"\(text)\" is not a peer URL of the form http://host:port")
        guard text.hasPrefix("http://") else { throw bad }
        var rest = text.dropFirst("http://".count)
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":") else { throw bad }
        let host = rest[..<colon]
        guard !host.isEmpty, !host.contains("/"), let port = Int(rest[rest.index(after: colon)...]),
            (1...65535).contains(port)
        else { throw bad }
        return PeerURL(host: String(host), port: port)
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}
