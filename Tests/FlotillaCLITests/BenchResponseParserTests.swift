import NIOCore
import Testing

@testable import FlotillaCLI

/// The bench reads its responses from the connection's bytes: every framing a server may use for
/// the answers it gets, cut anywhere, and a clear error for what it cannot frame.
@Suite struct BenchResponseParserTests {
    typealias Response = BenchResponseParser.Response

    static let responses: [(text: String, expected: Response)] = [
        ("HTTP/1.1 204 No Content\r\nDate: x\r\nServer: flotilla\r\n\r\n", Response(status: 204, errorBody: [])),
        ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nvalue", Response(status: 200, errorBody: [])),
        ("HTTP/1.1 404 Not Found\r\ncontent-length: 25\r\n\r\n{\"error\":\"key not found\"}",
         Response(status: 404, errorBody: Array(#"{"error":"key not found"}"#.utf8))),
        // etcd's gateway (Go's net/http) may chunk; trailers after the last chunk.
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"he\r\n9;ext=1\r\nader\":{}}\r\n0\r\nX-Trailer: t\r\n\r\n", Response(status: 200, errorBody: [])),
        ("HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nerror\r\n0\r\n\r\n", Response(status: 503, errorBody: Array("error".utf8))),
        // An interim response, then the real one; a zero length.
        ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Response(status: 200, errorBody: [])),
        ("HTTP/1.0 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}", Response(status: 500, errorBody: Array("{}".utf8))),
    ]

    static func feed(_ parser: inout BenchResponseParser, _ bytes: some Sequence<UInt8>) throws(BenchResponseParser.Malformed) -> [Response] {
        var buffer = ByteBuffer(bytes: Array(bytes))
        return try parser.feed(&buffer)
    }

    @Test func eachFramingInOneRead() throws {
        for (text, expected) in Self.responses {
            var parser = BenchResponseParser()
            #expect(try Self.feed(&parser, text.utf8) == [expected], "\(text.debugDescription)")
        }
    }

    /// All of them back to back, cut at every byte: the same responses, each only once whole.
    @Test func cutAnywhere() throws {
        let all = Array(Self.responses.map(\.text).joined().utf8)
        let expected = Self.responses.map(\.expected)
        for cut in 0...all.count {
            var parser = BenchResponseParser()
            let first = try Self.feed(&parser, all[..<cut])
            let rest = try Self.feed(&parser, all[cut...])
            #expect(first + rest == expected, "cut at \(cut)")
        }
        var parser = BenchResponseParser()
        var byByte: [Response] = []
        for byte in all { byByte += try Self.feed(&parser, [byte]) }
        #expect(byByte == expected)
    }

    @Test func keepsOnlyTheStartOfAFailuresBody() throws {
        let body = String(repeating: "e", count: 2000)
        var parser = BenchResponseParser()
        let answered = try Self.feed(&parser, "HTTP/1.1 500 Oops\r\nContent-Length: 2000\r\n\r\n\(body)HTTP/1.1 204 No Content\r\n\r\n".utf8)
        #expect(answered.map(\.status) == [500, 204])
        #expect(answered.first?.errorBody.count == BenchResponseParser.keptBodyBytes)
    }

    @Test func refusesWhatItCannotFrame() {
        let malformed = [
            "SIP/2.0 200 OK\r\n\r\n",
            "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\n\r\nbody until the connection closes",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            "HTTP/1.1 200 OK\r\n" + String(repeating: "X: y\r\n", count: 4000),
        ]
        for text in malformed {
            var parser = BenchResponseParser()
            #expect(throws: BenchResponseParser.Malformed.self, "\(text.prefix(60).debugDescription)") { try Self.feed(&parser, text.utf8) }
        }
    }
}
