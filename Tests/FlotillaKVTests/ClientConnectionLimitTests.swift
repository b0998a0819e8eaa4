import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import FlotillaKV

/// `ClientConnectionLimits` on a live server: a client that dribbles its request head, or goes
/// silent mid-request, cannot hold the server's sockets; clients that behave keep theirs.
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

        /// Waits for the server to close the connection; how long after `start` that was.
        func closed(within limit: Duration, since start: ContinuousClock.Instant = .now) async throws -> Duration {
            let clock = ContinuousClock()
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
            let took = try await slow.closed(within: .seconds(5))
            dribble.cancel()
            #expect(took < .seconds(3), "closed after \(took)")
            #expect(slow.answers == 0)
        }
    }

    /// A client that stops halfway through its body is closed once the connection is idle.
    @Test(.timeLimit(.minutes(1)))
    func aSilentConnectionIsClosedAfterTheIdleTimeout() async throws {
        try await withServer(ClientConnectionLimits(readHeaderTimeout: .seconds(30), idleTimeout: .milliseconds(400))) { port in
            let silent = try await Connection(port: port)
            // Timed from before the bytes leave: the server cannot close sooner than the idle
            // timeout after it read them.
            let sent = ContinuousClock.now
            try await silent.send("PUT /k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nab")
            let took = try await silent.closed(within: .seconds(5), since: sent)
            #expect(took >= .milliseconds(400) && took < .seconds(4), "closed after \(took)")
            // Nothing without a request at all either: the head deadline (TLS handshake included).
        }
        try await withServer(ClientConnectionLimits(readHeaderTimeout: .milliseconds(300), idleTimeout: .seconds(30))) { port in
            let mute = try await Connection(port: port)
            _ = try await mute.closed(within: .seconds(5))
        }
    }

    /// Requests well within the deadlines keep their connection: each answer re-arms the head
    /// deadline, and the traffic keeps it from being idle.
    @Test(.timeLimit(.minutes(1)))
    func aBusyClientKeepsItsConnection() async throws {
        try await withServer(ClientConnectionLimits(readHeaderTimeout: .seconds(1), idleTimeout: .seconds(1))) { port in
            let busy = try await Connection(port: port)
            // 25 requests 100 ms apart: well past both deadlines in all.
            for n in 1...25 {
                try await busy.send("PUT /k\(n) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nv")
                let answered = await waitUntil { busy.answers == n }
                #expect(answered, "request \(n) not answered")
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(busy.channel.isActive)
        }
    }
    // The connection limit is tested on a real `flotilla serve` (ConnectionFloodTests):
    // HummingbirdTesting's live mode rebuilds the configuration without it.
}

/// Polls `condition` every 10 ms until it holds or `limit` passes.
func waitUntil(within limit: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
