import HTTPTypes
import Hummingbird

/// What keeps a web page in a browser on the same machine from using the API.
///
/// A page on any site can make the browser send requests to `http://127.0.0.1:12380`: a
/// `GET /set?key=…` from an `<img>`, a `POST /2` with a `text/plain` body from a form, neither of
/// which needs CORS. And a page whose name resolves to 127.0.0.1 (DNS rebinding) is even
/// same-origin with the API. Browsers say where a request comes from, so the API refuses:
///
/// - with 403, a cross-site request: `Sec-Fetch-Site: cross-site`, or an `Origin` that is not
///   this server (its scheme and authority differ from the request's `Host`), `null` included;
/// - with 421, on a loopback listener, a `Host` that is not a loopback name or address
///   (`localhost`, `127.0.0.0/8`, `[::1]`), which is how a rebound name shows.
///
/// Requests without these fields (curl, `flotilla` itself, any non-browser client) pass.
public struct BrowserProtection: Sendable, Hashable {
    /// Refuse cross-site requests with 403. On by default.
    public var refusesCrossSite: Bool
    /// Refuse a `Host` that is not a loopback name with 421: set when the API listens on loopback
    /// only (`flotilla serve` sets it for a loopback `--listen-host`).
    public var requiresLoopbackHost: Bool
    /// Origins (`scheme://host[:port]`, as a browser sends them) allowed to call the API, for a
    /// web UI served elsewhere.
    public var allowedOrigins: Set<String>

    public init(refusesCrossSite: Bool = true, requiresLoopbackHost: Bool = false, allowedOrigins: Set<String> = []) {
        self.refusesCrossSite = refusesCrossSite
        self.requiresLoopbackHost = requiresLoopbackHost
        self.allowedOrigins = allowedOrigins
    }

    enum Verdict: Equatable {
        case allow
        /// 403: the reason, for the error body.
        case crossSite(String)
        /// 421: the host that is not this server's.
        case misdirected(String)
    }

    /// The verdict on a request with these fields (nil when absent).
    func verdict(host: String?, origin: String?, fetchSite: String?) -> Verdict {
        if requiresLoopbackHost, let host, !Self.isLoopbackHost(host.utf8) {
            return .misdirected(host)
        }
        guard refusesCrossSite else { return .allow }
        if let origin, allowedOrigins.contains(origin) { return .allow }
        if let fetchSite, fetchSite.lowercased() == "cross-site" {
            return .crossSite("cross-site request refused (Sec-Fetch-Site: cross-site)")
        }
        if let origin {
            guard let host, Self.authority(ofOrigin: origin)?.lowercased() == host.lowercased() else {
                return .crossSite("cross-site request refused (Origin \(origin) is not this server)")
            }
        }
        return .allow
    }

    /// The error a request with these fields is refused with (403, 421), or nil to serve it:
    /// what both the router's middleware and `KeyRouteHandler` answer.
    func refusal(host: String?, origin: String?, fetchSite: String?) -> APIError? {
        switch verdict(host: host, origin: origin, fetchSite: fetchSite) {
        case .allow:
            return nil
        case .crossSite(let reason):
            return APIError(.forbidden, reason + "; browsers on other sites may not use this API")
        case .misdirected(let host):
            return APIError(
                .misdirectedRequest,
                "Host \(host) is not this server: it listens on loopback and answers only loopback names (localhost, 127.0.0.1, [::1])")
        }
    }

    /// `host[:port]` of `scheme://host[:port]`, or nil (`null`, or not an origin).
    static func authority(ofOrigin origin: String) -> Substring? {
        guard let separator = origin.firstRange(of: "://") else { return nil }
        let authority = origin[separator.upperBound...]
        return authority.isEmpty || authority.contains("/") ? nil : authority
    }

    /// Whether a `Host` value (`name[:port]` or `[v6][:port]`) names this machine's loopback:
    /// `localhost` (or a name under `.localhost`, RFC 6761), a dotted IPv4 address in
    /// 127.0.0.0/8, or `[::1]`. On bytes, so that the wire path checks the head it parsed; it
    /// allocates nothing (it runs on every request of a loopback listener).
    public static func isLoopbackHost<Bytes: BidirectionalCollection<UInt8>>(_ host: Bytes) -> Bool {
        let colon = UInt8(ascii: ":")
        if host.first == UInt8(ascii: "[") {
            guard let close = host.firstIndex(of: UInt8(ascii: "]")) else { return false }
            let rest = host[host.index(after: close)...]
            guard rest.isEmpty || rest.first == colon && isPort(rest.dropFirst()) else { return false }
            return host[host.index(after: host.startIndex)..<close].elementsEqual("::1".utf8)
        }
        var name = host[...]
        if let portColon = name.firstIndex(of: colon) {
            guard isPort(name[name.index(after: portColon)...]) else { return false }
            name = name[..<portColon]
        }
        if name.last == UInt8(ascii: ".") { name = name.dropLast() }  // a fully qualified "localhost."
        let localhost = "localhost".utf8
        func lowered(_ byte: UInt8) -> UInt8 { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte }
        if name.count >= localhost.count && name.suffix(localhost.count).lazy.map(lowered).elementsEqual(localhost) {
            let label = name.dropLast(localhost.count)
            if label.isEmpty || label.count > 1 && label.last == UInt8(ascii: ".") { return true }
        }
        // 127.a.b.c, each part a decimal of at most 255.
        var parts = 0
        var value = 0
        var digits = 0
        var first = -1
        for byte in name {
            if byte == UInt8(ascii: ".") {
                guard digits > 0 else { return false }
                if parts == 0 { first = value }
                parts += 1
                (value, digits) = (0, 0)
            } else if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                digits += 1
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                guard digits <= 3, value <= 255 else { return false }
            } else {
                return false
            }
        }
        return parts == 3 && digits > 0 && first == 127
    }

    private static func isPort<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool {
        (1...5).contains(bytes.count) && bytes.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }
}

/// The router's side of `BrowserProtection`: first in the chain, before any route runs.
struct BrowserProtectionMiddleware<Context: RequestContext>: RouterMiddleware {
    let protection: BrowserProtection

    static var secFetchSite: HTTPField.Name { HTTPField.Name("Sec-Fetch-Site")! }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let refusal = protection.refusal(
            host: request.head.authority, origin: request.headers[.origin], fetchSite: request.headers[Self.secFetchSite])
        {
            return refusal.apiResponse.routerResponse
        }
        return try await next(request, context)
    }
}
