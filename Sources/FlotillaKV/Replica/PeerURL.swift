import Flotilla
import FlotillaHTTP

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
        guard let endpoint = HTTPEndpoint(parsing: text) else { throw PeerURLError(text: String(text)) }
        self.init(host: endpoint.host, port: endpoint.port, isTLS: endpoint.isTLS)
    }

    /// Parses a comma-separated list of peer URLs (spaces around the commas are allowed).
    public static func parseList(_ list: String) throws(PeerURLError) -> [PeerURL] {
        var urls: [PeerURL] = []
        for item in HTTPEndpoint.listItems(list) { urls.append(try PeerURL(parsing: item)) }
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
