import FlotillaCLI
import NIOCore
import NIOPosix
import NIOSSL
import Raft
import Testing

@testable import RaftNIO

/// Mutual TLS between transports, with certificates made in the test: messages and snapshots
/// flow inside it; a plaintext dialler, a certificate of another CA, and a listener whose
/// certificate does not name its host are all refused, and deliver nothing.
@Suite("Transport TLS", .serialized)
struct TransportTLSTests {
    /// One CA's certificates for three nodes, valid for 127.0.0.1.
    static let cluster = try! DevelopmentCertificates(hosts: ["127.0.0.1", "localhost"], nodes: 3).make()
    /// Another CA's.
    static let stranger = try! DevelopmentCertificates(hosts: ["127.0.0.1"], nodes: 1).make()
    static func tls(_ issued: DevelopmentCertificates.Issued, ca: DevelopmentCertificates.Issued) throws -> PeerTLS {
        try PeerTLS(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(issued.certificatePEM.utf8)),
            privateKey: try NIOSSLPrivateKey(bytes: Array(issued.keyPEM.utf8), format: .pem),
            trustRoots: try NIOSSLCertificate.fromPEMBytes(Array(ca.certificatePEM.utf8)))
    }

    static func node(_ id: UInt64, tls: PeerTLS?, group: any EventLoopGroup) async throws -> TransportNode {
        try await TransportNode.start(id: id, group: group) { $0.tls = tls }
    }

    @Test(.timeLimit(.minutes(1)))
    func messagesAndSnapshotsFlowInsideMutualTLS() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let a = try await Self.node(1, tls: try Self.tls(Self.cluster.nodes[0], ca: Self.cluster.ca), group: group)
        let b = try await Self.node(2, tls: try Self.tls(Self.cluster.nodes[1], ca: Self.cluster.ca), group: group)
        a.transport.addPeer(id: 2, address: b.address)
        b.transport.addPeer(id: 1, address: a.address)
        let messages = everyMessageType(from: 1, to: 2)
        a.transport.send(messages)
        let snapshot = Message(type: .snapshot, to: 2, from: 1, term: 3, snapshot: Snapshot(
            data: (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) },
            metadata: SnapshotMetadata(confState: ConfState(voters: [1, 2]), index: 99, term: 3)))
        a.transport.send([snapshot])
        let received = try await b.received.wait { $0.count == messages.count + 1 }
        #expect(received.filter { $0.type != .snapshot } == messages)
        #expect(received.first { $0.type == .snapshot } == snapshot)
        try await a.events.wait { $0.contains(.snapshot(2, .finish)) }
        await a.transport.shutdown()
        await b.transport.shutdown()
        try await group.shutdownGracefully()
    }

    enum Intruder: String, CaseIterable, Sendable {
        /// No TLS at all: the wire format in the clear.
        case plaintext
        /// TLS with a certificate of another CA.
        case otherCA
        /// TLS without a client certificate.
        case noCertificate
    }

    /// Node 2 (TLS) is dialled by an intruder claiming to be member 1: nothing is delivered,
    /// and the real member 1 still gets through afterwards.
    @Test(.timeLimit(.minutes(1)), arguments: Intruder.allCases)
    func intrudersAreRefused(_ intruder: Intruder) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let b = try await Self.node(2, tls: try Self.tls(Self.cluster.nodes[1], ca: Self.cluster.ca), group: group)
        let intruderTLS: PeerTLS? = switch intruder {
        case .plaintext: nil
        case .otherCA: try Self.tls(Self.stranger.nodes[0], ca: Self.cluster.ca)
        case .noCertificate: nil
        }
        let fake = try await Self.node(1, tls: intruderTLS, group: group)
        b.transport.addPeer(id: 1, address: fake.address)
        if intruder == .noCertificate {
            // A TLS client that trusts the cluster's CA but has no certificate of its own.
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(Self.cluster.ca.certificatePEM.utf8)))
            let context = try NIOSSLContext(configuration: configuration)
            var bytes = ByteBuffer()
            Preamble(kind: .messages, clusterID: 0xC1, from: 1, to: 2).write(to: &bytes)
            try FrameEncoder().encode(data: .messages([Message(type: .heartbeat, to: 2, from: 1, term: 666)]), out: &bytes)
            let channel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    }
                }
                .connect(host: "127.0.0.1", port: b.port).get()
            try? await channel.writeAndFlush(bytes).get()
            try? await channel.closeFuture.get()  // the listener refuses the handshake
        } else {
            fake.transport.addPeer(id: 2, address: b.address)
            for i in 0..<20 { fake.transport.send([Message(type: .heartbeat, to: 2, from: 1, term: 666, commit: UInt64(i))]) }
            try await fake.events.wait("the intruder's stream failing") { $0.contains(.unreachable(2)) }
        }
        #expect(b.received.snapshot.isEmpty, "an intruder's message was delivered")

        // The real node 1 is served.
        await fake.transport.shutdown()
        let real = try await Self.node(1, tls: try Self.tls(Self.cluster.nodes[0], ca: Self.cluster.ca), group: group)
        b.transport.addPeer(id: 1, address: real.address)
        real.transport.addPeer(id: 2, address: b.address)
        try await b.received.wait("a member's message after the intruder") { _ in
            real.transport.send([Message(type: .heartbeat, to: 2, from: 1, term: 1)])
            return !b.received.snapshot.isEmpty
        }
        #expect(b.received.snapshot.allSatisfy { $0.term == 1 })
        await real.transport.shutdown()
        await b.transport.shutdown()
        try await group.shutdownGracefully()
    }

    /// The dialler checks that the listener's certificate names the host of its member URL: a
    /// certificate of the cluster's CA for another host is refused by the dialler.
    @Test(.timeLimit(.minutes(1)))
    func aListenerWhoseCertificateNamesAnotherHostIsRefused() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        // Same CA as the cluster, but valid for db.example.com only.
        let set = try DevelopmentCertificates(hosts: ["db.example.com"], nodes: 1).make()
        let a = try await Self.node(1, tls: try Self.tls(set.nodes[0], ca: set.ca), group: group)
        let impostor = try await Self.node(2, tls: try Self.tls(set.nodes[0], ca: set.ca), group: group)
        impostor.transport.addPeer(id: 1, address: a.address)
        a.transport.addPeer(id: 2, address: impostor.address)  // dialled as 127.0.0.1
        for _ in 0..<5 { a.transport.send([Message(type: .heartbeat, to: 2, from: 1, term: 1)]) }
        try await a.events.wait("the dial failing verification") { $0.contains(.unreachable(2)) }
        #expect(impostor.received.snapshot.isEmpty)
        await a.transport.shutdown()
        await impostor.transport.shutdown()
        try await group.shutdownGracefully()
    }

    /// The listener's side of peer identity: the dialler's certificate must name the host of the
    /// member it claims to be. A certificate of the cluster's CA for 127.0.0.1 speaks as the
    /// member on 127.0.0.1, but not as the member on `localhost`.
    @Test(.timeLimit(.minutes(1)))
    func aCertificateSpeaksOnlyForTheHostItNames() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let b = try await Self.node(2, tls: try Self.tls(Self.cluster.nodes[1], ca: Self.cluster.ca), group: group)
        // A certificate of the cluster's own CA, for 127.0.0.1 only.
        let impostorCertificates = try DevelopmentCertificates(hosts: ["127.0.0.1"], nodes: 1).make(signedBy: Self.cluster.ca)
        for (claimed, host, accepted) in [(UInt64(3), "localhost", false), (UInt64(1), "127.0.0.1", true)] {
            let dialler = try await Self.node(claimed, tls: try Self.tls(impostorCertificates.nodes[0], ca: Self.cluster.ca), group: group)
            b.transport.addPeer(id: claimed, address: TransportAddress(host: host, port: dialler.port))
            dialler.transport.addPeer(id: 2, address: b.address)
            if accepted {
                try await b.received.wait("member \(claimed)'s message") { _ in
                    dialler.transport.send([Message(type: .heartbeat, to: 2, from: claimed, term: 1)])
                    return b.received.snapshot.contains { $0.from == claimed }
                }
            } else {
                for _ in 0..<5 { dialler.transport.send([Message(type: .heartbeat, to: 2, from: claimed, term: 1)]) }
                try await dialler.events.wait("the stream refused") { $0.contains(.unreachable(2)) }
                #expect(!b.received.snapshot.contains { $0.from == claimed }, "a certificate for 127.0.0.1 spoke for localhost")
            }
            await dialler.transport.shutdown()
        }
        await b.transport.shutdown()
        try await group.shutdownGracefully()
    }
}
