import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

@testable import FlotillaCLI

/// `flotilla bench --api etcd` speaks etcd v3's JSON gateway: checked against a stand-in that
/// answers like etcd and refuses anything else.
@Suite struct BenchEtcdModeTests {
    @Test(.timeLimit(.minutes(1))) func requestsAreEtcdJSONGatewayCalls() async throws {
        let gateway = try await FakeEtcdGateway.start()
        let engine = BenchEngine(configuration: BenchConfiguration(
            endpoints: ["http://127.0.0.1:\(gateway.port)"], clients: 4, connections: 2, keySize: 8, valueSize: 10,
            limit: .total(200), readRatio: 0.5, keySpace: 50, api: .etcd))
        let summary = try await engine.run()
        try await gateway.stop()

        #expect(summary.requests == 200 && summary.errors == 0)
        let seen = gateway.seen
        #expect(seen.puts + seen.ranges == 200 && seen.refused == [])
        #expect(seen.puts == summary.writes && seen.ranges == summary.reads)
        #expect(seen.puts > 0 && seen.ranges > 0)
        // Keys are the bench's 8-digit key numbers, values `--val-size` bytes.
        #expect(seen.keys.allSatisfy { $0.count == 8 && Int($0).map { (0..<50).contains($0) } == true })
        #expect(seen.values == [String(repeating: "v", count: 10)])
    }

    @Test func parsesTheAPIOption() throws {
        let bench = try #require(try Root.parseAsRoot(["bench", "--api", "etcd"]) as? Bench)
        #expect(try bench.benchConfiguration().api == .etcd)
        let defaults = try #require(try Root.parseAsRoot(["bench"]) as? Bench)
        #expect(try defaults.benchConfiguration().api == .flotilla)
        #expect(throws: (any Error).self) { try Root.parseAsRoot(["bench", "--api", "consul"]) }
    }
}

/// An HTTP server that takes etcd's `POST /v3/kv/put` and `/v3/kv/range` with JSON bodies of
/// base64 keys and values, as the gateway does, and records what it was sent.
final class FakeEtcdGateway: Sendable {
    struct Seen: Sendable {
        var puts = 0, ranges = 0
        var keys: Set<String> = [], values: Set<String> = []
        var refused: [String] = []
    }

    private let channel: any Channel
    private let state: Mutex<Seen>
    var port: Int { channel.localAddress?.port ?? 0 }
    var seen: Seen { state.withLock { $0 } }

    private init(channel: any Channel) {
        self.channel = channel
        state = Mutex(Seen())
    }

    static func start() async throws -> FakeEtcdGateway {
        let recorder = Recorder()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(recorder: recorder))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let gateway = FakeEtcdGateway(channel: channel)
        recorder.gateway.withLock { $0 = gateway }
        return gateway
    }

    func stop() async throws {
        try await channel.close()
    }

    fileprivate func record(method: HTTPMethod, uri: String, contentType: String?, body: [UInt8]) -> Bool {
        let json = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: String]
        func decoded(_ field: String) -> String? {
            json?[field].flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
        }
        return state.withLock { seen in
            guard method == .POST, contentType == "application/json", let key = decoded("key") else {
                seen.refused.append("\(method) \(uri) \(String(decoding: body, as: UTF8.self))")
                return false
            }
            switch (uri, decoded("value")) {
            case ("/v3/kv/put", let value?) where json?.count == 2:
                seen.puts += 1
                seen.values.insert(value)
            case ("/v3/kv/range", nil) where json?.count == 1:
                seen.ranges += 1
            default:
                seen.refused.append("\(method) \(uri) \(String(decoding: body, as: UTF8.self))")
                return false
            }
            seen.keys.insert(key)
            return true
        }
    }

    private final class Recorder: Sendable {
        let gateway = Mutex<FakeEtcdGateway?>(nil)
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let recorder: Recorder
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(recorder: Recorder) { self.recorder = recorder }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(let buffer):
                body += buffer.readableBytesView
            case .end:
                guard let head, let gateway = recorder.gateway.withLock({ $0 }) else { return }
                let ok = gateway.record(method: head.method, uri: head.uri, contentType: head.headers.first(name: "Content-Type"), body: body)
                let answer = ok ? #"{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"}}"# : #"{"error":"bad request","code":3}"#
                var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "\(answer.utf8.count)")])
                headers.add(name: "Grpc-Metadata-Content-Type", value: "application/grpc")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: ok ? .ok : .badRequest, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: answer)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
