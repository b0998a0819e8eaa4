import NIOCore
import NIOHTTP1

/// A key route's request as NIO's decoder read it, while its body arrives.
struct KeyRouteRequest: Sendable {
    var method: APIRoute.KeyMethod
    /// The key segment as it came, percent-encoded.
    var rawKey: Substring
    /// The body so far (a `PUT`'s value).
    var value: [UInt8]
    /// The client asked to close after the answer (`Connection: close`).
    var closeAfter: Bool
    /// `BrowserProtection`'s inputs: `Host`, `Origin`, `Sec-Fetch-Site`.
    var host: String?
    var origin: String?
    var fetchSite: String?

    /// The request of `head` when it is one the handler serves: HTTP/1.1, a key route of the
    /// table (`APIRoute.keyRequest`), no query, a body only on a `PUT` and framed by a
    /// `Content-Length` within `maxValueBytes`, and none of `Expect`, `Upgrade` or more than one
    /// `Host`. Anything else goes to the router, which is the reference for what a request means
    /// (and answers 413 before reading a declared body over the limit).
    init?(head: HTTPRequestHead, maxValueBytes: Int) {
        guard head.version == .http1_1 else { return nil }
        let method: APIRoute.KeyMethod
        switch head.method {
        case .GET: method = .get
        case .PUT: method = .put
        case .DELETE: method = .delete
        default: return nil
        }
        let uri = head.uri[...]
        guard !uri.contains(where: { $0 == "?" || $0 == "#" }),
              let (_, rawKey) = APIRoute.keyRequest(method: method, path: uri)
        else { return nil }

        let headers = head.headers
        guard !headers.contains(name: "transfer-encoding"), !headers.contains(name: "expect"),
              !headers.contains(name: "upgrade")
        else { return nil }
        let length = headers["content-length"]
        let declared: Int
        switch length.count {
        case 0: declared = 0
        case 1:
            guard let value = Int(length[0]), value >= 0 else { return nil }
            declared = value
        default: return nil
        }
        guard declared == 0 || (method == .put && declared <= maxValueBytes) else { return nil }
        let hosts = headers["host"]
        guard hosts.count <= 1 else { return nil }

        self.method = method
        self.rawKey = rawKey
        self.value = []
        if declared > 0 { value.reserveCapacity(declared) }
        self.closeAfter = !head.isKeepAlive
        self.host = hosts.first
        self.origin = headers.first(name: "origin")
        self.fetchSite = headers.first(name: "sec-fetch-site")
    }
}

/// The state of one connection's key-route handling, in the NIO idiom: each event goes in, the
/// handler does what comes out. Invariants:
/// - HTTP/1.1 answers in request order: while a request is served, what arrives after it waits
///   in `waiting`, and is taken only once its answer is written.
/// - Once a request is not a key route, every part and error, from that request's head on, goes
///   to Hummingbird's codec for the rest of the connection (`handedOn`), in the order it came.
struct KeyRouteConnection {
    enum State {
        /// Between requests.
        case idle
        /// A key route's head was taken; its body and end arrive.
        case reading(KeyRouteRequest)
        /// A key route's operation is under way; its answer is not written yet.
        case serving(closeAfter: Bool)
        /// Everything goes to the router from here on.
        case handedOn
        /// The connection is being closed.
        case closed
    }

    /// What arrived from the decoder.
    enum Inbound {
        case part(HTTPServerRequestPart)
        case error(any Error)
    }

    /// What the handler must do.
    enum Action {
        /// Nothing yet.
        case none
        /// Hand these to the router, in order.
        case forward([Inbound])
        /// Carry out this request and answer it (`answerWritten` after).
        case serve(KeyRouteRequest)
    }

    private(set) var state = State.idle
    /// What arrived while a request was served.
    private var waiting = CircularBuffer<Inbound>()
    /// A graceful shutdown asked to close once the request under way is answered.
    private var quiescing = false
    /// A read the pipeline asked for while requests waited; issued once they are taken.
    private var readWithheld = false
    private let maxValueBytes: Int

    init(maxValueBytes: Int) {
        self.maxValueBytes = maxValueBytes
    }

    /// Whether `state` is `handedOn`.
    var isHandedOn: Bool {
        if case .handedOn = state { return true }
        return false
    }

    /// A part or an error from the decoder.
    mutating func received(_ inbound: Inbound) -> Action {
        switch state {
        case .handedOn: return .forward([inbound])
        case .serving: waiting.append(inbound); return .none
        case .closed: return .none
        case .idle, .reading: return take(inbound)
        }
    }

    private mutating func take(_ inbound: Inbound) -> Action {
        switch (state, inbound) {
        case (.idle, .part(.head(let head))):
            if let request = KeyRouteRequest(head: head, maxValueBytes: maxValueBytes) {
                state = .reading(request)
                return .none
            }
            return handOn(from: inbound)
        case (.reading(var request), .part(.body(let bytes))):
            // The head declared the length, within the limit, and the decoder frames the body
            // by it: the value cannot grow past it.
            state = .idle  // no copy-on-write of the value while it grows
            request.value.append(contentsOf: bytes.readableBytesView)
            state = .reading(request)
            return .none
        case (.reading(let request), .part(.end)):
            state = .serving(closeAfter: request.closeAfter)
            return .serve(request)
        default:
            // An error, or parts in an order NIO's decoder does not make: the router's
            // handling is the reference for both.
            return handOn(from: inbound)
        }
    }

    /// Hands the connection on, from `inbound` and with everything that waits behind it.
    private mutating func handOn(from inbound: Inbound) -> Action {
        state = .handedOn
        var parts = [inbound]
        while let next = waiting.popFirst() { parts.append(next) }
        return .forward(parts)
    }

    /// The answer to the request served was written. Returns whether to close the connection.
    mutating func answerWritten() -> Bool {
        guard case .serving(let closeAfter) = state else { return false }
        if closeAfter || quiescing {
            state = .closed
            waiting.removeAll()
            return true
        }
        state = .idle
        return false
    }

    /// The next thing to do with what waited, once the previous answer is written; nil when
    /// nothing waits or a request is being served again.
    mutating func nextWaiting() -> Action? {
        switch state {
        case .idle, .reading:
            guard let inbound = waiting.popFirst() else { return nil }
            return take(inbound)
        case .serving, .handedOn, .closed:
            return nil
        }
    }

    /// The pipeline asks to read more: false to hold the read back, because reading more while
    /// requests wait behind the one served would only grow `waiting`.
    mutating func shouldRead() -> Bool {
        if case .serving = state, !waiting.isEmpty {
            readWithheld = true
            return false
        }
        return true
    }

    /// Whether a read held back should be issued now (nothing waits, or nothing is served).
    mutating func takeWithheldRead() -> Bool {
        guard readWithheld else { return false }
        if case .serving = state, !waiting.isEmpty { return false }
        readWithheld = false
        return true
    }

    enum QuiesceAction: Equatable {
        /// Pass the event on: the router's connection handler closes the connection when it
        /// is idle, or after the request it serves.
        case forward
        /// Close now: nothing is under way here.
        case close
        /// Close once the request under way is answered.
        case closeAfterAnswer
    }

    /// A graceful shutdown began.
    mutating func quiesce() -> QuiesceAction {
        switch state {
        case .handedOn: return .forward
        case .idle, .closed: state = .closed; return .close
        case .reading, .serving:
            quiescing = true
            return .closeAfterAnswer
        }
    }
}
