import NIOCore

/// The HTTP/1.1 responses on a `flotilla bench` connection, read straight from its bytes: each
/// response's status, and the start of a failure's body (for the first-error message).
///
/// Why not NIO's HTTP client codec: on a machine the bench shares with the servers it
/// measures, its encoder and decoder take much of the bench's CPU (measured: see
/// Benchmarks/README.md), and that CPU comes out of the servers' throughput — unequally, the
/// faster server losing more. The bench sends one
/// plain request at a time and needs only the status and the framing, so this reads exactly
/// that: bodies framed by `Content-Length` or chunked (as etcd's gateway may send), no body for
/// 1xx, 204 and 304. Anything else is malformed, and the connection is given up.
struct BenchResponseParser {
    struct Response: Equatable {
        var status: Int
        /// The start of the body of a response that is not a 2xx (at most `keptBodyBytes`).
        var errorBody: [UInt8]
    }

    struct Malformed: Error, Equatable, CustomStringConvertible {
        var description: String
    }

    static let keptBodyBytes = 512
    static let maxHeadBytes = 16 * 1024

    private enum State {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkEnd
        case trailers
    }

    private var state = State.head
    private var pending = ByteBuffer()
    private var status = 0
    private var errorBody: [UInt8] = []

    /// Takes `bytes` and returns the responses they complete, in order.
    mutating func feed(_ bytes: inout ByteBuffer) throws(Malformed) -> [Response] {
        if pending.readableBytes == 0 {
            pending = bytes
        } else {
            pending.writeBuffer(&bytes)
        }
        var responses: [Response] = []
        while let response = try next() { responses.append(response) }
        if pending.readableBytes == 0 { pending.clear() } else if pending.readerIndex > 1 << 16 { pending.discardReadBytes() }
        return responses
    }

    /// The next complete response in `pending`, nil when more bytes are needed.
    private mutating func next() throws(Malformed) -> Response? {
        while true {
            switch state {
            case .head:
                guard let head = try takeLine(endingWith: "\r\n\r\n", limit: Self.maxHeadBytes) else { return nil }
                let (status, framing) = try Self.parseHead(head)
                self.status = status
                errorBody = []
                switch framing {
                case .none:
                    if status < 200 { continue }  // an interim response: the real one follows
                    return finish()
                case .length(let length):
                    state = .body(remaining: length)
                case .chunked:
                    state = .chunkSize
                }
            case .body(let remaining):
                let rest = takeBody(remaining)
                if rest > 0 {
                    state = .body(remaining: rest)
                    return nil
                }
                return finish()
            case .chunkSize:
                guard let line = try takeLine(endingWith: "\r\n", limit: 1024) else { return nil }
                let digits = line.prefix { $0 != UInt8(ascii: ";") && $0 != UInt8(ascii: " ") }
                guard !digits.isEmpty, digits.count <= 15, let size = Int(String(decoding: digits, as: UTF8.self), radix: 16) else {
                    throw Malformed(description: "a bad chunk size line")
                }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let rest = takeBody(remaining)
                if rest > 0 {
                    state = .chunkData(remaining: rest)
                    return nil
                }
                state = .chunkEnd
            case .chunkEnd:
                guard pending.readableBytes >= 2 else { return nil }
                guard pending.readBytes(length: 2) == [13, 10] else { throw Malformed(description: "a chunk not followed by CRLF") }
                state = .chunkSize
            case .trailers:
                guard let line = try takeLine(endingWith: "\r\n", limit: Self.maxHeadBytes) else { return nil }
                if line.isEmpty { return finish() }
            }
        }
    }

    private mutating func finish() -> Response {
        state = .head
        return Response(status: status, errorBody: errorBody)
    }

    /// Takes up to `remaining` body bytes from `pending`, keeping the start of a failure's
    /// body; returns how many are still to come.
    private mutating func takeBody(_ remaining: Int) -> Int {
        let count = min(remaining, pending.readableBytes)
        if count > 0 && !(200..<300).contains(status) && errorBody.count < Self.keptBodyBytes {
            errorBody += pending.readableBytesView.prefix(min(count, Self.keptBodyBytes - errorBody.count))
        }
        pending.moveReaderIndex(forwardBy: count)
        return remaining - count
    }

    /// The bytes before the next `terminator` (consumed with it), nil if it has not arrived.
    private mutating func takeLine(endingWith terminator: StaticString, limit: Int) throws(Malformed) -> [UInt8]? {
        let view = pending.readableBytesView
        let end = terminator.withUTF8Buffer { terminator -> Int? in
            var i = view.startIndex
            while i + terminator.count <= view.endIndex {
                if view[i] == terminator[0] && view[i..<(i + terminator.count)].elementsEqual(terminator) { return i - view.startIndex }
                i += 1
            }
            return nil
        }
        guard let end else {
            if pending.readableBytes > limit { throw Malformed(description: "a line or head over \(limit) bytes") }
            return nil
        }
        let line = pending.readBytes(length: end) ?? []
        pending.moveReaderIndex(forwardBy: terminator.utf8CodeUnitCount)
        return line
    }

    private enum Framing: Equatable {
        case none, length(Int), chunked
    }

    /// The status line's code and how the body is framed. On bytes: a response is read per
    /// request, and strings per header line cost more than the rest of the bench.
    private static func parseHead(_ head: [UInt8]) throws(Malformed) -> (Int, Framing) {
        var length: Int?
        var chunked = false
        var status = 0
        var lineStart = 0
        var isStatusLine = true
        while lineStart <= head.count {
            var lineEnd = lineStart
            while lineEnd < head.count && head[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            let line = head[lineStart..<(lineEnd > lineStart && head[lineEnd - 1] == UInt8(ascii: "\r") ? lineEnd - 1 : lineEnd)]
            lineStart = lineEnd + 1
            if isStatusLine {
                isStatusLine = false
                status = try statusCode(line)
                continue
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw Malformed(description: "a header line without a colon") }
            let value = trimmed(line[(colon + 1)...])
            if equalsIgnoringCase(line[..<colon], "content-length") {
                guard let n = decimal(value), length == nil || length == n else { throw Malformed(description: "a bad Content-Length") }
                length = n
            } else if equalsIgnoringCase(line[..<colon], "transfer-encoding") {
                // The last coding must be chunked (RFC 9112 §6.3); nothing else is read here.
                let last = value.lastIndex(of: UInt8(ascii: ",")).map { trimmed(value[($0 + 1)...]) } ?? value
                guard equalsIgnoringCase(last, "chunked") else {
                    throw Malformed(description: "a transfer coding other than chunked: \(String(decoding: value, as: UTF8.self))")
                }
                chunked = true
            }
        }
        if status < 200 || status == 204 || status == 304 { return (status, .none) }
        if chunked { return (status, .chunked) }
        guard let length else { throw Malformed(description: "a response without Content-Length or chunked framing") }
        return (status, length == 0 ? .none : .length(length))
    }

    /// `HTTP/1.x DDD ...`: the code.
    private static func statusCode(_ line: ArraySlice<UInt8>) throws(Malformed) -> Int {
        guard line.count >= 12, line.starts(with: "HTTP/1.".utf8), line[line.startIndex + 8] == UInt8(ascii: " "),
              let code = decimal(line[(line.startIndex + 9)..<(line.startIndex + 12)]), (100...599).contains(code)
        else { throw Malformed(description: "not an HTTP/1.x status line") }
        return code
    }

    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var bytes = bytes
        while let first = bytes.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { bytes.removeFirst() }
        while let last = bytes.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { bytes.removeLast() }
        return bytes
    }

    /// ASCII letters in either case against `lowercase`.
    private static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        lowercase.withUTF8Buffer { expected in
            bytes.count == expected.count && zip(bytes, expected).allSatisfy { byte, letter in
                byte == letter || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") && byte | 0x20 == letter)
            }
        }
    }

    /// 1 to 18 decimal digits, nothing else.
    private static func decimal(_ bytes: ArraySlice<UInt8>) -> Int? {
        guard (1...18).contains(bytes.count) else { return nil }
        var value = 0
        for byte in bytes {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
        }
        return value
    }
}
