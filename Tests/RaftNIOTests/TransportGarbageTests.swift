import NIOCore
import NIOPosix
import Raft
import Testing

@testable import RaftNIO

/// A raw TCP client that writes `bytes` and waits for the server to close the connection.
func sendRaw(_ bytes: ByteBuffer, to port: Int, group: any EventLoopGroup) async throws {
    let channel = try await ClientBootstrap(group: group)
        .connect(host: "127.0.0.1", port: port).get()
    // The server may close before everything is written: a write error is fine here.
    try? await channel.writeAndFlush(bytes).get()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await channel.closeFuture.get() }
        group.addTask {
            try await Task.sleep(for: .seconds(20))
            throw TestFailure("the server did not close a refused connection")
        }
        try await group.next()
        group.cancelAll()
    }
}

/// Peers that send garbage are refused and disconnected; good peers carry on.
@Suite("Transport refuses garbage")
struct TransportGarbageTests {
    static let cases = ["random bytes", "wrong magic", "wrong version", "wrong cluster id", "wrong receiver id",
                        "oversized frame length", "undecodable raftpb", "stranger"]

    func garbage(_ kind: String, receiver: UInt64) -> ByteBuffer {
        var buffer = ByteBuffer()
        var preamble = Preamble(kind: .messages, clusterID: 0xC1, from: 2, to: receiver)
        switch kind {
        case "random bytes":
            var generator = SystemRandomNumberGenerator()
            buffer.writeBytes((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) })
            buffer.setInteger(UInt32(0xDEAD_BEEF), at: 0)  // make sure it is not "FLRT" by chance
            return buffer
        case "wrong magic":
            preamble.write(to: &buffer)
            buffer.setInteger(UInt32(0x464C_5253), at: 0)
        case "wrong version":
            preamble.write(to: &buffer)
            buffer.setInteger(UInt8(9), at: 4)
        case "wrong cluster id":
            preamble.clusterID = 0xC2
            preamble.write(to: &buffer)
        case "wrong receiver id":
            preamble.to = receiver + 10
            preamble.write(to: &buffer)
        case "stranger":
            // A node that was never added: refused at the handshake, whatever it sends next.
            preamble.from = 9
            preamble.write(to: &buffer)
            try! FrameEncoder().encode(
                data: .messages([Message(type: .heartbeat, to: receiver, from: 9, term: 666)]), out: &buffer)
            return buffer
        case "oversized frame length":
            preamble.write(to: &buffer)
            buffer.writeInteger(UInt32.max)
            buffer.writeInteger(FrameKind.message.rawValue)
            return buffer
        default:
            preamble.write(to: &buffer)
            buffer.writeFrameHeader(kind: .message, payloadSize: 4)
            buffer.writeBytes([0x0a, 0x7f, 0x01, 0x02])  // field 1 as bytes: wrong wire type
            return buffer
        }
        // A valid message after the bad preamble must not be delivered either.
        try! FrameEncoder().encode(
            data: .messages([Message(type: .heartbeat, to: receiver, from: 2, term: 666)]), out: &buffer)
        return buffer
    }

    @Test(.timeLimit(.minutes(1)))
    func garbageIsRefusedAndGoodPeersAreStillServed() async throws {
        try await withCluster(2) { nodes, group in
            let (a, b) = (nodes[0], nodes[1])
            for kind in TransportGarbageTests.cases {
                try await sendRaw(garbage(kind, receiver: b.id), to: b.port, group: group)
                // The good peer still gets through after each refusal.
                a.transport.send([Message(type: .heartbeat, to: 2, from: 1, term: 1, commit: 1)])
                let count = TransportGarbageTests.cases.firstIndex(of: kind)! + 1
                try await b.received.wait("a good message after \(kind)") { $0.count == count }
            }
            #expect(b.received.snapshot.allSatisfy { $0.from == 1 && $0.term == 1 })
            #expect(b.received.snapshot.count == TransportGarbageTests.cases.count)
        }
    }
}
