import ArgumentParser
import FlotillaCLI

/// `flotilla certs DIR`: a development CA and certificates for a cluster (Docs/SERVER.md, Security).
struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a development CA, node certificates and a client certificate (PEM) into DIR.",
        discussion: """
            DIR gets ca.pem and ca-key.pem (the CA), node-N.pem and node-N-key.pem for each node \
            (serverAuth and clientAuth, valid for --hosts), and client.pem and client-key.pem \
            (clientAuth). Use them with serve's --peer-cert-file/--peer-key-file/--peer-trusted-ca-file \
            and --cert-file/--key-file, and the clients' --cacert/--cert/--key. Keys are written \
            with mode 0600. An existing CA in DIR is never overwritten.
            """)

    @Argument(help: "The directory to write into (created if needed).")
    var directory: String

    @Option(help: "Host names and IP addresses the node certificates are valid for, comma-separated.")
    var hosts: String = "localhost,127.0.0.1,::1"

    @Option(help: "Number of node certificates.")
    var nodes: Int = 3

    @Option(help: "Days the certificates are valid.")
    var days: Int = 365

    func validate() throws {
        guard (1...100).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 100") }
        guard days >= 1 else { throw ValidationError("--days must be at least 1") }
        guard !hostList.isEmpty else { throw ValidationError("--hosts must name at least one host") }
    }

    var hostList: [String] { hosts.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty } }

    func run() throws {
        let maker = DevelopmentCertificates(hosts: hostList, nodes: nodes, validity: Double(days) * 86_400)
        do {
            for path in try maker.write(try maker.make(), to: directory) { print(path) }
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
