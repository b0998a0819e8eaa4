import ArgumentParser
import NIOSSL

/// TLS for the client subcommands and `flotilla bench` (etcdctl's `--cacert`, `--cert`,
/// `--key`): used for `https://` endpoints. Without `--cacert` the system's trust roots verify
/// the server; `--cert` and `--key` present a client certificate (for `--client-cert-auth`).
public struct ClientTLSOptions: ParsableArguments {
    @Option(help: "Verify https:// endpoints against this CA (PEM) instead of the system's.")
    public var cacert: String?

    @Option(help: "Present this client certificate (PEM) to https:// endpoints, with --key.")
    public var cert: String?

    @Option(help: "The private key of --cert (PEM).")
    public var key: String?

    public init() {}

    public func validate() throws {
        guard (cert == nil) == (key == nil) else { throw ValidationError("--cert and --key go together: give both, or neither") }
    }

    /// The client TLS configuration: the server's certificate verified (name and chain), the
    /// client's presented when given.
    public func configuration() throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let cacert {
            tls.trustRoots = .certificates(try load(cacert, "CA certificate") { try NIOSSLCertificate.fromPEMFile(cacert) })
        }
        if let cert, let key {
            tls.certificateChain = try load(cert, "certificate") { try NIOSSLCertificate.fromPEMFile(cert) }.map { .certificate($0) }
            tls.privateKey = .privateKey(try load(key, "private key") { try NIOSSLPrivateKey(file: key, format: .pem) })
        }
        return tls
    }

    private func load<T>(_ path: String, _ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw ValidationError("cannot read the \(what) in \(path) (\(error)): it must exist, be readable, and hold PEM")
        }
    }
}
