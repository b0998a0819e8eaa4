import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import FlotillaKV

/// The HTTP API through HummingbirdTesting's router client, with a real `SingleNodeReplica`
/// running as the application's service (or a scripted replica, for the failure answers).
@Suite struct HTTPAPITests {
    static let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` against an application whose replica is a running one-node cluster.
    func withServer(
        limits: HTTPAPI<SingleNodeReplica>.Limits = .init(),
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let replica = try SingleNodeReplica(
            configuration: .init(tickInterval: .milliseconds(10)), logger: Self.quietLogger)
        let app = makeApplication(
            api: HTTPAPI(replica: replica, limits: limits), services: [replica],
            address: .hostname("127.0.0.1", port: 0), logger: Self.quietLogger)
        try await app.test(.router) { client in
            try await replica.waitForLeader(timeout: .seconds(10))
            try await body(client)
        }
    }

    @Test(.timeLimit(.minutes(1))) func putThenGet() async throws {
        try await withServer { client in
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

    @Test(.timeLimit(.minutes(1))) func absentKeyIs404WithJSONError() async throws {
        try await withServer { client in
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

    @Test(.timeLimit(.minutes(1))) func deleteThroughV1() async throws {
        try await withServer { client in
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

    @Test(.timeLimit(.minutes(1))) func serializableRead() async throws {
        try await withServer { client in
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

    @Test(.timeLimit(.minutes(1))) func oversizedValueIs413AndNothingIsStored() async throws {
        try await withServer { client in
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

    @Test(.timeLimit(.minutes(1))) func limitsAreConfigurable() async throws {
        try await withServer(limits: .init(maxKeyBytes: 4, maxValueBytes: 8)) { client in
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

    @Test(.timeLimit(.minutes(1))) func badKeysAre400() async throws {
        try await withServer { client in
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

    @Test(.timeLimit(.minutes(1))) func percentEncodedKeys() async throws {
        try await withServer { client in
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

    @Test(.timeLimit(.minutes(1))) func statusReportsTheRaftState() async throws {
        try await withServer { client in
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

    @Test(.timeLimit(.minutes(1))) func healthIs200WithALeader() async throws {
        try await withServer { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"health\":true"))
            }
        }
    }

    @Test(.timeLimit(.minutes(1))) func raftDemoRoutes() async throws {
        try await withServer { client in
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

    @Test(.timeLimit(.minutes(1))) func membershipRoutesSayNotYet() async throws {
        try await withServer { client in
            for (uri, method) in [
                ("/2", HTTPRequest.Method.post), ("/2", .delete), ("/v1/members", .get), ("/v1/members", .post),
                ("/v1/members/2", .delete), ("/v1/leader", .post),
            ] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .notImplemented, "\(method) \(uri)")
                    #expect(errorMessage(response).contains("transport"))
                }
            }
            try await client.execute(uri: "/notanid", method: .delete) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    // MARK: Failure answers, from a scripted replica

    func withScriptedReplica(
        _ replica: ScriptedReplica, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let app = makeApplication(
            api: HTTPAPI(replica: replica), services: [], address: .hostname("127.0.0.1", port: 0),
            logger: Self.quietLogger)
        try await app.test(.router, body)
    }

    @Test(.timeLimit(.minutes(1)), arguments: [ReplicaError.noLeader, .proposalDropped, .stopped])
    func retryableErrorsAre503WithRetryAfter(_ error: ReplicaError) async throws {
        try await withScriptedReplica(ScriptedReplica(error: error)) { client in
            for (uri, method) in [("/k", HTTPRequest.Method.put), ("/k", .get), ("/v1/kv/k", .delete), ("/get?key=k", .get)] {
                try await client.execute(uri: uri, method: method, body: ByteBuffer(string: "v")) { response in
                    #expect(response.status == .serviceUnavailable)
                    #expect(response.headers[.retryAfter] == "1")
                    #expect(errorMessage(response) == error.description)
                }
            }
        }
    }

    @Test(.timeLimit(.minutes(1))) func timeoutIs504AndFailureIs500() async throws {
        try await withScriptedReplica(ScriptedReplica(error: .timeout)) { client in
            try await client.execute(uri: "/k", method: .put, body: ByteBuffer(string: "v")) { response in
                #expect(response.status == .gatewayTimeout)
                #expect(errorMessage(response).contains("timed out"))
            }
        }
        try await withScriptedReplica(ScriptedReplica(error: .failed("disk on fire"))) { client in
            try await client.execute(uri: "/k", method: .get) { response in
                #expect(response.status == .internalServerError)
                #expect(errorMessage(response).contains("disk on fire"))
            }
        }
    }

    @Test(.timeLimit(.minutes(1))) func healthIs503WithoutALeaderOrWhileApplying() async throws {
        let noLeader = ReplicaStatus(id: 1, term: 1, leader: 0, commit: 0, applied: 0, state: "follower")
        try await withScriptedReplica(ScriptedReplica(error: .noLeader, fixedStatus: noLeader)) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] != nil)
                #expect(errorMessage(response).contains("no leader"))
            }
        }
        let behind = ReplicaStatus(id: 1, term: 2, leader: 1, commit: 9, applied: 7, state: "leader")
        try await withScriptedReplica(ScriptedReplica(error: .noLeader, fixedStatus: behind)) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(errorMessage(response).contains("applied 7 of 9"))
            }
        }
    }
}

/// A replica that fails every request with one error, and reports a fixed status.
struct ScriptedReplica: KeyValueReplica {
    var error: ReplicaError
    var fixedStatus = ReplicaStatus(id: 1, term: 1, leader: 0, commit: 0, applied: 0, state: "follower")

    func put(key: [UInt8], value: [UInt8]) async throws -> KeyValueStore.Outcome { throw error }
    func delete(key: [UInt8]) async throws -> KeyValueStore.Outcome { throw error }
    func get(key: [UInt8], consistency: ReadConsistency) async throws -> [UInt8]? { throw error }
    func status() async -> ReplicaStatus { fixedStatus }
}

/// The `error` field of a JSON error body, or a note saying the body is not one.
func errorMessage(_ response: TestResponse) -> String {
    let body = Data(response.body.readableBytesView)
    guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
        let message = object["error"] as? String
    else { return "<not a JSON error body: \(String(buffer: response.body))>" }
    return message
}
