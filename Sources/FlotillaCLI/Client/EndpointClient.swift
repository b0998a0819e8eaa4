import AsyncHTTPClient
import FlotillaHTTP
import NIOSSL
import NIOCore
import NIOHTTP1

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why a client request failed: the server answered with an error, or no endpoint could be reached.
public enum ClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server answered `status`; `message` is the `error` of its JSON body (Docs/SERVER.md), or
    /// the body itself when it is not that JSON.
    case server(status: UInt, message: String)
    /// No endpoint answered; `failures` says, for each one tried, what went wrong.
    case unreachable(failures: [String])
    /// The server answered something this client cannot read.
    case malformedResponse(String)
    /// An `--endpoints` entry is not an `http://host:port` URL.
    case badEndpoint(String)

    public var description: String {
        switch self {
        case .server(let status, let message): return "server error \(status): \(message)"
        case .unreachable(let failures): return "cannot reach " + failures.joined(separator: "; ")
        case .malformedResponse(let what): return "malformed response: \(what)"
        case .badEndpoint(let text): return "\"\(text)\" is not an endpoint: use http://HOST:PORT"
        }
    }
}

/// A response read whole: its status and body.
public struct ClientResponse: Sendable {
    public var status: UInt
    public var body: [UInt8]

    public var text: String { String(decoding: body, as: UTF8.self) }
}

extension String {
    /// Without the whitespace at either end (Foundation-free).
    package func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}

/// Parses `--endpoints`: comma-separated `http://host:port` URLs (`HTTPEndpoint`), each
/// returned normalized, without a trailing slash.
public func parseEndpoints(_ text: String) throws -> [String] {
    let items = HTTPEndpoint.listItems(text).filter { !$0.isEmpty }
    guard !items.isEmpty else { throw ClientError.badEndpoint(text) }
    return try items.map { item in
        guard let endpoint = HTTPEndpoint(parsing: item) else { throw ClientError.badEndpoint(String(item)) }
        return endpoint.description
    }
}

/// Percent-encodes a key as one path segment, the form `/v1/kv/KEY` takes.
public func percentEncodePathSegment(_ bytes: some Sequence<UInt8>) -> String {
    PercentEncoding.encodePathSegment(bytes)
}

/// The HTTP API of a flotilla cluster (Docs/SERVER.md) over AsyncHTTPClient.
///
/// Each request goes to the first endpoint; when it cannot be reached (connection refused, connect
/// timeout, connection reset) the next one is tried, and so on. An HTTP answer, error or not, ends
/// the search. Call `shutdown()` when done.
public final class FlotillaHTTPClient: Sendable {
    public let endpoints: [String]
    public let http: HTTPClient
    let requestTimeout: TimeAmount

    /// - Parameters:
    ///   - connections: the pool's connections per endpoint (requests beyond them wait).
    ///   - connectTimeout: how long to try one endpoint before moving on to the next.
    ///   - tls: for `https://` endpoints (the server verified, a client certificate presented).
    public init(
        endpoints: [String], connections: Int = 8, connectTimeout: TimeAmount = .seconds(2), requestTimeout: TimeAmount = .seconds(30),
        tls: TLSConfiguration? = nil
    ) {
        precondition(!endpoints.isEmpty, "no endpoints")
        var configuration = HTTPClient.Configuration()
        if let tls { configuration.tlsConfiguration = tls }
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, connections))
        // Fail fast on a dead endpoint, so that the next one is tried.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = connectTimeout
        configuration.decompression = .disabled
        self.endpoints = endpoints
        self.requestTimeout = requestTimeout
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// Sends `method path` with `body`, failing over between endpoints, and reads the whole answer.
    /// `endpoints` overrides the order in which they are tried.
    public func send(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String? = nil, endpoints: [String]? = nil) async throws -> ClientResponse {
        var failures: [String] = []
        for endpoint in endpoints ?? self.endpoints {
            var request = HTTPClientRequest(url: endpoint + path)
            request.method = method
            if let body {
                request.body = .bytes(ByteBuffer(bytes: body))
            }
            if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: requestTimeout)
            } catch {
                failures.append("\(endpoint) (\(error))")
                continue
            }
            let buffer = try await response.body.collect(upTo: 64 << 20)
            return ClientResponse(status: response.status.code, body: Array(buffer.readableBytesView))
        }
        throw ClientError.unreachable(failures: failures)
    }

    /// `send`, then a 2xx or a `ClientError.server` with the server's message.
    public func checked(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String? = nil) async throws -> ClientResponse {
        let response = try await send(method, path, body: body, contentType: contentType)
        guard (200..<300).contains(response.status) else {
            throw ClientError.server(status: response.status, message: Self.errorMessage(response.body))
        }
        return response
    }

    /// The `error` of a `{"error": "…"}` body, else the body as text.
    public static func errorMessage(_ body: [UInt8]) -> String {
        struct ErrorBody: Decodable { var error: String }
        if let decoded = try? JSONDecoder().decode(ErrorBody.self, from: Data(body)) {
            return decoded.error
        }
        let text = String(decoding: body, as: UTF8.self)
        return text.isEmpty ? "(no body)" : text
    }

    // MARK: The key-value store

    public func put(key: String, value: [UInt8]) async throws {
        _ = try await checked(.PUT, "/v1/kv/" + percentEncodePathSegment(key.utf8), body: value)
    }

    /// The value, or nil when the key is absent (404).
    public func get(key: String) async throws -> [UInt8]? {
        let response = try await send(.GET, "/v1/kv/" + percentEncodePathSegment(key.utf8))
        if response.status == 404 { return nil }
        guard (200..<300).contains(response.status) else {
            throw ClientError.server(status: response.status, message: Self.errorMessage(response.body))
        }
        return response.body
    }

    public func delete(key: String) async throws {
        _ = try await checked(.DELETE, "/v1/kv/" + percentEncodePathSegment(key.utf8))
    }

    // MARK: Membership and status

    public struct Member: Codable, Sendable, Equatable {
        public var id: UInt64
        public var peerURL: String
        public var learner: Bool
        public var leader: Bool
    }

    public func members() async throws -> [Member] {
        struct List: Decodable { var members: [Member] }
        let response = try await checked(.GET, "/v1/members")
        do {
            return try JSONDecoder().decode(List.self, from: Data(response.body)).members
        } catch {
            throw ClientError.malformedResponse("GET /v1/members: \(response.text)")
        }
    }

    public func addMember(id: UInt64, peerURL: String, learner: Bool) async throws {
        struct Add: Encodable { var id: UInt64; var peerURL: String; var learner: Bool }
        let body = try JSONEncoder().encode(Add(id: id, peerURL: peerURL, learner: learner))
        _ = try await checked(.POST, "/v1/members", body: Array(body), contentType: "application/json")
    }

    public func removeMember(id: UInt64) async throws {
        _ = try await checked(.DELETE, "/v1/members/\(id)")
    }

    /// `GET /v1/status`, the JSON as the server sent it.
    public func status() async throws -> [UInt8] {
        try await checked(.GET, "/v1/status").body
    }
}

/// Pretty-prints a JSON object's members one per line, `key: value`, in the server's order
/// (sorted keys). Anything else is returned as it is.
public func prettyStatus(_ json: [UInt8]) -> String {
    guard let object = try? JSONDecoder().decode([String: StatusValue].self, from: Data(json)) else {
        return String(decoding: json, as: UTF8.self)
    }
    let width = object.keys.map(\.count).max() ?? 0
    return object.keys.sorted().map { key in
        key + ":" + String(repeating: " ", count: width - key.count + 1) + object[key]!.text
    }.joined(separator: "\n")
}

/// A scalar of a status object.
struct StatusValue: Decodable {
    var text: String

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let n = try? container.decode(UInt64.self) {
            text = String(n)
        } else if let n = try? container.decode(Int64.self) {
            text = String(n)
        } else if let b = try? container.decode(Bool.self) {
            text = String(b)
        } else if let s = try? container.decode(String.self) {
            text = s
        } else if let d = try? container.decode(Double.self) {
            text = String(d)
        } else {
            text = "…"
        }
    }
}
