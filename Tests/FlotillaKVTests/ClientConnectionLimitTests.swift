import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing

@testable import FlotillaKV

/// `ClientConnectionLimits`: a client that dribbles its request head, or goes silent
/// mid-request, cannot hold the server's sockets; clients that behave keep theirs. The deadlines
/// on virtual time, and the slowloris case once on a live server.
@Suite struct ClientConnectionLimitTests {
    /// A live server over a `RecordingReplica` with `limits`; `body` gets its port.
    func withServer(
        _ limits: ClientConnectionLimits, _ body: @escaping @Sendable (Int) async throws -> Void
    ) async throws {
        let app = makeApplication(
            api: HTTPAPI(replica: RecordingReplica()), services: [], address: .hostname("127.0.0.1", port: 0),
            limits: limits, logger: HTTPAPITests.quietLogger)
        try await app.test(.live) { client in try await body(try #require(client.port)) }
    }

    /// A connection whose bytes the test writes by hand, and whose close it can await.
    final class Connection: Sendable {
        let channel: any Channel
        let received = Received()

        final class Received: Sendable {
            let bytes = Mutex<[UInt8]>([])
        }

        init(port: Int) async throws {
            let received = received
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Collect(received: received))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
        }

        func send(_ text: String) async throws {
            try await channel.writeAndFlush(ByteBuffer(string: text)).get()
        }

        var answers: Int { RawHTTP.parse(received.bytes.withLock { $0 }).count }

        /// Waits for the server to close the connection; how long that took.
        func closed(within limit: Duration) async throws -> Duration {
            let clock = ContinuousClock()
            let start = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.channel.closeFuture.get() }
                group.addTask {
                    try await Task.sleep(for: limit)
                    throw TimedOut()
                }
                try await group.next()
                group.cancelAll()
            }
            return clock.now - start
        }

        struct TimedOut: Error {}

        final class Collect: ChannelInboundHandler, Sendable {
            typealias InboundIn = ByteBuffer
            let received: Received
            init(received: Received) { self.received = received }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                let buffer = unwrapInboundIn(data)
                received.bytes.withLock { $0 += buffer.readableBytesView }
            }
        }
    }

    /// Slowloris: a head sent a few bytes at a time keeps traffic flowing, but never ends.
    @Test(.timeLimit(.minutes(1)))
    func aDribbledRequestHeadIsCutOff() async throws {
        try await withServer(ClientConnectionLimits(readHeaderTimeout: .milliseconds(400), idleTimeout: .seconds(30))) { port in
            let slow = try await Connection(port: port)
            let dribble = Task {
                for byte in "PUT /k HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ".utf8 + Array(repeating: UInt8(ascii: "a"), count: 400) {
                    try await slow.send(String(decoding: [byte], as: UTF8.self))
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            let took = try await slow.closed(within: .seconds(15))
            dribble.cancel()
            // The dribble takes 9 s; its head never ends, and 0.4 s is the limit.
            #expect(took < .seconds(8), "closed after \(took)")
            #expect(slow.answers == 0)
        }
    }

    /// A client that stops halfway through its body is closed once the connection is idle.
    // MARK: The deadlines on virtual time

    /// `ClientConnectionDeadlines` alone on an embedded channel (head 10 s, idle 60 s), its
    /// clock advanced by hand: every deadline to the tick, no sleeps.
    func deadlines() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ClientConnectionDeadlines(
            limits: ClientConnectionLimits(readHeaderTimeout: .seconds(10), idleTimeout: .seconds(60)),
            logger: HTTPAPITests.quietLogger))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func aConnectionThatNeverSendsAHeadClosesAfterTheHeadTimeout() throws {
        let channel = try deadlines()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(9_999))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    @Test func aDribbledHeadClosesDespiteTheTraffic() throws {
        let channel = try deadlines()
        for byte in "PUT /k HTTP/1.1\r\nHost: x\r\n".utf8 {
            guard channel.isActive else { break }
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(500))
        }
        #expect(!channel.isActive, "a head dribbled for \(27 * 500) ms kept its connection")
    }

    @Test func aHeadEndingAcrossReadsIsSeen() throws {
        let channel = try deadlines()
        try channel.writeInbound(ByteBuffer(string: "GET /k HTTP/1.1\r\nHost: x\r\n\r"))
        try channel.writeInbound(ByteBuffer(string: "\n"))
        // No answer yet: no head is due, only the idle deadline runs.
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive, "idle for 60 s")
    }

    @Test func aClientSilentMidBodyClosesAfterTheIdleTimeout() throws {
        let channel = try deadlines()
        try channel.writeInbound(ByteBuffer(string: "PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        try channel.writeInbound(ByteBuffer(string: "cd"))  // traffic resets the idle deadline
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
    }

    /// A long pipeline: every head arrived at once, and answering takes far longer than a head
    /// timeout. Each answer pushes the next head's deadline back; the connection stays.
    @Test func aPipelineAnsweredSlowlyKeepsItsConnection() throws {
        let channel = try deadlines()
        let pipeline = (1...50).map { "PUT /k\($0) HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv" }.joined()
        try channel.writeInbound(ByteBuffer(string: pipeline))
        for n in 1...50 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(3))  // 150 s in all
            try channel.writeAndFlush(ByteBuffer(string: "HTTP/1.1 204 No Content\r\n\r\n")).wait()
            #expect(channel.isActive, "closed while answering request \(n)")
        }
    }

    /// Requests 5 s apart, each answered after half a second: open for over two minutes, past
    /// both deadlines many times over. After the last answer the next head is due within one to
    /// two head timeouts.
    @Test func aBusyClientKeepsItsConnection() throws {
        let channel = try deadlines()
        for n in 1...25 {
            try channel.writeInbound(ByteBuffer(string: "PUT /k\(n) HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv"))
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(500))
            try channel.writeAndFlush(ByteBuffer(string: "HTTP/1.1 204 No Content\r\n\r\n")).wait()
            channel.embeddedEventLoop.advanceTime(by: .seconds(5))
            #expect(channel.isActive, "closed after request \(n)")
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(channel.isActive, "9 s after the last answer")
        channel.embeddedEventLoop.advanceTime(by: .seconds(11))
        #expect(!channel.isActive, "20 s after the last answer with no head")
    }

    // The connection limit is tested on a real `flotilla serve` (ConnectionFloodTests):
    // HummingbirdTesting's live mode rebuilds the configuration without it.
}

