import HTTPTypes

/// Every route of the client API (Docs/SERVER.md), in the order the router is given them: the
/// one table from which both the router (`HTTPAPI.addRoutes`) and the key-route handler
/// (`KeyRouteHandler`, through `APIRoute.keyRequest(method:path:)`) are built, so that a route
/// added here is served by the router and, if it claims a first path segment, is never taken
/// for a key by the handler.
///
/// Order matters to the router: among siblings in its trie the first that matches wins, so
/// constant paths come before the captures beside them, and the root captures share one
/// parameter name (`:key`), one per trie node.
enum APIRoute: CaseIterable, Sendable {
    case health
    case status
    /// hashicorp raft-demo: `GET /set?key=K&value=V`.
    case demoSet
    /// hashicorp raft-demo: `GET /get?key=K`.
    case demoGet
    case putV1Key, getV1Key, deleteV1Key
    /// Only when the API was given a metrics registry.
    case metrics
    case listMembers, addMember, removeMember
    case transferLeadership
    /// raftexample: `POST /ID`, body = the peer URL.
    case addMemberByID
    /// raftexample: `DELETE /ID`.
    case removeMemberByID
    /// raftexample: `PUT /KEY`, `GET /KEY`.
    case putKey, getKey

    var method: HTTPRequest.Method {
        switch self {
        case .health, .status, .demoSet, .demoGet, .getV1Key, .metrics, .listMembers, .getKey: .get
        case .putV1Key, .putKey: .put
        case .deleteV1Key, .removeMember, .removeMemberByID: .delete
        case .addMember, .transferLeadership, .addMemberByID: .post
        }
    }

    /// The path pattern in the router's syntax: `/`-separated segments, `:name` a capture.
    var path: String {
        switch self {
        case .health: "health"
        case .status: "v1/status"
        case .demoSet: "set"
        case .demoGet: "get"
        case .putV1Key, .getV1Key, .deleteV1Key: "v1/kv/:key"
        case .metrics: "metrics"
        case .listMembers, .addMember: "v1/members"
        case .removeMember: "v1/members/:id"
        case .transferLeadership: "v1/leader"
        case .addMemberByID, .removeMemberByID, .putKey, .getKey: ":key"
        }
    }

    /// What the route does to a key, for the routes `KeyRouteHandler` serves as well; nil for
    /// the others, which only the router serves.
    var keyMethod: KeyMethod? {
        switch self {
        case .putV1Key, .putKey: .put
        case .getV1Key, .getKey: .get
        case .deleteV1Key: .delete
        default: nil
        }
    }

    enum KeyMethod: Sendable, Hashable {
        case put, get, delete
    }
}

// MARK: - The key routes, matched without the router

extension APIRoute {
    /// The key route a request for `path` (no query, no fragment) with `method` reaches, and the
    /// raw (percent-encoded) key segment; nil when the router would send it elsewhere or when
    /// it is not plainly a key route (an empty segment, a query): the router then decides.
    static func keyRequest(method: KeyMethod, path: Substring) -> (route: APIRoute, rawKey: Substring)? {
        guard path.first == "/" else { return nil }
        let rest = path.dropFirst()
        for matcher in keyRouteMatchers where matcher.method == method {
            if let rawKey = matcher.match(rest) { return (matcher.route, rawKey) }
        }
        return nil
    }

    /// One matcher per key route, built once from the table.
    private static let keyRouteMatchers: [KeyRouteMatcher] = allCases.compactMap { route in
        route.keyMethod.flatMap { KeyRouteMatcher(route: route, method: $0) }
    }
}

/// A key route's pattern as constant segments and one capture, with the constants any route of
/// the table has where the capture is (after the same constants): a request whose segment there
/// is one of those belongs to that route, not to a key.
private struct KeyRouteMatcher: Sendable {
    let route: APIRoute
    let method: APIRoute.KeyMethod
    /// The pattern's segments; nil marks the capture.
    let segments: [Substring?]
    /// The constants other routes claim at the capture's position.
    let reserved: Set<Substring>

    init?(route: APIRoute, method: APIRoute.KeyMethod) {
        let pattern = route.path.split(separator: "/", omittingEmptySubsequences: false)
        let segments: [Substring?] = pattern.map { $0.hasPrefix(":") ? nil : $0 }
        guard segments.filter({ $0 == nil }).count == 1, let capture = segments.firstIndex(where: { $0 == nil }) else { return nil }
        let prefix = segments[..<capture]
        var reserved: Set<Substring> = []
        for other in APIRoute.allCases {
            let otherSegments = other.path.split(separator: "/", omittingEmptySubsequences: false)
            guard otherSegments.count > capture,
                  zip(prefix, otherSegments).allSatisfy({ $0 == $1 }),
                  !otherSegments[capture].hasPrefix(":")
            else { continue }
            reserved.insert(otherSegments[capture])
        }
        self.route = route
        self.method = method
        self.segments = segments
        self.reserved = reserved
    }

    /// The raw key when `path` (without its leading slash) fits the pattern: the same number of
    /// segments, the constants equal, the capture non-empty and not reserved.
    func match(_ path: Substring) -> Substring? {
        var rest = path
        var key: Substring?
        for (position, segment) in segments.enumerated() {
            let end = rest.firstIndex(of: "/") ?? rest.endIndex
            let part = rest[..<end]
            if let segment {
                guard part == segment else { return nil }
            } else {
                guard !part.isEmpty, !reserved.contains(part) else { return nil }
                key = part
            }
            if position == segments.count - 1 {
                guard end == rest.endIndex else { return nil }
            } else {
                guard end != rest.endIndex else { return nil }
                rest = rest[rest.index(after: end)...]
            }
        }
        return key
    }
}
