import FlotillaHTTP
import Hummingbird
import Logging
import NIOHTTP1
import Prometheus
import ServiceLifecycle

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The client HTTP API of Docs/SERVER.md, on Hummingbird 2, over any `KeyValueReplica`.
///
/// | request | answer |
/// | --- | --- |
/// | `PUT /KEY` body = value | 204 once applied |
/// | `GET /KEY` | 200 with the value (linearizable), 404 if absent |
/// | `GET /set?key=K&value=V`, `GET /get?key=K` | the hashicorp raft-demo routes, same semantics |
/// | `PUT`, `GET`, `DELETE /v1/kv/KEY` | the same store; `GET …?serializable=true` reads locally |
/// | `POST /ID` body = peer URL, `DELETE /ID` (ID all digits) | add a voter, remove a member; 204 once applied |
/// | `GET /v1/members` | JSON `{"members": [{"id", "peerURL", "learner", "leader"}, …]}` |
/// | `POST /v1/members` JSON `{"id", "peerURL", "learner"}`, `DELETE /v1/members/N` | membership |
/// | `POST /v1/leader` JSON `{"id"}` | transfer leadership; 204 once this node sees it lead |
/// | `GET /v1/status` | JSON `id`, `term`, `leader`, `commit`, `applied`, `state` |
/// | `GET /health` | 200 with a leader and applied == commit, else 503 |
/// | `GET /metrics` | Prometheus text, when the API was given a registry |
///
/// Keys in a path are one percent-encoded segment (`%2F` for a slash); the first segments
/// `health`, `metrics`, `set`, `get` and `v1` are routes, so such keys go through `/v1/kv/KEY`,
/// and so do keys of digits only when they are to be deleted (`DELETE /ID` removes a member).
///
/// Errors are JSON `{"error": "…"}`: 400 malformed (bad key, bad percent-encoding, bad
/// parameter, bad member id, peer URL or JSON body; a membership change raft refuses), 404
/// absent key or unknown route, 413 value over the limit, 503 with `Retry-After` when there is no
/// leader (or the node is stopping), 504 on timeout.
public struct HTTPAPI<Replica: KeyValueReplica>: Sendable {
    public struct Limits: Sendable, Hashable {
        /// Keys are 1 to `maxKeyBytes` bytes (after percent-decoding).
        public var maxKeyBytes: Int
        /// Values are at most `maxValueBytes` bytes.
        public var maxValueBytes: Int

        public init(maxKeyBytes: Int = 1024, maxValueBytes: Int = 1 << 20) {
            self.maxKeyBytes = maxKeyBytes
            self.maxValueBytes = maxValueBytes
        }
    }

    public let replica: Replica
    public let limits: Limits
    /// What `GET /metrics` shows; without one, that route is 404.
    public let metrics: PrometheusCollectorRegistry?
    /// Refusals of browsers' cross-site and rebound requests (403, 421), for every route.
    public let browserProtection: BrowserProtection

    public init(
        replica: Replica, limits: Limits = Limits(), metrics: PrometheusCollectorRegistry? = nil,
        browserProtection: BrowserProtection = BrowserProtection()
    ) {
        self.replica = replica
        self.limits = limits
        self.metrics = metrics
        self.browserProtection = browserProtection
    }

    /// A router with every route, its errors rendered as JSON.
    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        addRoutes(to: router)
        return router
    }

    /// Adds the routes of `APIRoute` (and the browser-protection and JSON-error middleware,
    /// which apply to the routes added after them and to unknown routes) to `router`.
    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.add(middleware: BrowserProtectionMiddleware<Context>(protection: browserProtection))
        router.add(middleware: JSONErrorMiddleware<Context>())
        for route in APIRoute.allCases where route != .metrics || metrics != nil {
            router.on(RouterPath(route.path), method: route.method) { request, context in
                try await self.respond(to: route, request, context: context)
            }
        }
    }

    /// The router's handler of every route.
    private func respond(to route: APIRoute, _ request: Request, context: some RequestContext) async throws -> Response {
        switch route {
        case .health:
            return try await health()
        case .status:
            return jsonResponse(await replica.status())
        case .demoSet:
            let key = try checkedKey(request.uri.queryParameters["key"].map { Array($0.utf8) }, source: "query parameter key")
            guard let rawValue = request.uri.queryParameters["value"] else {
                throw APIError(.badRequest, "missing query parameter value (use value= for an empty value)")
            }
            let value = Array(rawValue.utf8)
            try checkValueSize(value.count)
            return try await perform(.put(key: key, value: value)).apiResponse.routerResponse
        case .demoGet:
            let key = try checkedKey(request.uri.queryParameters["key"].map { Array($0.utf8) }, source: "query parameter key")
            return try await perform(.get(key: key, consistency: .linearizable)).apiResponse.routerResponse
        case .putV1Key, .putKey:
            let key = try pathKey(context)
            return try await perform(.put(key: key, value: try await body(of: request))).apiResponse.routerResponse
        case .getV1Key:
            let key = try pathKey(context)
            return try await perform(.get(key: key, consistency: try consistency(of: request))).apiResponse.routerResponse
        case .getKey:
            return try await perform(.get(key: try pathKey(context), consistency: .linearizable)).apiResponse.routerResponse
        case .deleteV1Key:
            return try await perform(.delete(key: try pathKey(context))).apiResponse.routerResponse
        case .metrics:
            // Added only with a registry (`addRoutes`).
            guard let metrics else { throw APIError(.notFound, "no such route: GET /metrics (this server has no metrics)") }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
        case .listMembers:
            return jsonResponse(MemberList(members: try await replica.members()))
        case .addMember:
            let body = try await jsonBody(MemberRequest.self, of: request, example: #"{"id":4,"peerURL":"http://127.0.0.1:12379","learner":false}"#)
            let id = try Self.checkedMemberID(body.id)
            let peerURL = try Self.peerURL(body.peerURL)
            try await replica.addMember(id: id, peerURL: peerURL, asLearner: body.learner ?? false)
            return Response(status: .noContent)
        case .removeMember:
            try await replica.removeMember(id: try Self.memberID(context.parameters.get("id")))
            return Response(status: .noContent)
        case .transferLeadership:
            let body = try await jsonBody(LeaderRequest.self, of: request, example: #"{"id":2}"#)
            try await replica.transferLeadership(to: try Self.checkedMemberID(body.id))
            return Response(status: .noContent)
        case .addMemberByID:
            let raw = context.parameters.get("key") ?? ""
            guard Self.isAllDigits(raw) else {
                throw APIError(.notFound, "no such route: POST \(request.uri.path); add a member with POST /ID (ID all digits), body = its peer URL")
            }
            let id = try Self.memberID(raw)
            let text = String(decoding: try await smallBody(of: request).readableBytesView, as: UTF8.self)
            // `curl -d` and `echo` may leave a newline after the URL.
            let peerURL = try Self.peerURL(String(text.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()))
            try await replica.addMember(id: id, peerURL: peerURL, asLearner: false)
            return Response(status: .noContent)
        case .removeMemberByID:
            let raw = context.parameters.get("key") ?? ""
            guard Self.isAllDigits(raw) else {
                throw APIError(.notFound, "no such route: DELETE \(request.uri.path); delete a key with DELETE /v1/kv/KEY")
            }
            try await replica.removeMember(id: try Self.memberID(raw))
            return Response(status: .noContent)
        }
    }

    // MARK: Membership requests

    private struct MemberList: Encodable {
        var members: [ReplicaMember]
    }

    private struct MemberRequest: Decodable {
        var id: UInt64
        var peerURL: String
        var learner: Bool?
    }

    private struct LeaderRequest: Decodable {
        var id: UInt64
    }

    static func isAllDigits(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// A member id from a path segment: digits, 1 to 2^64 − 1.
    static func memberID(_ raw: String?) throws -> UInt64 {
        guard let raw, isAllDigits(raw), let id = UInt64(raw) else {
            throw APIError(.badRequest, "\"\(raw ?? "")\" is not a member id: ids are whole numbers from 1 to \(UInt64.max)")
        }
        return try checkedMemberID(id)
    }

    static func checkedMemberID(_ id: UInt64) throws -> UInt64 {
        guard id != 0 else { throw APIError(.badRequest, "member id 0 means \"no node\" in raft; ids start at 1") }
        return id
    }

    static func peerURL(_ text: String) throws -> PeerURL {
        do {
            return try PeerURL(parsing: text)
        } catch {
            throw APIError(.badRequest, error.description)
        }
    }

    /// A membership request's body: at most 64 KiB.
    private func smallBody(of request: Request) async throws -> ByteBuffer {
        var request = request
        do {
            return try await request.collectBody(upTo: 1 << 16)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "the request body exceeds 64 KiB")
        }
    }

    private func jsonBody<T: Decodable>(_ type: T.Type, of request: Request, example: String) async throws -> T {
        let body = try await smallBody(of: request)
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch {
            throw APIError(.badRequest, "the body is not the JSON this route takes, like \(example)")
        }
    }

    // MARK: Handlers

    /// A key-value request, its key and value checked.
    enum KeyOperation: Sendable {
        case put(key: [UInt8], value: [UInt8])
        case get(key: [UInt8], consistency: ReadConsistency)
        case delete(key: [UInt8])
    }

    /// What a key-value request answers when it succeeds.
    enum KeyAnswer: Sendable, Equatable {
        /// 204: the write was applied.
        case applied
        /// 200 with the value as `application/octet-stream`.
        case value([UInt8])

        var apiResponse: APIResponse {
            switch self {
            case .applied: APIResponse(status: .noContent)
            case .value(let value): APIResponse(status: .ok, fields: [.contentType: "application/octet-stream"], body: value)
            }
        }
    }

    /// Carries out a key-value request and hands its answer to `completion`: writes answer once
    /// applied (through the replica's completion handler: no task), reads with `consistency`
    /// (in a task: a read awaits ReadIndex). The error is the replica's, or a 404 `APIError` for
    /// a key that is absent. `completion` is called once, on any thread.
    func perform(_ operation: KeyOperation, completion: @escaping @Sendable (Result<KeyAnswer, any Error>) -> Void) {
        switch operation {
        case .put(let key, let value):
            replica.write(key: key, value: value) { completion($0.map { _ in .applied }.mapError { $0 }) }
        case .delete(let key):
            replica.write(key: key, value: nil) { completion($0.map { _ in .applied }.mapError { $0 }) }
        case .get(let key, let consistency):
            Task {
                do {
                    guard let value = try await replica.get(key: key, consistency: consistency) else {
                        throw APIError(.notFound, "key not found")
                    }
                    completion(.success(.value(value)))
                } catch {
                    completion(.failure(error))
                }
            }
        }
    }

    /// `perform(_:completion:)`, awaited: for the router's handlers.
    func perform(_ operation: KeyOperation) async throws -> KeyAnswer {
        try await withCheckedContinuation { continuation in
            perform(operation) { continuation.resume(returning: $0) }
        }.get()
    }

    private func health() async throws -> Response {
        let status = await replica.statusWhenCaughtUp(within: .seconds(1))
        guard status.leader != 0 else {
            throw APIError(.serviceUnavailable, "unhealthy: no leader", headers: [.retryAfter: "1"])
        }
        guard status.applied >= status.commit else {
            throw APIError(
                .serviceUnavailable, "unhealthy: applied \(status.applied) of \(status.commit) committed entries",
                headers: [.retryAfter: "1"])
        }
        return jsonResponse(Health(health: true, leader: status.leader, commit: status.commit, applied: status.applied))
    }

    private struct Health: Encodable {
        var health: Bool
        var leader: UInt64
        var commit: UInt64
        var applied: UInt64
    }

    // MARK: Request parsing

    private func pathKey(_ context: some RequestContext) throws -> [UInt8] {
        try pathKey(raw: context.parameters.get("key") ?? "")
    }

    /// The key in a path segment `raw`, percent-decoded and checked.
    func pathKey(raw: some StringProtocol) throws(APIError) -> [UInt8] {
        guard let bytes = PercentEncoding.decode(raw) else {
            throw APIError(.badRequest, "the key in the path is not valid percent-encoding")
        }
        return try checkedKey(bytes, source: "key")
    }

    func checkedKey(_ key: [UInt8]?, source: String) throws(APIError) -> [UInt8] {
        guard let key, !key.isEmpty else {
            throw APIError(.badRequest, "missing or empty \(source): keys are 1 to \(limits.maxKeyBytes) bytes")
        }
        guard key.count <= limits.maxKeyBytes else {
            throw APIError(.badRequest, "the key is \(key.count) bytes; keys are 1 to \(limits.maxKeyBytes) bytes")
        }
        return key
    }

    func checkValueSize(_ size: Int) throws(APIError) {
        guard size <= limits.maxValueBytes else {
            throw APIError(.contentTooLarge, "the value is \(size) bytes; values are at most \(limits.maxValueBytes) bytes")
        }
    }

    /// The request body, refused with 413 as soon as it is known to exceed the value limit.
    private func body(of request: Request) async throws -> [UInt8] {
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }) {
            try checkValueSize(declared)
        }
        var request = request
        do {
            let buffer = try await request.collectBody(upTo: limits.maxValueBytes)
            return Array(buffer.readableBytesView)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw bodyOverLimit
        } catch let error as HTTPParserError {
            // The body's framing broke off (bad chunking): the client's request, not our failure.
            throw APIError(.badRequest, "malformed request body: \(error)")
        }
    }

    /// A body that grew past the value limit before it ended (its length was not declared).
    var bodyOverLimit: APIError {
        APIError(.contentTooLarge, "the value exceeds the limit of \(limits.maxValueBytes) bytes")
    }

    private func consistency(of request: Request) throws -> ReadConsistency {
        switch request.uri.queryParameters["serializable"] {
        case nil, "false", "0": return .linearizable
        case "", "true", "1": return .serializable
        case let other?:
            throw APIError(.badRequest, "serializable must be true or false, not \"\(other)\"")
        }
    }
}
