import Flotilla
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import RaftNIO
import Testing

@testable import FlotillaKV

/// The HTTP API through HummingbirdTesting's router client, with a real one-node
/// `FlotillaNode` (on a temporary data directory, its transport on port 0) running as the
/// application's service — or a scripted replica, for the failure answers.
@Suite struct HTTPAPITests {
    static let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Connection deadlines far beyond any test: the tests of what requests mean must not race a
    /// 10 s head deadline on a loaded machine (where a test's 1 ms pauses can last much longer).
    /// `ClientConnectionLimitTests` tests the deadlines.
    static let patientLimits = ClientConnectionLimits(readHeaderTimeout: .seconds(300), idleTimeout: .seconds(300))

    /// A one-node cluster's node, its data in `directory`, with fast ticks.
    static func makeNode(directory: String, metrics: PrometheusCollectorRegistry? = nil) throws -> FlotillaNode<KeyValueStore> {
        let configuration = FlotillaConfiguration(
            nodeID: 1, clusterID: 7, listenAddress: TransportAddress(host: "127.0.0.1", port: 0),
            dataDirectory: directory, tickInterval: .milliseconds(10), snapshotInterval: 5,
            entriesKeptAfterCompaction: 2, maxProposalSize: KeyValueStore.Command.maxEncodedSize(keyBytes: 1024, valueBytes: 1 << 20))
        return try FlotillaNode(
            configuration: configuration, stateMachine: KeyValueStore(), logger: quietLogger,
            metricsFactory: metrics.map { PrometheusMetricsFactory(registry: $0) })
    }

    /// Runs `body` against an application whose replica is a running one-node cluster, its data
    /// in `directory` (a fresh temporary one when nil, removed afterwards).
    func withServer(
        via: Via,
        limits: HTTPAPI<FlotillaReplica>.Limits = .init(),
        directory: String? = nil,
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let temporary = directory == nil ? makeTemporaryDirectory() : nil
        defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        let registry = PrometheusCollectorRegistry()
        let node = try Self.makeNode(directory: directory ?? temporary!, metrics: registry)
        try await node.start()
        let app = makeApplication(
            api: HTTPAPI(replica: FlotillaReplica(node: node), limits: limits, metrics: registry), services: [node],
            address: .hostname("127.0.0.1", port: 0), limits: Self.patientLimits, logger: Self.quietLogger)
        try await app.test(via.setup) { client in
            try await node.waitForLeader(timeout: .seconds(10))
            try await body(client)
        }
        await node.shutdown()
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func writesSurviveARestartFromTheDataDirectory(_ via: Via) async throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Enough writes to take snapshots (every 5 entries) and compact the log behind them.
        try await withServer(via: via, directory: directory) { client in
            for i in 0..<12 {
                try await client.execute(uri: "/k\(i)", method: .put, body: ByteBuffer(string: "v\(i)")) { response in
                    #expect(response.status == .noContent)
                }
            }
            try await client.execute(uri: "/v1/kv/k3", method: .delete) { _ in }
        }
        #expect(FileManager.default.fileExists(atPath: "\(directory)/wal"))
        #expect(FileManager.default.fileExists(atPath: "\(directory)/snap"))
        try await withServer(via: via, directory: directory) { client in
            for i in 0..<12 {
                try await client.execute(uri: "/k\(i)", method: .get) { response in
                    if i == 3 {
                        #expect(response.status == .notFound)
                    } else {
                        #expect(response.status == .ok)
                        #expect(String(buffer: response.body) == "v\(i)")
                    }
                }
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func putThenGet(_ via: Via) async throws {
        try await withServer(via: via) { client in
            try await client.execute(uri: "/foo", method: .put, body: ByteBuffer(string: "bar")) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/foo", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "bar")
            }
            // Overwrite, and an empty value.
            try await client.execute(uri: "/foo", method: .put, body: ByteBuffer(string: "")) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/foo", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.body.readableBytes == 0)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func absentKeyIs404WithJSONError(_ via: Via) async throws {
        try await withServer(via: via) { client in
            try await client.execute(uri: "/missing", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(errorMessage(response) == "key not found")
            }
            try await client.execute(uri: "/v1/kv/missing", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/a/b/c", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(errorMessage(response).contains("no such route"))
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func deleteThroughV1(_ via: Via) async throws {
        try await withServer(via: via) { client in
            try await client.execute(uri: "/v1/kv/k", method: .put, body: ByteBuffer(string: "v")) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/v1/kv/k", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "v")
            }
            // The root routes and /v1/kv are one store.
            try await client.execute(uri: "/k", method: .get) { response in
                #expect(String(buffer: response.body) == "v")
            }
            try await client.execute(uri: "/v1/kv/k", method: .delete) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/v1/kv/k", method: .get) { response in
                #expect(response.status == .notFound)
            }
            // Deleting an absent key is not an error.
            try await client.execute(uri: "/v1/kv/k", method: .delete) { response in
                #expect(response.status == .noContent)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func serializableRead(_ via: Via) async throws {
        try await withServer(via: via) { client in
            try await client.execute(uri: "/v1/kv/s", method: .put, body: ByteBuffer(string: "local")) { _ in }
            for query in ["serializable=true", "serializable", "serializable=1", "serializable=false"] {
                try await client.execute(uri: "/v1/kv/s?\(query)", method: .get) { response in
                    #expect(response.status == .ok, "\(query)")
                    #expect(String(buffer: response.body) == "local")
                }
            }
            try await client.execute(uri: "/v1/kv/nope?serializable=true", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/v1/kv/s?serializable=maybe", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(errorMessage(response).contains("serializable"))
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func oversizedValueIs413AndNothingIsStored(_ via: Via) async throws {
        try await withServer(via: via) { client in
            let limit = 1 << 20
            try await client.execute(
                uri: "/big", method: .put, body: ByteBuffer(repeating: 0x61, count: limit + 1)
            ) { response in
                #expect(response.status == .contentTooLarge)
                #expect(errorMessage(response).contains("\(limit)"))
            }
            try await client.execute(uri: "/big", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/big", method: .put, body: ByteBuffer(repeating: 0x62, count: limit)) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/big", method: .get) { response in
                #expect(response.body.readableBytes == limit)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func limitsAreConfigurable(_ via: Via) async throws {
        try await withServer(via: via, limits: .init(maxKeyBytes: 4, maxValueBytes: 8)) { client in
            try await client.execute(uri: "/v1/kv/abcd", method: .put, body: ByteBuffer(string: "12345678")) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/v1/kv/abcde", method: .put, body: ByteBuffer(string: "1")) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/v1/kv/abcd", method: .put, body: ByteBuffer(string: "123456789")) { response in
                #expect(response.status == .contentTooLarge)
            }
            try await client.execute(uri: "/set?key=a&value=123456789", method: .get) { response in
                #expect(response.status == .contentTooLarge)
            }
            try await client.execute(uri: "/v1/kv/abcd", method: .get) { response in
                #expect(String(buffer: response.body) == "12345678")
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func badKeysAre400(_ via: Via) async throws {
        try await withServer(via: via) { client in
            let longKey = String(repeating: "k", count: 1025)
            try await client.execute(uri: "/\(longKey)", method: .put, body: ByteBuffer(string: "v")) { response in
                #expect(response.status == .badRequest)
                #expect(errorMessage(response).contains("1025 bytes"))
            }
            try await client.execute(uri: "/\(longKey)", method: .get) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/\(longKey.dropLast())", method: .put, body: ByteBuffer(string: "v")) { response in
                #expect(response.status == .noContent)
            }
            // Percent-encoding counts decoded bytes: 1025 "%41" is 1025 bytes.
            let encodedLong = String(repeating: "%41", count: 1025)
            try await client.execute(uri: "/v1/kv/\(encodedLong)", method: .put, body: ByteBuffer(string: "v")) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/%zz", method: .put, body: ByteBuffer(string: "v")) { response in
                #expect(response.status == .badRequest)
                #expect(errorMessage(response).contains("percent-encoding"))
            }
            try await client.execute(uri: "/set?key=&value=x", method: .get) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/set?value=x", method: .get) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/set?key=x", method: .get) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/get", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(errorMessage(response).contains("key"))
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func percentEncodedKeys(_ via: Via) async throws {
        try await withServer(via: via) { client in
            try await client.execute(uri: "/v1/kv/a%2Fb%20c", method: .put, body: ByteBuffer(string: "slash")) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/a%2fb%20c", method: .get) { response in
                #expect(String(buffer: response.body) == "slash")
            }
            try await client.execute(uri: "/get?key=a%2Fb%20c", method: .get) { response in
                #expect(String(buffer: response.body) == "slash")
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func statusReportsTheRaftState(_ via: Via) async throws {
        try await withServer(via: via) { client in
            try await client.execute(uri: "/x", method: .put, body: ByteBuffer(string: "1")) { _ in }
            try await client.execute(uri: "/v1/status", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                let status = try JSONDecoder().decode(ReplicaStatus.self, from: Data(response.body.readableBytesView))
                #expect(status.id == 1)
                #expect(status.leader == 1)
                #expect(status.state == "leader")
                #expect(status.term >= 1)
                // The bootstrap conf change, the leader's empty entry, the put.
                #expect(status.commit >= 3)
                #expect(status.applied == status.commit)
                let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                #expect(Set(object?.keys.map { $0 } ?? []) == ["id", "term", "leader", "commit", "applied", "state"])
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func healthIs200WithALeader(_ via: Via) async throws {
        try await withServer(via: via) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"health\":true"))
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func raftDemoRoutes(_ via: Via) async throws {
        try await withServer(via: via) { client in
            try await client.execute(uri: "/set?key=demo&value=hello%20world", method: .get) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/get?key=demo", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "hello world")
            }
            try await client.execute(uri: "/demo", method: .get) { response in
                #expect(String(buffer: response.body) == "hello world")
            }
            try await client.execute(uri: "/set?key=empty&value=", method: .get) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/get?key=empty", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.body.readableBytes == 0)
            }
            try await client.execute(uri: "/get?key=absent", method: .get) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func membersListsTheNodeAsLeader(_ via: Via) async throws {
        try await withServer(via: via) { client in
            try await client.execute(uri: "/v1/members", method: .get) { response in
                #expect(response.status == .ok)
                let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                let members = object?["members"] as? [[String: Any]]
                #expect(members?.count == 1)
                #expect(members?.first?["id"] as? Int == 1)
                #expect(members?.first?["learner"] as? Bool == false)
                #expect(members?.first?["leader"] as? Bool == true)
                // The transport's port 0 was replaced by the one it bound.
                let url = members?.first?["peerURL"] as? String ?? ""
                #expect(url.hasPrefix("http://127.0.0.1:") && !url.hasSuffix(":0"), "\(url)")
            }
            // Transfer to itself: already the leader.
            try await client.execute(uri: "/v1/leader", method: .post, body: ByteBuffer(string: #"{"id":1}"#)) { response in
                #expect(response.status == .noContent)
            }
        }
    }

    /// Malformed membership requests are 400 with a JSON error, and change nothing.
    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func malformedMembershipRequestsAre400(_ via: Via) async throws {
        try await withServer(via: via) { client in
            let requests: [(String, HTTPRequest.Method, String)] = [
                ("/2", .post, "not a url"),
                ("/2", .post, "ftp://127.0.0.1:1"),
                ("/2", .post, "http://127.0.0.1:99999"),
                ("/2", .post, ""),
                ("/0", .post, "http://127.0.0.1:12379"),
                ("/99999999999999999999", .post, "http://127.0.0.1:12379"),
                ("/0", .delete, ""),
                ("/99999999999999999999", .delete, ""),
                ("/7", .delete, ""),  // not a member
                ("/v1/members", .post, "{"),
                ("/v1/members", .post, #"{"id":2}"#),
                ("/v1/members", .post, #"{"id":-1,"peerURL":"http://127.0.0.1:1"}"#),
                ("/v1/members", .post, #"{"id":0,"peerURL":"http://127.0.0.1:1"}"#),
                ("/v1/members", .post, #"{"id":2,"peerURL":"127.0.0.1:1"}"#),
                ("/v1/members", .post, #"{"id":2,"peerURL":"http://127.0.0.1:1","learner":"yes"}"#),
                ("/v1/members/abc", .delete, ""),
                ("/v1/members/0", .delete, ""),
                ("/v1/leader", .post, "2"),
                ("/v1/leader", .post, #"{"id":0}"#),
                ("/v1/leader", .post, #"{"id":5}"#),  // not a voter
            ]
            for (uri, method, body) in requests {
                try await client.execute(uri: uri, method: method, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest, "\(method) \(uri) \(body)")
                    #expect(!errorMessage(response).hasPrefix("<not a JSON"), "\(method) \(uri) \(body)")
                }
            }
            try await client.execute(uri: "/notanid", method: .delete) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/v1/members", method: .get) { response in
                let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                #expect((object?["members"] as? [Any])?.count == 1)
            }
            try await client.execute(uri: "/v1/status", method: .get) { response in
                let status = try JSONDecoder().decode(ReplicaStatus.self, from: Data(response.body.readableBytesView))
                #expect(status.leader == 1)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func metricsArePrometheusText(_ via: Via) async throws {
        try await withServer(via: via) { client in
            try await client.execute(uri: "/k", method: .put, body: ByteBuffer(string: "v")) { _ in }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                let text = String(buffer: response.body)
                #expect(text.contains("# TYPE flotilla_proposals_total counter"))
                #expect(text.contains(#"flotilla_proposals_total{node="1"} 1"#))
                #expect(text.contains("flotilla_is_leader"))
            }
        }
    }

    // MARK: Failure answers, from a scripted replica

    func withScriptedReplica(
        via: Via, _ replica: ScriptedReplica, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let app = makeApplication(
            api: HTTPAPI(replica: replica), services: [], address: .hostname("127.0.0.1", port: 0),
            limits: Self.patientLimits, logger: Self.quietLogger)
        try await app.test(via.setup, body)
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases, [ReplicaError.noLeader, .proposalDropped, .stopped, .overloaded("the node has 10 writes waiting")])
    func retryableErrorsAre503WithRetryAfter(_ via: Via, _ error: ReplicaError) async throws {
        try await withScriptedReplica(via: via, ScriptedReplica(error: error)) { client in
            for (uri, method) in [
                ("/k", HTTPRequest.Method.put), ("/k", .get), ("/v1/kv/k", .delete), ("/get?key=k", .get),
                ("/v1/members", .get), ("/2", .delete), ("/v1/members/2", .delete),
            ] {
                try await client.execute(uri: uri, method: method, body: ByteBuffer(string: "v")) { response in
                    #expect(response.status == .serviceUnavailable)
                    #expect(response.headers[.retryAfter] == "1")
                    #expect(errorMessage(response) == error.description)
                }
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func timeoutIs504AndFailureIs500(_ via: Via) async throws {
        try await withScriptedReplica(via: via, ScriptedReplica(error: .timeout)) { client in
            try await client.execute(uri: "/k", method: .put, body: ByteBuffer(string: "v")) { response in
                #expect(response.status == .gatewayTimeout)
                #expect(errorMessage(response).contains("timed out"))
            }
        }
        try await withScriptedReplica(via: via, ScriptedReplica(error: .failed("disk on fire"))) { client in
            try await client.execute(uri: "/k", method: .get) { response in
                #expect(response.status == .internalServerError)
                #expect(errorMessage(response).contains("disk on fire"))
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: Via.allCases) func healthIs503WithoutALeaderOrWhileApplying(_ via: Via) async throws {
        let noLeader = ReplicaStatus(id: 1, term: 1, leader: 0, commit: 0, applied: 0, state: "follower")
        try await withScriptedReplica(via: via, ScriptedReplica(error: .noLeader, fixedStatus: noLeader)) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] != nil)
                #expect(errorMessage(response).contains("no leader"))
            }
        }
        let behind = ReplicaStatus(id: 1, term: 2, leader: 1, commit: 9, applied: 7, state: "leader")
        try await withScriptedReplica(via: via, ScriptedReplica(error: .noLeader, fixedStatus: behind)) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(errorMessage(response).contains("applied 7 of 9"))
            }
        }
    }
}

/// The two ways to the API: HummingbirdTesting's router client (the routes alone), and a live
/// server on loopback (the routes behind `flotilla serve`'s connection pipeline, where
/// `KeyRouteHandler` answers the key routes). Every test runs both ways, so the handler
/// answers what the router answers.
enum Via: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case router, live

    var setup: TestingSetup { self == .router ? .router : .live }
    var testDescription: String { rawValue }
}

/// A replica that fails every request with one error, and reports a fixed status.
struct ScriptedReplica: KeyValueReplica {
    var error: ReplicaError
    var fixedStatus = ReplicaStatus(id: 1, term: 1, leader: 0, commit: 0, applied: 0, state: "follower")

    func write(key: [UInt8], value: [UInt8]?, completion: @escaping @Sendable (Result<KeyValueStore.Outcome, ReplicaError>) -> Void) {
        completion(.failure(error))
    }
    func get(key: [UInt8], consistency: ReadConsistency) async throws -> [UInt8]? { throw error }
    func status() async -> ReplicaStatus { fixedStatus }
    func members() async throws -> [ReplicaMember] { throw error }
    func addMember(id: UInt64, peerURL: PeerURL, asLearner: Bool) async throws { throw error }
    func removeMember(id: UInt64) async throws { throw error }
    func transferLeadership(to id: UInt64) async throws { throw error }
}

func makeTemporaryDirectory() -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-kv-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The `error` field of a JSON error body, or a note saying the body is not one.
func errorMessage(_ response: TestResponse) -> String {
    let body = Data(response.body.readableBytesView)
    guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
        let message = object["error"] as? String
    else { return "<not a JSON error body: \(String(buffer: response.body))>" }
    return message
}
