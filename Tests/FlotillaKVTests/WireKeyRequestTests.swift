import HTTPTypes
import Testing

@testable import FlotillaKV

/// What `KeyValueWirePath` takes from the wire itself and what it leaves to NIO's decoder and
/// the router: it must take only what it understands completely, and wait for the rest of a
/// request it may take.
@Suite struct WireKeyRequestTests {
    static func parse(_ text: String, maxValueBytes: Int = 1 << 20) -> WireKeyRequest.Parse {
        Array(text.utf8).withUnsafeBytes { WireKeyRequest.parse($0, maxValueBytes: maxValueBytes) }
    }

    static func request(_ method: HTTPRequest.Method, _ key: String, _ value: String = "", closeAfter: Bool = false) -> WireKeyRequest {
        WireKeyRequest(route: KeyRoute(method: method, path: (method == .delete ? "/v1/kv/" + key : "/" + key)[...])!,
                       value: Array(value.utf8), closeAfter: closeAfter)
    }

    @Test func takesTheKeyRoutes() {
        let put = "PUT /k1 HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nContent-Length: 3\r\n\r\nabc"
        #expect(Self.parse(put) == .request(Self.request(.put, "k1", "abc"), length: put.utf8.count))

        let get = "GET /a%2Fb HTTP/1.1\r\nHost: t\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
        #expect(Self.parse(get) == .request(Self.request(.get, "a%2Fb"), length: get.utf8.count))

        let delete = "DELETE /v1/kv/k HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        #expect(Self.parse(delete) == .request(Self.request(.delete, "k"), length: delete.utf8.count))

        // Field names in any case, whitespace around values, an empty value, no Host, no body.
        let loose = "PUT /v1/kv/x HTTP/1.1\r\ncOnTeNt-LeNgTh:  2 \r\nX-Empty:\r\nX-Tab:\tt\t\r\n\r\nhi"
        let route = KeyRoute(method: .put, path: "/v1/kv/x")!
        #expect(Self.parse(loose) == .request(WireKeyRequest(route: route, value: Array("hi".utf8), closeAfter: false), length: loose.utf8.count))
        let empty = "PUT /e HTTP/1.1\r\n\r\n"
        #expect(Self.parse(empty) == .request(Self.request(.put, "e"), length: empty.utf8.count))
    }

    @Test func connectionCloseIsNoted() {
        for field in ["Connection: close", "connection: CLOSE", "Connection: keep-alive, close", "Connection: te,  Close "] {
            let text = "GET /k HTTP/1.1\r\n\(field)\r\n\r\n"
            #expect(Self.parse(text) == .request(Self.request(.get, "k", closeAfter: true), length: text.utf8.count), "\(field)")
        }
        let keepAlive = "GET /k HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"
        #expect(Self.parse(keepAlive) == .request(Self.request(.get, "k"), length: keepAlive.utf8.count))
    }

    /// Only the first request is taken; what follows it stays for the next parse.
    @Test func pipelinedRequestsAreTakenOneAtATime() {
        let first = "PUT /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
        #expect(Self.parse(first + "GET /a HTTP/1.1\r\n\r\n") == .request(Self.request(.put, "a", "x"), length: first.utf8.count))
        #expect(Self.parse(first + "GET /health HT") == .request(Self.request(.put, "a", "x"), length: first.utf8.count))
    }

    /// Cut anywhere before its end, a request is incomplete: never taken short, never refused.
    @Test func everyPrefixIsIncomplete() {
        let texts = [
            "PUT /v1/kv/key HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
            "GET /k HTTP/1.1\r\n\r\n",
        ]
        for text in texts {
            let bytes = Array(text.utf8)
            for end in 0..<bytes.count {
                let parse = bytes[..<end].withUnsafeBytes { WireKeyRequest.parse($0, maxValueBytes: 100) }
                #expect(parse == .incomplete, "cut at \(end) of \(text.debugDescription)")
            }
            guard case .request(_, let length) = Self.parse(text) else {
                Issue.record("not taken whole: \(text.debugDescription)")
                continue
            }
            #expect(length == bytes.count)
        }
    }

    @Test func leavesEverythingElseToTheDecoder() {
        let unsupported = [
            // Other routes, methods, versions, targets.
            "GET /health HTTP/1.1\r\n\r\n", "POST /k HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", "DELETE /k HTTP/1.1\r\n\r\n",
            "HEAD /k HTTP/1.1\r\n\r\n", "GET /k?serializable=true HTTP/1.1\r\n\r\n", "GET /v1/status HTTP/1.1\r\n\r\n",
            "GET /k HTTP/1.0\r\n\r\n", "GET /k HTTP/2.0\r\n\r\n", "GET http://host/k HTTP/1.1\r\n\r\n", "get /k HTTP/1.1\r\n\r\n",
            "GET  /k HTTP/1.1\r\n\r\n", "GET /k  HTTP/1.1\r\n\r\n", "GET /k\tx HTTP/1.1\r\n\r\n", "GET /k\u{7F} HTTP/1.1\r\n\r\n",
            "NOT HTTP AT ALL\r\n\r\n", "\r\n\r\n",
            // Framing this parser does not do, and framing that is ambiguous or wrong.
            "PUT /k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
            "PUT /k HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: identity\r\n\r\nx",
            "PUT /k HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            "PUT /k HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", "PUT /k HTTP/1.1\r\nContent-Length: 1 1\r\n\r\nx",
            "PUT /k HTTP/1.1\r\nContent-Length: \r\n\r\n", "PUT /k HTTP/1.1\r\nContent-Length: 1234567890123456\r\n\r\n",
            "PUT /k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
            "GET /k HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "GET /k HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            // A body on a read or a delete.
            "GET /k HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", "DELETE /v1/kv/k HTTP/1.1\r\nContent-Length: 2\r\n\r\nxy",
            // Malformed header fields.
            "GET /k HTTP/1.1\r\nHost t\r\n\r\n", "GET /k HTTP/1.1\r\nHo st: t\r\n\r\n", "GET /k HTTP/1.1\r\n: t\r\n\r\n",
            "GET /k HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", "GET /k HTTP/1.1\r\nHost: a\nb\r\n\r\n",
            "GET /k HTTP/1.1\r\nHost: a\rb\r\n\r\n", "GET /k HTTP/1.1\r\nHost: a\u{0}b\r\n\r\n",
            "GET /k HTTP/1.1\nHost: t\r\n\r\n",
            // Tabs around the fields this parser reads: NIO refuses some and reads others its own way.
            "PUT /k HTTP/1.1\r\nContent-Length: 1\t\r\n\r\nx", "PUT /k HTTP/1.1\r\nContent-Length:\t1\r\n\r\nx",
            "GET /k HTTP/1.1\r\nConnection:\tclose\t\r\n\r\n",
        ]
        for text in unsupported {
            #expect(Self.parse(text) == .unsupported, "\(text.debugDescription)")
        }
    }

    @Test func valuesOverTheLimitGoToTheRouter() {
        let atLimit = "PUT /k HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"
        #expect(Self.parse(atLimit, maxValueBytes: 4) == .request(Self.request(.put, "k", "abcd"), length: atLimit.utf8.count))
        // Refused on the declared length, before the body arrives (the router answers 413).
        #expect(Self.parse("PUT /k HTTP/1.1\r\nContent-Length: 5\r\n\r\n", maxValueBytes: 4) == .unsupported)
    }

    @Test func aHeadMustEndWithinItsLimit() {
        let filler = "X-Filler: " + String(repeating: "f", count: 100) + "\r\n"
        let many = "GET /k HTTP/1.1\r\n" + String(repeating: filler, count: 90)
        #expect(Self.parse(many) == .unsupported)
        let manyFields = "GET /k HTTP/1.1\r\n" + String(repeating: "A: b\r\n", count: 101) + "\r\n"
        #expect(Self.parse(manyFields) == .unsupported)
        let enoughFields = "GET /k HTTP/1.1\r\n" + String(repeating: "A: b\r\n", count: 100) + "\r\n"
        #expect(Self.parse(enoughFields) == .request(Self.request(.get, "k"), length: enoughFields.utf8.count))
    }
}
