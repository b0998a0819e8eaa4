import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Prometheus
import Testing

@testable import FlotillaKV

/// The route table, enumerated: every route reaches its handler through the router, the
/// key-route handler takes exactly the key routes, and no key it takes shadows another route.
@Suite struct APIRouteTests {
    /// A concrete request path for `route`: captures filled with a key, or a member id where
    /// the route wants digits.
    static func samplePath(_ route: APIRoute) -> String {
        let byID = route == .addMemberByID || route == .removeMemberByID
        return "/" + route.path.replacingOccurrences(of: ":key", with: byID ? "4" : "k").replacingOccurrences(of: ":id", with: "4")
    }

    static func sampleBody(_ route: APIRoute) -> String {
        switch route {
        case .addMember: #"{"id":4,"peerURL":"http://127.0.0.1:12379"}"#
        case .transferLeadership: #"{"id":1}"#
        case .addMemberByID: "http://127.0.0.1:12379"
        case .putKey, .putV1Key: "v"
        default: ""
        }
    }

    @Test func everyRouteIsOneMethodAndPath() {
        let pairs = APIRoute.allCases.map { "\($0.method) \($0.path)" }
        #expect(Set(pairs).count == pairs.count, "\(pairs)")
    }

    /// Each route's sample request, through the router, reaches that route: not the router's
    /// 404 or 405, and, for the routes that touch the replica, the replica.
    @Test(.timeLimit(.minutes(1)), arguments: APIRoute.allCases)
    func theRouterServesTheRoute(_ route: APIRoute) async throws {
        let replica = RecordingReplica()
        let app = Application(router: HTTPAPI(replica: replica, metrics: PrometheusCollectorRegistry()).makeRouter())
        try await app.test(.router) { client in
            let response = try await client.execute(
                uri: Self.samplePath(route) + (route == .demoSet ? "?key=k&value=v" : route == .demoGet ? "?key=k" : ""),
                method: route.method, body: ByteBuffer(string: Self.sampleBody(route)))
            #expect(response.status != .methodNotAllowed, "\(route)")
            if response.status == .notFound {
                // Only a key that is absent, never the router's "no such route".
                #expect(errorMessage(response) == "key not found", "\(route): \(errorMessage(response))")
            }
        }
        let expectedCall: String? =
            switch route {
            case .putKey, .putV1Key, .demoSet: "put k"
            case .deleteV1Key: "delete"
            case .addMember, .addMemberByID: "add 4"
            case .removeMember, .removeMemberByID: "remove 4"
            case .transferLeadership: "transfer 1"
            default: nil
            }
        if let expectedCall {
            #expect(replica.calls.withLock { $0 } == [expectedCall], "\(route)")
        }
    }

    /// The handler's matcher, built from the same table, takes a route's sample path exactly
    /// when the route is a key route, as that route.
    @Test(arguments: APIRoute.allCases)
    func theHandlerTakesExactlyTheKeyRoutes(_ route: APIRoute) {
        let taken = route.keyMethod.flatMap { APIRoute.keyRequest(method: $0, path: Self.samplePath(route)[...]) }
        if route.keyMethod != nil {
            #expect(taken?.route == route && taken?.rawKey == "k", "\(route)")
        } else {
            // The same method and path is never taken as a key.
            let method: APIRoute.KeyMethod? =
                switch route.method {
                case .get: .get
                case .put: .put
                case .delete: .delete
                default: nil
                }
            if let method {
                #expect(APIRoute.keyRequest(method: method, path: Self.samplePath(route)[...]) == nil, "\(route)")
            }
        }
    }

    /// Every constant a route claims where a key route has its capture is refused as a key
    /// there: `GET /health` is the health route, never the key "health".
    @Test func constantSegmentsAreNeverKeys() {
        let firstSegments = Set(APIRoute.allCases.compactMap { $0.path.split(separator: "/").first }.filter { !$0.hasPrefix(":") })
        #expect(firstSegments == ["health", "v1", "set", "get", "metrics"])
        for segment in firstSegments {
            for method in [APIRoute.KeyMethod.put, .get, .delete] {
                #expect(APIRoute.keyRequest(method: method, path: "/\(segment)")  == nil, "\(method) /\(segment)")
            }
        }
        // Near misses are keys.
        #expect(APIRoute.keyRequest(method: .get, path: "/healthy")?.route == .getKey)
        #expect(APIRoute.keyRequest(method: .put, path: "/v1/kv/health")?.route == .putV1Key)
        #expect(APIRoute.keyRequest(method: .delete, path: "/k") == nil)  // DELETE /ID is membership
    }
}

extension APIRoute: CustomTestStringConvertible {
    public var testDescription: String { "\(method) /\(path)" }
}
