import RaftNIO

/// A peer URL, `http://host:port` or, with peer TLS, `https://host:port`: where a node's raft
/// transport listens (`--cluster`, `POST /ID`, `/v1/members`). An IPv6 host is written in
/// brackets, `http://[::1]:12379`.
public struct PeerURL: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// `https`: the peer speaks mutual TLS.
    public var isTLS: Bool

    public init(host: String, port: Int, isTLS: Bool = false) {
        self.host = host
        self.port = port
        self.isTLS = isTLS
    }

    public init(_ address: TransportAddress, isTLS: Bool = false) {
        self.init(host: address.host, port: address.port, isTLS: isTLS)
    }

    public var address: TransportAddress { TransportAddress(host: host, port: port) }

    public var description: String { "\(isTLS ? "https" : "http")://\(address)" }

    /// Parses `http://host:port` or `https://host:port` (a trailing slash is allowed); throws
    /// `PeerURLError` saying what a peer URL looks like.
    public init(parsing text: some StringProtocol) throws(PeerURLError) {
        let bad = PeerURLError(text: String(text))
        let isTLS = text.hasPrefix("https://")
        guard isTLS || text.hasPrefix("http://") else { throw bad }
        var rest = Substring(text).dropFirst(isTLS ? "https://".count : "http://".count)
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
            (1...65535).contains(port)
        else { throw bad }
        var host = rest[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
        } else if host.contains(":") {
            throw bad
        }
        guard !host.isEmpty, !host.contains(where: { $0 == "/" || $0 == " " || $0 == "@" || $0 == "[" || $0 == "]" })
        else { throw bad }
        self.init(host: String(host), port: port, isTLS: isTLS)
    }

    /// Parses a comma-separated list of peer URLs (spaces around the commas are allowed).
    public static func parseList(_ list: String) throws(PeerURLError) -> [PeerURL] {
        var urls: [PeerURL] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: false) {
            var item = item
            while item.first == " " { item = item.dropFirst() }
            while item.last == " " { item = item.dropLast() }
            urls.append(try PeerURL(parsing: item))
        }
        return urls
    }
}

/// Text that is not a peer URL.
public struct PeerURLError: Error, Sendable, Hashable, CustomStringConvertible {
    public var text: String
    public var description: String {
        "\"\(text)\" is not a peer URL: give http://host:port (https:// with peer TLS), like http://127.0.0.1:12379"
    }
}
