import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import FlotillaKV

/// The wire path's parser against NIO's HTTP decoder (the reference the router sits behind), on
/// thousands of generated requests, well-formed and mangled: whatever the wire path takes, NIO
/// reads the same way — the same method, target, body and keep-alive — and whatever the wire
/// path waits on, NIO has not finished either. (Where the wire path declines, the decoder gets
/// the bytes, so there is nothing to compare.)
@Suite struct WireKeyRequestDifferentialTests {
    /// What NIO's decoder makes of `bytes`: the first request, if it ended, or the error.
    enum Reference {
        case request(head: HTTPRequestHead, body: [UInt8])
        case unfinished
        case error(String)
    }

    static func reference(_ bytes: [UInt8]) -> Reference {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        } catch {
            return .error("\(error)")
        }
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let h): head = h
            case .body(let buffer): body += buffer.readableBytesView
            case .end: return head.map { .request(head: $0, body: body) } ?? .error("an end without a head")
            }
        }
        return .unfinished
    }

    /// A request the wire path might take, built from `random`'s choices, then sometimes mangled.
    static func generate(_ random: inout SplitMix) -> [UInt8] {
        let methods = ["GET", "PUT", "DELETE", "POST", "get", "HEAD"]
        let keys = ["k", "a%2Fb", "%zz", "health", "v1", "key_1", "x.y", "%41"]
        let method = methods[random.below(methods.count)]
        let key = keys[random.below(keys.count)]
        let path = random.below(2) == 0 ? "/" + key : "/v1/kv/" + key
        let version = random.below(8) == 0 ? "HTTP/1.0" : "HTTP/1.1"
        var lines = ["\(method) \(path)\(random.below(10) == 0 ? "?x=1" : "") \(version)"]
        if random.below(4) != 0 { lines.append("Host: t") }
        let body = Array(String(repeating: "v", count: random.below(3) == 0 ? 0 : random.below(40)).utf8)
        var fields: [String] = []
        if method == "PUT" || random.below(4) == 0 {
            let names = ["Content-Length", "content-length", "CONTENT-LENGTH"]
            let spacing = [" ", "", "  ", "\t"]
            fields.append("\(names[random.below(3)]):\(spacing[random.below(4)])\(body.count)\(spacing[random.below(4)])")
        }
        let extras = [
            "Connection: close", "Connection: keep-alive", "connection: Keep-Alive, Close", "Connection: upgrade",
            "Transfer-Encoding: chunked", "Expect: 100-continue", "User-Agent: wrk", "Accept: */*",
            "X-Odd: a\u{1}b", "Bad Name: x", "X-Empty:", "Content-Length: 3",
            "Connection:\tclose\t", "Connection: close ", "X-Tab:\tv\t", "X-Obs: caf\u{E9}", "X!#$%&'*+-.^_`|~: t",
            "Host : t", " folded", "X-Long: " + String(repeating: "z", count: 300),
        ]
        for _ in 0..<random.below(3) { fields.append(extras[random.below(extras.count)]) }
        lines += fields
        var bytes = Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + body
        // Now and then, one byte changed, dropped or doubled.
        if random.below(3) == 0, !bytes.isEmpty {
            let at = random.below(bytes.count)
            switch random.below(3) {
            case 0: bytes[at] = [0x0D, 0x0A, 0x20, 0x3A, 0x00, 0x7F, 0x41][random.below(7)]
            case 1: bytes.remove(at: at)
            default: bytes.insert(bytes[at], at: at)
            }
        }
        // And now and then cut short.
        if random.below(6) == 0 { bytes = Array(bytes.prefix(random.below(bytes.count + 1))) }
        return bytes
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8]) func agreesWithNIOsDecoder(seed: UInt64) {
        var random = SplitMix(seed: seed)
        var taken = 0
        for _ in 0..<1500 {
            let bytes = Self.generate(&random)
            let parse = bytes.withUnsafeBytes { WireKeyRequest.parse($0, maxValueBytes: 32) }
            let text = String(decoding: bytes, as: UTF8.self).debugDescription
            switch parse {
            case .unsupported:
                continue
            case .incomplete:
                if case .request = Self.reference(bytes) {
                    Issue.record("the wire path waits for more, NIO read a whole request: \(text)")
                }
            case .request(let request, let length):
                taken += 1
                guard case .request(let head, let body) = Self.reference(Array(bytes[..<length])) else {
                    Issue.record("the wire path took a request NIO does not read: \(text) → \(Self.reference(Array(bytes[..<length])))")
                    continue
                }
                #expect(head.method.rawValue == request.route.method.rawValue, "\(text)")
                #expect(head.uri.hasSuffix("/" + request.route.rawKey), "\(text)")
                #expect(head.version == .http1_1, "\(text)")
                #expect(body == request.value || (request.route.method != .put && body.isEmpty), "\(text)")
                #expect(head.isKeepAlive == !request.closeAfter, "\(text)")
            }
        }
        #expect(taken > 100, "the generator must make requests the wire path takes")
    }
}

/// A small seeded generator (SplitMix64), so a failure can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
}
