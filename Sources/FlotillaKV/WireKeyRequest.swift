import HTTPTypes

/// A request of the key routes read straight from the connection's bytes: `GET`/`PUT /KEY` or
/// `GET`/`PUT`/`DELETE /v1/kv/KEY`, HTTP/1.1, its body framed by `Content-Length`.
///
/// Only requests that are plainly well-formed and plainly simple are parsed here; everything
/// else is `.unsupported`, and `KeyValueWirePath` hands the connection to NIO's HTTP decoder and
/// the router, which are the reference for what a request means and how a malformed one is
/// refused. So this parser never answers an error of HTTP itself: it only declines.
struct WireKeyRequest: Equatable {
    var route: KeyRoute
    /// The body of a `PUT` (empty when it has none); empty for the other methods.
    var value: [UInt8]
    /// `Connection: close`: the connection closes after the answer.
    var closeAfter: Bool

    enum Parse: Equatable {
        /// The bytes so far are the start of a request this parser may take: read more.
        case incomplete
        /// Not a request this parser takes (another route or method, a query, chunked or
        /// `Expect`, HTTP/1.0, anything malformed or unusual): the pipeline's decoder must read
        /// these bytes.
        case unsupported
        /// A whole request, `length` bytes from the start.
        case request(WireKeyRequest, length: Int)
    }

    /// A request head longer than this is left to the decoder (whose own limits apply).
    static let maxHeadBytes = 8192
    /// As NIO's decoder, which refuses more header fields than this.
    static let maxHeaderFields = 100

    /// Parses the request at the start of `bytes`. A `PUT` whose declared body exceeds
    /// `maxValueBytes` is `.unsupported` (the router answers 413), and so is a request a browser
    /// sent (`Origin` or `Sec-Fetch-Site`) or, when `requiringLoopbackHost`, one whose `Host` is
    /// not a loopback name: the router's `BrowserProtection` judges those.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxValueBytes: Int, requiringLoopbackHost: Bool = false) -> Parse {
        // The request line and the header fields end at the first empty line.
        let searchEnd = min(bytes.count, maxHeadBytes)
        guard let headEnd = endOfHead(bytes, searchingUpTo: searchEnd) else {
            return searchEnd == maxHeadBytes ? .unsupported : .incomplete
        }
        var lines = HeadLines(bytes: bytes, end: headEnd)
        guard let requestLine = lines.next(), let (method, target) = parseRequestLine(bytes, requestLine),
              let route = KeyRoute(method: method, path: target[...])
        else { return .unsupported }

        var contentLength: Int?
        var closeAfter = false
        var fieldCount = 0
        while let line = lines.next() {
            fieldCount += 1
            guard fieldCount <= maxHeaderFields, let field = parseField(bytes, line) else { return .unsupported }
            switch field.name {
            case .contentLength:
                // NIO's parser refuses a tab after the digits (found by the differential test):
                // tabs in this field are left to it.
                guard contentLength == nil, let length = decimal(bytes, field.value), !line.contains(where: { bytes[$0] == tab })
                else { return .unsupported }
                contentLength = length
            case .connection:
                // NIO reads `close` followed by a tab as no close (found by the differential
                // test): tabs in this field are left to it.
                guard !line.contains(where: { bytes[$0] == tab }) else { return .unsupported }
                let options = connectionOptions(bytes, field.value)
                if options.upgrade { return .unsupported }
                if options.close { closeAfter = true }
            case .transferEncoding, .expect, .upgrade, .origin, .secFetchSite:
                return .unsupported
            case .host:
                if requiringLoopbackHost
                    && !BrowserProtection.isLoopbackHost(UnsafeRawBufferPointer(rebasing: bytes[field.value]))
                {
                    return .unsupported
                }
            case .other:
                break
            }
        }

        let bodyLength = contentLength ?? 0
        if route.method != .put && bodyLength > 0 { return .unsupported }
        if bodyLength > maxValueBytes { return .unsupported }
        let bodyStart = headEnd + 4
        guard bytes.count - bodyStart >= bodyLength else { return .incomplete }
        let value = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[bodyStart..<bodyStart + bodyLength]))
        return .request(WireKeyRequest(route: route, value: value, closeAfter: closeAfter), length: bodyStart + bodyLength)
    }

    // MARK: The head

    private static let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
    private static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")

    /// The index of the `\r\n\r\n` that ends the head, if it starts before `limit`.
    private static func endOfHead(_ bytes: UnsafeRawBufferPointer, searchingUpTo limit: Int) -> Int? {
        guard limit >= 4 else { return nil }
        var i = 0
        while i + 3 < bytes.count && i < limit {
            if bytes[i + 3] == lf && bytes[i + 2] == cr && bytes[i + 1] == lf && bytes[i] == cr { return i }
            i += 1
        }
        return nil
    }

    /// The lines of the head (without their `\r\n`), the request line first. A bare `\n`
    /// inside a line stays in it, and makes that line unsupported.
    private struct HeadLines {
        let bytes: UnsafeRawBufferPointer
        let end: Int
        var position = 0

        mutating func next() -> Range<Int>? {
            guard position < end else { return nil }
            var i = position
            while i < end && !(bytes[i] == WireKeyRequest.cr && bytes[i + 1] == WireKeyRequest.lf) { i += 1 }
            defer { position = i + 2 }
            return position..<i
        }
    }

    /// `METHOD SP /target SP HTTP/1.1`, the method one of those of the key routes, the target
    /// visible ASCII.
    private static func parseRequestLine(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> (HTTPRequest.Method, String)? {
        let version: StaticString = "HTTP/1.1"
        guard line.count > version.utf8CodeUnitCount + 4 else { return nil }
        let versionStart = line.upperBound - version.utf8CodeUnitCount
        guard matches(bytes, versionStart, version), bytes[versionStart - 1] == space else { return nil }

        var methodEnd = line.lowerBound
        while methodEnd < versionStart - 1 && bytes[methodEnd] != space { methodEnd += 1 }
        let method: HTTPRequest.Method
        switch methodEnd - line.lowerBound {
        case 3 where matches(bytes, line.lowerBound, "GET"): method = .get
        case 3 where matches(bytes, line.lowerBound, "PUT"): method = .put
        case 6 where matches(bytes, line.lowerBound, "DELETE"): method = .delete
        default: return nil
        }
        let target = (methodEnd + 1)..<(versionStart - 1)
        guard !target.isEmpty, bytes[target.lowerBound] == UInt8(ascii: "/"),
              target.allSatisfy({ bytes[$0] > space && bytes[$0] < 0x7F })
        else { return nil }
        return (method, String(decoding: UnsafeRawBufferPointer(rebasing: bytes[target]), as: UTF8.self))
    }

    private static func matches(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard start + count <= bytes.count else { return false }
        return text.withUTF8Buffer { expected in
            (0..<count).allSatisfy { bytes[start + $0] == expected[$0] }
        }
    }

    // MARK: Header fields

    private enum FieldName {
        case contentLength, connection, transferEncoding, expect, upgrade, host, origin, secFetchSite, other
    }

    private struct Field {
        var name: FieldName
        /// The value without the whitespace around it.
        var value: Range<Int>
    }

    /// `name: value`, the name a token, the value visible characters, spaces and tabs (and
    /// obs-text); nil for anything else, a folded line among them.
    private static func parseField(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> Field? {
        var colon = line.lowerBound
        while colon < line.upperBound && bytes[colon] != UInt8(ascii: ":") {
            guard isTokenCharacter(bytes[colon]) else { return nil }
            colon += 1
        }
        guard colon > line.lowerBound, colon < line.upperBound else { return nil }
        let value = (colon + 1)..<line.upperBound
        for i in value {
            let byte = bytes[i]
            guard byte == tab || byte >= space && byte != 0x7F else { return nil }
        }

        let name: FieldName
        switch colon - line.lowerBound {
        case 14 where equalsIgnoringCase(bytes, line.lowerBound, "content-length"): name = .contentLength
        case 10 where equalsIgnoringCase(bytes, line.lowerBound, "connection"): name = .connection
        case 17 where equalsIgnoringCase(bytes, line.lowerBound, "transfer-encoding"): name = .transferEncoding
        case 6 where equalsIgnoringCase(bytes, line.lowerBound, "expect"): name = .expect
        case 7 where equalsIgnoringCase(bytes, line.lowerBound, "upgrade"): name = .upgrade
        case 4 where equalsIgnoringCase(bytes, line.lowerBound, "host"): name = .host
        case 6 where equalsIgnoringCase(bytes, line.lowerBound, "origin"): name = .origin
        case 14 where equalsIgnoringCase(bytes, line.lowerBound, "sec-fetch-site"): name = .secFetchSite
        default: name = .other
        }
        return Field(name: name, value: trimmingWhitespace(bytes, value))
    }

    /// RFC 9110's tchar.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// Whether the bytes at `start` spell `lowercase`, ASCII letters in either case.
    private static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ lowercase: StaticString) -> Bool {
        lowercase.withUTF8Buffer { expected in
            (0..<expected.count).allSatisfy { bytes[start + $0] | 0x20 == expected[$0] }
        }
    }

    /// A Content-Length: 1 to 15 decimal digits, nothing else.
    private static func decimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard (1...15).contains(range.count) else { return nil }
        var value = 0
        for i in range {
            let digit = bytes[i] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
        }
        return value
    }

    /// Whether the comma-separated options of a Connection field include `close`, `upgrade`.
    private static func connectionOptions(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> (close: Bool, upgrade: Bool) {
        var options = (close: false, upgrade: false)
        var start = range.lowerBound
        while start <= range.upperBound {
            var end = start
            while end < range.upperBound && bytes[end] != UInt8(ascii: ",") { end += 1 }
            let token = trimmingWhitespace(bytes, start..<end)
            if token.count == 5 && equalsIgnoringCase(bytes, token.lowerBound, "close") { options.close = true }
            if token.count == 7 && equalsIgnoringCase(bytes, token.lowerBound, "upgrade") { options.upgrade = true }
            start = end + 1
        }
        return options
    }

    /// `range` without the spaces and tabs at either end.
    private static func trimmingWhitespace(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
        var (start, end) = (range.lowerBound, range.upperBound)
        while start < end && (bytes[start] == space || bytes[start] == tab) { start += 1 }
        while end > start && (bytes[end - 1] == space || bytes[end - 1] == tab) { end -= 1 }
        return start..<end
    }
}
