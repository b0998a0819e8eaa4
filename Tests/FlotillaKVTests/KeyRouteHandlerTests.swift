import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

@testable import FlotillaKV

/// What `HTTPAPITests` cannot show through a client that sends one request at a time: the
/// key-route handler answers byte for byte what the router answers, keeps HTTP/1.1's order when
/// requests are pipelined across it and the router, takes requests however their bytes are cut,
/// honours `Connection: close`, and lets a graceful shutdown finish its answers; and which
/// requests it takes at all.
@Suite struct KeyRouteHandlerTests {
    // MARK: Which requests

    static func head(_ method: HTTPMethod, _ uri: String, version: HTTPVersion = .http1_1, _ fields: [(String, String)] = []) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(fields))
    }

    @Test func keyRoutesAreTakenAndEverythingElseGoesToTheRouter() {
        let taken: [(HTTPMethod, String, String)] = [
            (.PUT, "/k", "k"), (.GET, "/k", "k"), (.PUT, "/a%2Fb", "a%2Fb"),
            (.PUT, "/v1/kv/k", "k"), (.GET, "/v1/kv/k", "k"), (.DELETE, "/v1/kv/k", "k"),
            (.PUT, "/healthy", "healthy"), (.GET, "/v1kv", "v1kv"),
        ]
        for (method, uri, key) in taken {
            let request = KeyRouteRequest(head: Self.head(method, uri), maxValueBytes: 16)
            #expect(request?.rawKey == key[...], "\(method) \(uri)")
        }
        let router: [(HTTPMethod, String)] = [
            (.DELETE, "/k"), (.POST, "/k"), (.POST, "/4"), (.HEAD, "/k"),  // membership, other methods
            (.GET, "/health"), (.PUT, "/health"), (.GET, "/metrics"), (.GET, "/set"), (.GET, "/get"), (.GET, "/v1"),
            (.GET, "/v1/status"), (.GET, "/v1/members"), (.POST, "/v1/kv/k"),
            (.GET, "/v1/kv/k?serializable=true"), (.GET, "/k?x=1"), (.GET, "/k#f"),  // queries go to the router
            (.GET, "/"), (.GET, "/k/"), (.GET, "//k"), (.GET, "/v1/kv/"), (.GET, "/v1/kv/a/b"), (.GET, "/a/b"), (.GET, "k"),
            (.GET, "*"), (.GET, "http://t/k"),
        ]
        for (method, uri) in router {
            #expect(KeyRouteRequest(head: Self.head(method, uri), maxValueBytes: 16) == nil, "\(method) \(uri)")
        }
    }

    @Test func headsTheHandlerLeavesToTheRouter() {
        let declined: [HTTPRequestHead] = [
            Self.head(.GET, "/k", version: .http1_0),
            Self.head(.PUT, "/k", [("Transfer-Encoding", "chunked")]),
            Self.head(.PUT, "/k", [("Content-Length", "3"), ("Expect", "100-continue")]),
            Self.head(.GET, "/k", [("Connection", "Upgrade"), ("Upgrade", "websocket")]),
            Self.head(.PUT, "/k", [("Content-Length", "17")]),  // over the value limit: the router's 413
            Self.head(.PUT, "/k", [("Content-Length", "3"), ("Content-Length", "3")]),
            Self.head(.GET, "/k", [("Content-Length", "1")]),  // a body on a GET
            Self.head(.GET, "/k", [("Host", "a"), ("Host", "b")]),
        ]
        for head in declined {
            #expect(KeyRouteRequest(head: head, maxValueBytes: 16) == nil, "\(head)")
        }
        let put = KeyRouteRequest(head: Self.head(.PUT, "/k", [("Content-Length", "16"), ("Host", "h"), ("Origin", "o")]), maxValueBytes: 16)
        #expect(put?.method == .put && put?.host == "h" && put?.origin == "o" && put?.closeAfter == false)
        let close = KeyRouteRequest(head: Self.head(.GET, "/k", [("Connection", "close")]), maxValueBytes: 16)
        #expect(close?.closeAfter == true)
    }

    @Test func datesAreIMFFixdates() {
        #expect(HTTPDate.format(epochSecond: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(epochSecond: 951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDate.format(epochSecond: 1_700_000_000) == "Tue, 14 Nov 2023 22:13:20 GMT")
        #expect(HTTPDate.format(epochSecond: 4_133_980_799) == "Fri, 31 Dec 2100 23:59:59 GMT")
        #expect(HTTPDate.format(epochSecond: -1) == "Wed, 31 Dec 1969 23:59:59 GMT")
        // The cached value is today's, in the same format.
        #expect(HTTPDate.now.hasSuffix(" GMT") && HTTPDate.now.count == 29)
    }

    // MARK: On the wire

    @Test(.timeLimit(.minutes(1))) func pipelinedRequestsAreAnsweredInOrderAcrossTheRouter() async throws {
        try await withLiveServer { port, _ in
            let requests = [
                "PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nv1",
                "GET /health HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /a HTTP/1.1\r\nHost: t\r\n\r\n",
                "PUT /v1/kv/b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nbb\r\n1\r\nb\r\n0\r\n\r\n",
                "GET /v1/kv/b?serializable=true HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
                "DELETE /v1/kv/a HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /v1/status HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /a HTTP/1.1\r\nHost: t\r\n\r\n",
            ]
            let responses = try await RawHTTP.exchange(port: port, send: requests.joined(), expecting: requests.count)
            #expect(responses.map(\.status) == [204, 200, 200, 204, 200, 404, 204, 200, 404])
            #expect(responses[1].body.contains("\"health\":true"))
            #expect(responses[2].body == "v1")
            #expect(responses[4].body == "bbb")
            #expect(responses[5].body == #"{"error":"key not found"}"#)
            #expect(responses[7].body.contains("\"state\":\"leader\""))
            for response in responses {
                #expect(response.headers["server"] == "flotilla")
                #expect(response.headers["date"]?.hasSuffix(" GMT") == true)
            }
        }
    }

    /// Each request answered by the handler (alone on its connection) and by the router
    /// (behind a `GET /health`, which hands the connection to the router): the same bytes,
    /// but for the Date.
    @Test(.timeLimit(.minutes(1))) func theHandlerAnswersWhatTheRouterAnswers() async throws {
        try await withLiveServer(limits: .init(maxKeyBytes: 8, maxValueBytes: 16)) { port, _ in
            let requests = [
                "PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nvalue",
                "GET /k HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /v1/kv/k HTTP/1.1\r\nHost: t\r\n\r\n",
                "PUT /v1/kv/empty HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
                "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n",
                "PUT /muchtoolong HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
                "DELETE /v1/kv/k HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /k HTTP/1.1\r\nHost: t\r\n\r\n",
            ]
            let health = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
            for request in requests {
                let wire = try await RawHTTP.exchange(port: port, send: request, expecting: 1)
                let router = try await RawHTTP.exchange(port: port, send: health + request, expecting: 2)
                try #require(wire.count == 1 && router.count == 2, "\(request.debugDescription)")
                #expect(wire[0].rawWithoutDate == router[1].rawWithoutDate, "\(request.debugDescription)")
            }
        }
        try await HTTPAPITests().withScriptedReplica(via: .live, ScriptedReplica(error: .noLeader)) { client in
            let port = try #require(client.port)
            let request = "PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nv"
            let wire = try await RawHTTP.exchange(port: port, send: request, expecting: 1)
            let router = try await RawHTTP.exchange(port: port, send: "GET /v1/status HTTP/1.1\r\n\r\n" + request, expecting: 2)
            try #require(wire.count == 1 && router.count == 2)
            #expect(wire[0].status == 503 && wire[0].headers["retry-after"] == "1")
            #expect(wire[0].rawWithoutDate == router[1].rawWithoutDate)
        }
    }

    /// Requests cut into pieces of every size, sent a piece at a time: each taken whole, in order.
    @Test(.timeLimit(.minutes(1))) func requestsArrivingInPiecesAreTakenWhole() async throws {
        try await withLiveServer { port, _ in
            let text = "PUT /p HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\npieces"
                + "GET /p HTTP/1.1\r\nHost: t\r\n\r\n" + "DELETE /v1/kv/p HTTP/1.1\r\nHost: t\r\n\r\n"
                + "GET /v1/kv/p HTTP/1.1\r\nHost: t\r\n\r\n"
            for pieceSize in [1, 7, 40] {
                let responses = try await RawHTTP.exchange(port: port, sendInPiecesOf: pieceSize, text, expecting: 4)
                #expect(responses.map(\.status) == [204, 200, 204, 404], "pieces of \(pieceSize)")
                #expect(responses.dropFirst().first?.body == "pieces")
            }
        }
    }

    /// Over a thousand requests pipelined in one burst (more than the buffer keeps before it drops
    /// what was taken): every one answered, in order. One in six is a write and the reads are padded
    /// to pass the buffer's size: each write is a commit with an fsync (and every fifth a snapshot),
    /// which on a loaded 2-core machine made 1,000 writes take over the minute.
    @Test(.timeLimit(.minutes(1))) func aLongPipelineIsAnsweredInOrder() async throws {
        try await withLiveServer { port, _ in
            let count = 1_200
            let padding = String(repeating: "p", count: 40)
            var text = ""
            for n in 0..<count {
                let written = n - n % 6
                text += n % 6 == 0
                    ? "PUT /k\(n % 7) HTTP/1.1\r\nHost: t\r\nContent-Length: \(String(n).count)\r\n\r\n\(n)"
                    : "GET /k\(written % 7) HTTP/1.1\r\nHost: t\r\nX-Padding: \(padding)\r\n\r\n"
            }
            #expect(text.utf8.count > 1 << 16)
            let responses = try await RawHTTP.exchange(port: port, send: text, expecting: count)
            #expect(responses.count == count)
            for (n, response) in responses.enumerated() {
                if n % 6 == 0 {
                    #expect(response.status == 204, "request \(n)")
                } else {
                    #expect(response.status == 200 && response.body == "\(n - n % 6)", "request \(n)")
                }
            }
        }
    }

    /// A graceful shutdown closes a connection the handler serves, with nothing in flight, at once.
    @Test(.timeLimit(.minutes(1))) func aGracefulShutdownClosesAnIdleConnection() async throws {
        let app = makeApplication(
            api: HTTPAPI(replica: GatedReplica()), services: [], address: .hostname("127.0.0.1", port: 0),
            limits: HTTPAPITests.patientLimits, logger: HTTPAPITests.quietLogger)
        let closed = Mutex<Task<Bool, any Error>?>(nil)
        let started = ContinuousClock.now
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // One answered read keeps the connection open and idle in the handler; then the
            // client waits for more that never comes.
            let task = Task { try await RawHTTP.waitForClose(port: port, after: "GET /k HTTP/1.1\r\nHost: t\r\n\r\n") }
            closed.withLock { $0 = task }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try await #require(closed.withLock { $0 }).value)
        // At once, that is: the connection's own deadlines are 300 s (patientLimits), and the
        // test's time limit a minute; a loaded machine can take a few seconds over the rest.
        #expect(ContinuousClock.now - started < .seconds(40))
    }

    @Test(.timeLimit(.minutes(1))) func connectionCloseClosesAfterTheAnswer() async throws {
        try await withLiveServer { port, _ in
            let requests =
                "PUT /c HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
                + "GET /c HTTP/1.1\r\nHost: t\r\n\r\n"
            let responses = try await RawHTTP.exchange(port: port, send: requests, expecting: 2)
            // The server closed the connection after the first answer; the second request was
            // never answered, and the first was applied.
            #expect(responses.map(\.status) == [204])
            let check = try await RawHTTP.exchange(port: port, send: "GET /c HTTP/1.1\r\nHost: t\r\n\r\n", expecting: 1)
            #expect(check.first?.body == "x")
        }
    }

    @Test(.timeLimit(.minutes(1))) func malformedHTTPIsAnsweredAfterTheWriteBeforeIt() async throws {
        try await withLiveServer { port, _ in
            let requests = "PUT /m HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nokNOT HTTP AT ALL\r\n\r\n"
            let responses = try await RawHTTP.exchange(port: port, send: requests, expecting: 2)
            #expect(responses.map(\.status) == [204, 400])
            // A body cut short by malformed chunking is refused and stores nothing.
            let broken = "PUT /n HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nzz\r\n"
            #expect(try await RawHTTP.exchange(port: port, send: broken, expecting: 1).map(\.status) == [400])
            let check = "GET /m HTTP/1.1\r\nHost: t\r\n\r\nGET /n HTTP/1.1\r\nHost: t\r\n\r\n"
            let answers = try await RawHTTP.exchange(port: port, send: check, expecting: 2)
            #expect(answers.map(\.status) == [200, 404])
            #expect(answers.first?.body == "ok")
        }
    }

    @Test(.timeLimit(.minutes(1))) func anOversizedChunkedValueIs413AndTheConnectionGoesOn() async throws {
        try await withLiveServer(limits: .init(maxKeyBytes: 16, maxValueBytes: 4)) { port, _ in
            let requests =
                "PUT /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
                + "GET /big HTTP/1.1\r\nHost: t\r\n\r\n"
                + "PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd"
                + "GET /big HTTP/1.1\r\nHost: t\r\n\r\n"
            let responses = try await RawHTTP.exchange(port: port, send: requests, expecting: 4)
            #expect(responses.map(\.status) == [413, 404, 204, 200])
            #expect(responses[0].body == #"{"error":"the value exceeds the limit of 4 bytes"}"#)
            #expect(responses[3].body == "abcd")

            // A declared length over the limit: the handler leaves it to the router, whose
            // 413 comes before the body is read; the body is not taken for a request.
            let declared = "PUT /over HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789"
                + "GET /over HTTP/1.1\r\nHost: t\r\n\r\n"
            let answers = try await RawHTTP.exchange(port: port, send: declared, expecting: 2)
            #expect(answers.first?.status == 413)
            #expect(answers.first?.body == #"{"error":"the value is 10 bytes; values are at most 4 bytes"}"#)
            #expect(answers.count == 2 && answers.last?.status == 404, "\(answers.map(\.status))")
        }
    }

    @Test(.timeLimit(.minutes(1))) func aGracefulShutdownWaitsForAWriteInFlight() async throws {
        let replica = GatedReplica()
        let app = makeApplication(
            api: HTTPAPI(replica: replica), services: [], address: .hostname("127.0.0.1", port: 0),
            limits: HTTPAPITests.patientLimits, logger: HTTPAPITests.quietLogger)
        let exchange = Mutex<Task<[RawHTTP.Response], any Error>?>(nil)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            exchange.withLock {
                $0 = Task { try await RawHTTP.exchange(port: port, send: "PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nv", expecting: 1) }
            }
            await replica.waitForAWrite()
            // Leaving the closure shuts the application down gracefully while the write waits;
            // the write is let through a little later.
            Task {
                try await Task.sleep(for: .milliseconds(300))
                replica.open()
            }
        }
        let responses = try await #require(exchange.withLock { $0 }).value
        #expect(responses.map(\.status) == [204])
    }

    // MARK: Helpers

    func withLiveServer(
        limits: HTTPAPI<FlotillaReplica>.Limits = .init(),
        _ body: @escaping @Sendable (_ port: Int, _ client: any TestClientProtocol) async throws -> Void
    ) async throws {
        try await HTTPAPITests().withServer(via: .live, limits: limits) { client in
            try await body(try #require(client.port), client)
        }
    }
}

/// A replica whose writes wait until `open()`.
final class GatedReplica: KeyValueReplica {
    typealias Completion = @Sendable (Result<KeyValueStore.Outcome, ReplicaError>) -> Void
    private let state = Mutex<(isOpen: Bool, writes: Int, waiters: [Completion])>((false, 0, []))

    func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0(.success(.stored(replaced: false))) }
    }

    /// Returns once a write has arrived.
    func waitForAWrite() async {
        while state.withLock({ $0.writes == 0 }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// A put waits for `open()`; a delete fails at once.
    func write(key: [UInt8], value: [UInt8]?, completion: @escaping Completion) {
        guard value != nil else { return completion(.failure(.noLeader)) }
        let isOpen = state.withLock { state in
            state.writes += 1
            if !state.isOpen { state.waiters.append(completion) }
            return state.isOpen
        }
        if isOpen { completion(.success(.stored(replaced: false))) }
    }
    func get(key: [UInt8], consistency: ReadConsistency) async throws -> [UInt8]? { nil }
    func status() async -> ReplicaStatus { ReplicaStatus(id: 1, term: 1, leader: 1, commit: 0, applied: 0, state: "leader") }
    func members() async throws -> [ReplicaMember] { [] }
    func addMember(id: UInt64, peerURL: PeerURL, asLearner: Bool) async throws { throw ReplicaError.noLeader }
    func removeMember(id: UInt64) async throws { throw ReplicaError.noLeader }
    func transferLeadership(to id: UInt64) async throws { throw ReplicaError.noLeader }
}

/// HTTP/1.1 by hand over a TCP connection: requests sent as written, responses parsed from the
/// bytes that come back.
enum RawHTTP {
    struct Response: Sendable {
        var status: Int
        var headers: [String: String]
        var body: String
        /// The response as it came.
        var raw: [UInt8] = []

        /// `raw` with the Date field's value blanked.
        var rawWithoutDate: String {
            String(decoding: raw, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
                .map { $0.lowercased().hasPrefix("date:") ? "Date: -" : String($0) }
                .joined(separator: "\r\n")
        }
    }

    /// `exchange`, with `text` written `size` bytes at a time, a moment apart.
    static func exchange(port: Int, sendInPiecesOf size: Int, _ text: String, expecting count: Int) async throws -> [Response] {
        let channel = try await connect(port: port)
        return try await channel.executeThenClose { inbound, outbound in
            let bytes = Array(text.utf8)
            for start in stride(from: 0, to: bytes.count, by: size) {
                try await outbound.write(ByteBuffer(bytes: bytes[start..<min(start + size, bytes.count)]))
                try await Task.sleep(for: .milliseconds(1))
            }
            return try await read(inbound, expecting: count)
        }
    }

    /// Sends `text`, reads its one answer, then waits: true once the server closes the connection.
    static func waitForClose(port: Int, after text: String) async throws -> Bool {
        let channel = try await connect(port: port)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: text))
            var bytes: [UInt8] = []
            for try await buffer in inbound { bytes += buffer.readableBytesView }
            return parse(bytes).count == 1
        }
    }

    private static func connect(port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    private static func read(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, expecting count: Int) async throws -> [Response] {
        var bytes: [UInt8] = []
        var responses: [Response] = []
        for try await buffer in inbound {
            bytes += buffer.readableBytesView
            responses = parse(bytes)
            if responses.count >= count { break }
        }
        return responses
    }

    /// Sends `text` on a new connection and reads until `count` responses arrived or the server
    /// closed the connection.
    static func exchange(port: Int, send text: String, expecting count: Int) async throws -> [Response] {
        let channel = try await connect(port: port)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: text))
            return try await read(inbound, expecting: count)
        }
    }

    /// The complete responses at the start of `bytes` (bodies framed by Content-Length).
    static func parse(_ bytes: [UInt8]) -> [Response] {
        var responses: [Response] = []
        var rest = bytes[...]
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while let headEnd = rest.firstRange(of: separator) {
            let lines = String(decoding: rest[..<headEnd.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
            guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else { break }
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            let bodyStart = headEnd.upperBound
            guard rest.distance(from: bodyStart, to: rest.endIndex) >= length else { break }
            let bodyEnd = rest.index(bodyStart, offsetBy: length)
            responses.append(Response(status: status, headers: headers, body: String(decoding: rest[bodyStart..<bodyEnd], as: UTF8.self),
                                      raw: Array(rest[..<bodyEnd])))
            rest = rest[bodyEnd...]
        }
        return responses
    }
}
