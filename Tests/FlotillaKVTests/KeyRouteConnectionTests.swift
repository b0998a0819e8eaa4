import NIOCore
import NIOHTTP1
import Testing

@testable import FlotillaKV

/// `KeyRouteConnection` alone, event by event: the order of answers across the handler and the
/// router, what waits while a request is served, reads held back, errors and shutdown.
@Suite struct KeyRouteConnectionTests {
    struct DecodeFailure: Error {}

    static func head(_ method: HTTPMethod, _ uri: String, _ fields: [(String, String)] = []) -> KeyRouteConnection.Inbound {
        .part(.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(fields))))
    }
    static func body(_ text: String) -> KeyRouteConnection.Inbound { .part(.body(ByteBuffer(string: text))) }
    static let end = KeyRouteConnection.Inbound.part(.end(nil))

    /// What an action forwards, as text: `head GET /x`, `body`, `end`, `error`.
    static func forwarded(_ action: KeyRouteConnection.Action?) -> [String]? {
        guard case .forward(let items)? = action else { return nil }
        return items.map { item in
            switch item {
            case .part(.head(let head)): "head \(head.method) \(head.uri)"
            case .part(.body): "body"
            case .part(.end): "end"
            case .error: "error"
            }
        }
    }

    static func served(_ action: KeyRouteConnection.Action?) -> KeyRouteRequest? {
        guard case .serve(let request)? = action else { return nil }
        return request
    }

    static func isNone(_ action: KeyRouteConnection.Action?) -> Bool {
        guard case .none? = action else { return false }
        return true
    }

    @Test func aPutIsServedWithItsBodyWhole() throws {
        var connection = KeyRouteConnection(maxValueBytes: 16)
        do {
            let holds = Self.isNone(connection.received(Self.head(.PUT, "/k", [("Content-Length", "6")])))
            #expect(holds)
        }
        do {
            let holds = Self.isNone(connection.received(Self.body("abc")))
            #expect(holds)
        }
        do {
            let holds = Self.isNone(connection.received(Self.body("def")))
            #expect(holds)
        }
        let request = try #require(Self.served(connection.received(Self.end)))
        #expect(request.method == .put && request.rawKey == "k" && request.value == Array("abcdef".utf8))
        do {
            let holds = connection.answerWritten() == false
            #expect(holds)
        }
        do {
            let holds = connection.nextWaiting() == nil
            #expect(holds)
        }
    }

    /// Requests behind one being served wait, the reads behind them are held back, and after
    /// the answer they are taken in order: a key request served, then a router request handed
    /// on with everything after it — an error of the decoder included, in its place.
    @Test func whatArrivesWhileServingWaitsAndKeepsItsOrder() throws {
        var connection = KeyRouteConnection(maxValueBytes: 16)
        _ = connection.received(Self.head(.GET, "/a"))
        do {
            let holds = Self.served(connection.received(Self.end))?.rawKey == "a"
            #expect(holds)
        }
        let readsWhileNothingWaits = connection.shouldRead()
        #expect(readsWhileNothingWaits)
        for inbound in [Self.head(.GET, "/b"), Self.end, Self.head(.GET, "/health"), Self.end,
                        Self.head(.GET, "/c"), Self.end, .error(DecodeFailure())] {
            do {
                let holds = Self.isNone(connection.received(inbound))
                #expect(holds)
            }
        }
        do {
            let holds = !connection.shouldRead()
            #expect(holds)
        }
        do {
            let holds = !connection.takeWithheldRead()
            #expect(holds)
        }

        do {
            let holds = connection.answerWritten() == false
            #expect(holds)
        }
        #expect(Self.isNone(connection.nextWaiting()))  // /b's head
        do {
            let holds = Self.served(connection.nextWaiting())?.rawKey == "b"
            #expect(holds)
        }
        #expect(connection.nextWaiting() == nil)  // serving /b
        do {
            let holds = connection.answerWritten() == false
            #expect(holds)
        }
        do {
            let holds = Self.forwarded(connection.nextWaiting()) == ["head GET /health", "end", "head GET /c", "end", "error"]
            #expect(holds)
        }
        #expect(connection.isHandedOn)
        do {
            let holds = connection.takeWithheldRead()
            #expect(holds)
        }
        // From now on everything goes to the router, at once.
        do {
            let holds = Self.forwarded(connection.received(Self.head(.PUT, "/d"))) == ["head PUT /d"]
            #expect(holds)
        }
    }

    @Test func aRouterRequestHandsTheConnectionOnForGood() {
        var connection = KeyRouteConnection(maxValueBytes: 16)
        do {
            let holds = Self.forwarded(connection.received(Self.head(.GET, "/v1/status"))) == ["head GET /v1/status"]
            #expect(holds)
        }
        do {
            let holds = Self.forwarded(connection.received(Self.end)) == ["end"]
            #expect(holds)
        }
        do {
            let holds = Self.forwarded(connection.received(Self.head(.GET, "/k"))) == ["head GET /k"]
            #expect(holds)
        }
    }

    @Test func anErrorBetweenRequestsGoesToTheRouter() {
        var connection = KeyRouteConnection(maxValueBytes: 16)
        do {
            let holds = Self.forwarded(connection.received(.error(DecodeFailure()))) == ["error"]
            #expect(holds)
        }
        #expect(connection.isHandedOn)
    }

    @Test func anErrorInsideABodyGoesToTheRouter() {
        var connection = KeyRouteConnection(maxValueBytes: 16)
        _ = connection.received(Self.head(.PUT, "/k", [("Content-Length", "4")]))
        _ = connection.received(Self.body("ab"))
        do {
            let holds = Self.forwarded(connection.received(.error(DecodeFailure()))) == ["error"]
            #expect(holds)
        }
    }

    @Test func connectionCloseClosesAfterTheAnswerAndDropsWhatWaits() {
        var connection = KeyRouteConnection(maxValueBytes: 16)
        _ = connection.received(Self.head(.GET, "/k", [("Connection", "close")]))
        _ = connection.received(Self.end)
        _ = connection.received(Self.head(.GET, "/k"))
        do {
            let holds = connection.answerWritten() == true
            #expect(holds)
        }
        do {
            let holds = connection.nextWaiting() == nil
            #expect(holds)
        }
        do {
            let holds = Self.isNone(connection.received(Self.end))
            #expect(holds)
        }
    }

    @Test func aGracefulShutdownClosesIdleConnectionsAtOnceAndBusyOnesAfterTheAnswer() {
        var idle = KeyRouteConnection(maxValueBytes: 16)
        do {
            let holds = idle.quiesce() == .close
            #expect(holds)
        }

        var busy = KeyRouteConnection(maxValueBytes: 16)
        _ = busy.received(Self.head(.PUT, "/k", [("Content-Length", "1")]))
        do {
            let holds = busy.quiesce() == .closeAfterAnswer
            #expect(holds)
        }
        _ = busy.received(Self.body("v"))
        do {
            let holds = Self.served(busy.received(Self.end)) != nil
            #expect(holds)
        }
        do {
            let holds = busy.answerWritten() == true
            #expect(holds)
        }

        var handedOn = KeyRouteConnection(maxValueBytes: 16)
        _ = handedOn.received(Self.head(.GET, "/health"))
        do {
            let holds = handedOn.quiesce() == .forward
            #expect(holds)
        }
    }
}
