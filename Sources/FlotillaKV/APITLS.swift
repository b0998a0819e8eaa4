import NIOSSL
import RaftNIO

/// HTTPS for the client API (etcd's `--cert-file`, `--key-file`, and with `--client-cert-auth`
/// `--trusted-ca-file`): the server presents its certificate, and, when given a client CA,
/// requires every client to present one of that CA's.
public struct APITLS: Sendable {
    let context: NIOSSLContext
    /// Whether clients must present a certificate.
    public let requiresClientCertificates: Bool

    public init(certificateFile: String, keyFile: String, clientCAFile: String? = nil) throws(TLSFileError) {
        let chain = try Self.load(certificateFile, as: "certificate") { try NIOSSLCertificate.fromPEMFile(certificateFile) }
        let key = try Self.load(keyFile, as: "private key") { try NIOSSLPrivateKey(file: keyFile, format: .pem) }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let clientCAFile {
            let roots = try Self.load(clientCAFile, as: "client CA certificate") { try NIOSSLCertificate.fromPEMFile(clientCAFile) }
            // A client's address says nothing of who it is: its certificate's chain does.
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(roots)
        }
        requiresClientCertificates = clientCAFile != nil
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSFileError(
                path: certificateFile,
                description: "\(certificateFile) and \(keyFile) do not make a TLS identity (\(error)): is the key the certificate's?")
        }
    }

    private static func load<T>(_ path: String, as what: String, _ body: () throws -> T) throws(TLSFileError) -> T {
        do {
            return try body()
        } catch {
            throw TLSFileError(path: path, description: "cannot read the \(what) in \(path) (\(error)): it must exist, be readable, and hold PEM")
        }
    }

    func handler() -> NIOSSLServerHandler { NIOSSLServerHandler(context: context) }
}
