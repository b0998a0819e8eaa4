/// A URL of the form `http://host:port` or `https://host:port`: a node's client endpoint
/// (`--endpoints`, `flotilla bench`) or its peer URL (`--cluster`, `/v1/members`). An IPv6 host
/// is written in brackets, `http://[::1]:12379`, and held without them. The one parser of such
/// URLs, for the server and its clients alike: nothing else of URLs is needed (no path, user
/// or query), and a general URL type would accept, and so let through, what a node cannot use.
package struct HTTPEndpoint: Hashable, Sendable, CustomStringConvertible {
    package var host: String
    package var port: Int
    /// `https`: the endpoint speaks TLS.
    package var isTLS: Bool

    package init(host: String, port: Int, isTLS: Bool) {
        self.host = host
        self.port = port
        self.isTLS = isTLS
    }

    /// Parses `http://host:port` or `https://host:port`, trailing slashes allowed; nil for
    /// anything else: another scheme, no port or one outside 1…65535, an empty host, a host
    /// with `/`, `@`, a space or an unbracketed `:`. Callers throw their own error, saying what
    /// the URL was for.
    package init?(parsing text: some StringProtocol) {
        let isTLS = text.hasPrefix("https://")
        guard isTLS || text.hasPrefix("http://") else { return nil }
        var rest = Substring(text).dropFirst(isTLS ? "https://".count : "http://".count)
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = rest[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
        } else if host.contains(":") {
            return nil
        }
        guard !host.isEmpty, !host.contains(where: { $0 == "/" || $0 == " " || $0 == "@" || $0 == "[" || $0 == "]" })
        else { return nil }
        self.init(host: String(host), port: port, isTLS: isTLS)
    }

    /// `host:port`, an IPv6 host in brackets.
    package var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The URL, normalized: no trailing slash.
    package var description: String { "\(isTLS ? "https" : "http")://\(authority)" }

    /// The items of a comma-separated list, without the spaces around them: what a list of URLs
    /// is split into before each is parsed.
    package static func listItems(_ list: String) -> [Substring] {
        list.split(separator: ",", omittingEmptySubsequences: false).map { item in
            var item = item
            while item.first == " " { item = item.dropFirst() }
            while item.last == " " { item = item.dropLast() }
            return item
        }
    }
}
