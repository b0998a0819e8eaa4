import NIOCore
import NIOSSL
import X509

/// Mutual TLS between the nodes of a cluster (Docs/TRANSPORT.md §7), on swift-nio-ssl: both
/// sides present a certificate, both verify the other's against the cluster's CA, and the
/// dialling side also checks that the listener's certificate names the host of its member URL
/// (a DNS name, or an IP address SAN matched against the address it connected to). Message and
/// snapshot streams alike run inside it; the preamble and frames are unchanged.
///
/// Certificates should carry both `serverAuth` and `clientAuth` extended key usages (every node
/// is a server to some peers and a client of others); `flotilla certs` makes such ones.
public struct PeerTLS: Sendable {
    /// The listener's side: presents the node's certificate and requires the dialler's.
    let serverContext: NIOSSLContext
    /// The dialler's side: presents the node's certificate and verifies the listener's.
    let clientContext: NIOSSLContext

    /// From certificates and a key already loaded. `trustRoots` are the CA certificates a peer's
    /// certificate must chain to.
    public init(certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey, trustRoots: [NIOSSLCertificate]) throws {
        var server = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificateChain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        // Whoever dials in must present a certificate of this CA. A dialler's address says
        // nothing about its identity (it comes from an ephemeral port on any interface), so its
        // certificate is checked for its chain, not for a host name.
        server.certificateVerification = .noHostnameVerification
        server.trustRoots = .certificates(trustRoots)
        server.minimumTLSVersion = .tlsv12

        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = certificateChain.map { .certificate($0) }
        client.privateKey = .privateKey(privateKey)
        client.certificateVerification = .fullVerification
        client.trustRoots = .certificates(trustRoots)
        client.minimumTLSVersion = .tlsv12

        serverContext = try NIOSSLContext(configuration: server)
        clientContext = try NIOSSLContext(configuration: client)
    }

    /// From PEM files: the node's certificate (chain), its private key, and the CA file that
    /// peers' certificates must chain to (etcd's `--peer-cert-file`, `--peer-key-file`,
    /// `--peer-trusted-ca-file`).
    public init(certificateFile: String, keyFile: String, trustedCAFile: String) throws(TLSFileError) {
        let chain = try TLSFileError.certificates(in: certificateFile, as: "certificate")
        let key = try TLSFileError.privateKey(in: keyFile)
        let roots = try TLSFileError.certificates(in: trustedCAFile, as: "CA certificate")
        do {
            try self.init(certificateChain: chain, privateKey: key, trustRoots: roots)
        } catch {
            throw TLSFileError.mismatch(certificateFile: certificateFile, keyFile: keyFile, error)
        }
    }

    func serverHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: serverContext)
    }

    /// A client handler that verifies the listener at `host`: by name for a DNS name (also sent
    /// as SNI), by the connected address for an IP address (which SNI may not carry).
    func clientHandler(host: String) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: clientContext, serverHostname: Self.isIPAddress(host) ? nil : host)
    }

    /// Whether `certificate`'s subject alternative names include `host`: an IP address SAN for an
    /// IP address (in any notation), a DNS name SAN for a name (case-insensitive; a `*.` wildcard
    /// stands for one label).
    static func certificate(_ certificate: NIOSSLCertificate, names host: String) -> Bool {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der),
            let names = try? parsed.extensions.subjectAlternativeNames
        else { return false }
        if let wanted = try? SocketAddress(ipAddress: host, port: 0).ipAddress {
            return names.contains { name in
                guard case .ipAddress(let bytes) = name,
                    let address = try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes.bytes), port: 0)
                else { return false }
                return address.ipAddress == wanted
            }
        }
        let wanted = host.lowercased()
        return names.contains { name in
            guard case .dnsName(let dns) = name else { return false }
            let pattern = dns.lowercased()
            if pattern.hasPrefix("*."), let dot = wanted.firstIndex(of: "."), dot != wanted.startIndex {
                return wanted[dot...] == pattern.dropFirst()
            }
            return pattern == wanted
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    /// Whether `error` came from TLS: a handshake or certificate failure, worth a warning (a
    /// misconfigured or foreign peer), not the debug line of a plain connection reset.
    static func isTLSError(_ error: any Error) -> Bool {
        error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError
    }
}

/// A TLS file that cannot be used: which one, and why.
public struct TLSFileError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var description: String

    public init(path: String, description: String) {
        self.path = path
        self.description = description
    }

    /// The PEM certificates in `path` (`what` names them in the error).
    public static func certificates(in path: String, as what: String) throws(TLSFileError) -> [NIOSSLCertificate] {
        try loading(path, as: what) { try NIOSSLCertificate.fromPEMFile(path) }
    }

    /// The PEM private key in `path`.
    public static func privateKey(in path: String) throws(TLSFileError) -> NIOSSLPrivateKey {
        try loading(path, as: "private key") { try NIOSSLPrivateKey(file: path, format: .pem) }
    }

    /// A certificate and key that do not go together (or that TLS refuses).
    public static func mismatch(certificateFile: String, keyFile: String, _ error: any Error) -> TLSFileError {
        TLSFileError(
            path: certificateFile,
            description: "\(certificateFile) and \(keyFile) do not make a TLS identity (\(error)): is the key the certificate's?")
    }

    static func loading<T>(_ path: String, as what: String, _ load: () throws -> T) throws(TLSFileError) -> T {
        do {
            return try load()
        } catch {
            throw TLSFileError(
                path: path,
                description: "cannot read the \(what) in \(path) (\(error)): it must exist, be readable, and hold PEM")
        }
    }
}
