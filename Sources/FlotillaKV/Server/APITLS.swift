import NIOSSL
import Flotilla

/// HTTPS for the client API (etcd's `--cert-file`, `--key-file`, and with `--client-cert-auth`
/// `--trusted-ca-file`): the server presents its certificate, and, when given a client CA,
/// requires every client to present one of that CA's.
public struct APITLS: Sendable {
    let context: NIOSSLContext

    public init(certificateFile: String, keyFile: String, clientCAFile: String? = nil) throws(TLSFileError) {
        let chain = try TLSFileError.certificates(in: certificateFile, as: "certificate")
        let key = try TLSFileError.privateKey(in: keyFile)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let clientCAFile {
            let roots = try TLSFileError.certificates(in: clientCAFile, as: "client CA certificate")
            // A client's address says nothing of who it is: its certificate's chain does.
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(roots)
        }
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSFileError.mismatch(certificateFile: certificateFile, keyFile: keyFile, error)
        }
    }

    func handler() -> NIOSSLServerHandler { NIOSSLServerHandler(context: context) }
}
