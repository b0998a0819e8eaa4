import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension RealProcesses {
    /// A three-node cluster with TLS both ways, its certificates made by `flotilla certs`: the
    /// client subcommands, curl and `flotilla bench` work over HTTPS with a client certificate;
    /// clients without one, plaintext clients and plaintext peers are refused; and `flotilla
    /// cluster --tls` does all of it in one command.
    @Suite(.needsFlotillaExecutable, .serialized)
    struct TLSClusterTests {
        /// curl over HTTPS with the cluster's CA and, unless `clientCertificate` is false, the
        /// client certificate.
        static func https(
            _ method: String, _ url: String, certs: String, body: String? = nil, clientCertificate: Bool = true
        ) -> HTTPResponse {
            var tls = ["--cacert", "\(certs)/ca.pem"]
            if clientCertificate { tls += ["--cert", "\(certs)/client.pem", "--key", "\(certs)/client-key.pem"] }
            return http(method, url, body: body, timeout: 5, curlArguments: tls)
        }

        static func tlsArguments(node k: Int, certs: String) -> [String] {
            [
                "--peer-cert-file", "\(certs)/node-\(k).pem", "--peer-key-file", "\(certs)/node-\(k)-key.pem",
                "--peer-trusted-ca-file", "\(certs)/ca.pem",
                "--cert-file", "\(certs)/node-\(k).pem", "--key-file", "\(certs)/node-\(k)-key.pem",
                "--trusted-ca-file", "\(certs)/ca.pem", "--client-cert-auth",
            ]
        }

        @Test(.timeLimit(.minutes(3)))
        func aTLSClusterServesOnlyCertifiedClientsAndPeers() async throws {
            let executable = try #require(flotillaExecutable)
            let cluster = LocalTestCluster(executable: executable, size: 3)
            defer { cluster.close() }
            let certs = cluster.root + "/certs"
            let made = run(executable, ["certs", certs, "--nodes", "3"])
            #expect(made.status == 0, "\(made.output)")
            let keyMode = try FileManager.default.attributesOfItem(atPath: certs + "/node-1-key.pem")[.posixPermissions] as? Int
            #expect(keyMode == 0o600)
            // A second run never overwrites the CA.
            #expect(run(executable, ["certs", certs]).status != 0)

            let peers = cluster.nodes.map { "https://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
            for node in cluster.nodes {
                try node.start(executable: executable, cluster: peers, extraArguments: Self.tlsArguments(node: node.id, certs: certs))
            }
            let n1 = "https://127.0.0.1:\(cluster.node(1).httpPort)"
            let n3 = "https://127.0.0.1:\(cluster.node(3).httpPort)"
            let written = await eventually(within: 20) { Self.https("PUT", "\(n1)/greeting", certs: certs, body: "hello").status == 204 }
            #expect(written, "no write over HTTPS\n\(cluster.logs)")
            #expect(Self.https("GET", "\(n3)/greeting", certs: certs).body == "hello")

            // The client subcommands, with etcdctl's flags.
            let tlsFlags = ["--cacert", "\(certs)/ca.pem", "--cert", "\(certs)/client.pem", "--key", "\(certs)/client-key.pem"]
            let put = run(executable, ["put", "cli-key", "cli-value", "--endpoints", n3] + tlsFlags)
            #expect(put.status == 0, "\(put.output)")
            let get = run(executable, ["get", "cli-key", "--endpoints", n1] + tlsFlags)
            #expect(get.status == 0 && get.output.contains("cli-value"), "\(get.output)")
            let members = Self.https("GET", "\(n1)/v1/members", certs: certs).body
            #expect(members.contains("\"peerURL\":\"https://127.0.0.1:"), "\(members)")

            // flotilla bench over HTTPS, failing on any error.
            let bench = run(executable, ["bench", "--endpoints", n1, "--total", "300", "--clients", "8", "--conns", "2", "--no-progress"] + tlsFlags)
            #expect(bench.status == 0, "\(bench.output)")

            // No client certificate, plain HTTP to the HTTPS port, a peer URL of the wrong scheme:
            // refused.
            #expect(Self.https("GET", "\(n1)/greeting", certs: certs, clientCertificate: false).status == 0)
            #expect(http("GET", "http://127.0.0.1:\(cluster.node(1).httpPort)/greeting").status != 200)
            let wrongScheme = Self.https("POST", "\(n1)/4", certs: certs, body: "http://127.0.0.1:9")
            #expect(wrongScheme.status == 400 && wrongScheme.body.contains("https://"), "\(wrongScheme)")

            // A plaintext "member 2" on node 1's peer port: its bytes never get past TLS.
            PeerAttackTests.send(PeerAttackTests.messages(from: 2, to: 1, [
                .init(type: .heartbeat, to: 1, from: 2, term: 1 << 40, commit: 1 << 40),
            ]), to: cluster.node(1).peerPort)
            #expect(cluster.node(1).isRunning)
            let logged = await eventually(within: 5) { cluster.node(1).log.contains("refusing peer connection: TLS") }
            #expect(logged, "the refusal is not logged")
            let status = Self.https("GET", "\(n1)/v1/status", certs: certs).body
            #expect(!status.contains("\(1 << 40)"), "\(status)")

            // A restarted node catches up inside TLS.
            cluster.node(3).stop(SIGTERM)
            // (If node 3 led, the others elect a new leader first.)
            let wroteWithout3 = await eventually(within: 20) {
                Self.https("PUT", "\(n1)/after", certs: certs, body: "restart").status == 204
            }
            #expect(wroteWithout3, "\(cluster.logs)")
            try cluster.node(3).start(executable: executable, cluster: peers, extraArguments: Self.tlsArguments(node: 3, certs: certs))
            let caughtUp = await eventually(within: 20) { Self.https("GET", "\(n3)/after", certs: certs).body == "restart" }
            #expect(caughtUp, "\(cluster.node(3).log.suffix(3000))")
        }

        /// Each TLS misconfiguration stops `serve` at once with a message that says what to fix.
        @Test(.timeLimit(.minutes(1)))
        func badTLSFlagsAreClearErrors() throws {
            let executable = try #require(flotillaExecutable)
            let root = NSTemporaryDirectory() + "flotilla-tls-flags-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: root) }
            let certs = root + "/certs"
            #expect(run(executable, ["certs", certs, "--nodes", "1"]).status == 0)
            try "not a certificate\n".write(toFile: root + "/garbage.pem", atomically: true, encoding: .utf8)
            let port = freePort()
            let peer = ["--id", "1", "--data-dir", root + "/data", "--port", "\(freePort())"]
            let peerTLS = ["--peer-cert-file", "\(certs)/node-1.pem", "--peer-key-file", "\(certs)/node-1-key.pem",
                           "--peer-trusted-ca-file", "\(certs)/ca.pem"]
            let cases: [([String], String)] = [
                (peer + ["--cluster", "https://127.0.0.1:\(port)", "--peer-cert-file", root + "/missing.pem",
                         "--peer-key-file", "\(certs)/node-1-key.pem", "--peer-trusted-ca-file", "\(certs)/ca.pem"],
                 "cannot read the certificate in \(root)/missing.pem"),
                (peer + ["--cluster", "https://127.0.0.1:\(port)", "--peer-cert-file", root + "/garbage.pem",
                         "--peer-key-file", "\(certs)/node-1-key.pem", "--peer-trusted-ca-file", "\(certs)/ca.pem"],
                 "hold PEM"),
                (peer + ["--cluster", "https://127.0.0.1:\(port)", "--peer-cert-file", "\(certs)/node-1.pem",
                         "--peer-key-file", "\(certs)/client-key.pem", "--peer-trusted-ca-file", "\(certs)/ca.pem"],
                 "is the key the certificate's?"),
                (peer + ["--cluster", "http://127.0.0.1:\(port)"] + peerTLS, "give every peer URL as https://"),
                (peer + ["--cluster", "https://127.0.0.1:\(port)"], "which needs peer TLS"),
                (peer + ["--cluster", "https://127.0.0.1:\(port)", "--peer-cert-file", "\(certs)/node-1.pem"],
                 "go together"),
                (peer + ["--cert-file", "\(certs)/node-1.pem"], "--cert-file and --key-file go together"),
                (peer + ["--cert-file", "\(certs)/node-1.pem", "--key-file", "\(certs)/node-1-key.pem", "--client-cert-auth"],
                 "--client-cert-auth needs"),
                (peer + ["--trusted-ca-file", "\(certs)/ca.pem"], "add --client-cert-auth"),
            ]
            for (arguments, message) in cases {
                let (status, output) = run(executable, ["serve"] + arguments)
                #expect(status != 0, "\(arguments)")
                #expect(output.contains(message), "\(arguments): \(output)")
            }
        }

        /// `flotilla cluster --nodes 3 --tls`: certificates made in its directory, TLS both ways.
        @Test(.timeLimit(.minutes(2)))
        func theClusterCommandWithTLS() async throws {
            let executable = try #require(flotillaExecutable)
            let root = NSTemporaryDirectory() + "flotilla-cluster-tls-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: root) }
            let base = try #require(freeBasePort(nodes: 3), "no free ports for a three-node cluster")
            let command = try ClusterCommand(executable: executable, root: root, basePort: base, log: "tls.log", extraArguments: ["--tls"])
            let certs = root + "/data/certs"
            let wrote = await eventually(within: 30) {
                Self.https("PUT", "https://127.0.0.1:\(base + 1)/k", certs: certs, body: "v").status == 204
            }
            #expect(wrote, "\(command.output)")
            #expect(Self.https("GET", "https://127.0.0.1:\(base + 20_001)/k", certs: certs).body == "v")
            #expect(command.output.contains("https://127.0.0.1:\(base)"), "\(command.output)")
            #expect(command.stop(SIGTERM) == 0, "\(command.output)")
        }
    }
}
