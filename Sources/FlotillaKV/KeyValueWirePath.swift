import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Serves the key routes — `PUT`/`GET /KEY` and `PUT`/`GET`/`DELETE /v1/kv/KEY` — from the
/// connection's bytes, first in its channel pipeline, ahead of NIO's HTTP decoder; the first
/// request it does not take hands the connection, from that request on, to the decoder and
/// Hummingbird's router.
///
/// Why: on the leader of a loaded cluster the HTTP layers cost more than the node. A request
/// through NIO's decoder, the HTTP/1 ↔ HTTPTypes codecs, Hummingbird's connection handler and
/// the response encoder took about a sixth of the leader's event loop; here it is one scan of
/// the head and one buffer written back.
///
/// It answers exactly what the router answers: the same route matching (`KeyRoute`), key
/// parsing (`HTTPAPI.pathKey(raw:)`), operation (`HTTPAPI.perform`) and error bodies
/// (`APIError(answering:)`), and the bytes Hummingbird writes for them
/// (`PlainAnswer.writeHTTP1`); the API's tests run through both, and one compares the bytes.
/// What it takes is narrow on purpose (`WireKeyRequest`): HTTP/1.1, `Content-Length` bodies
/// within the value limit, well-formed plain header fields. A query string, chunked bodies,
/// `Expect`, HTTP/1.0, another route, anything malformed: the decoder and the router, which
/// are the reference, see the bytes as they came, starting at that request's first byte.
///
/// HTTP/1.1 answers in request order: one request is served at a time, and the bytes of
/// pipelined requests wait (and the socket is not read further) until its answer is written.
final class KeyValueWirePath<Replica: KeyValueReplica>: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let api: HTTPAPI<Replica>
    private let serverName: String
    private let logger: Logger

    /// Serving requests here, until the first one that is not taken: then every byte goes to
    /// the decoder for the rest of the connection.
    private var handingOn = false
    /// Bytes read and not yet taken: the start of the next request, or pipelined requests.
    private var pending: ByteBuffer?
    /// A request is being carried out; its answer is not written yet.
    private var serving = false
    private var closeAfterAnswer = false
    /// The server is shutting down gracefully: close once the request being served is answered.
    private var quiescing = false
    /// A read the pipeline asked for while pipelined bytes waited; issued once they are taken.
    private var readWithheld = false

    init(api: HTTPAPI<Replica>, serverName: String, logger: Logger) {
        self.api = api
        self.serverName = serverName
        self.logger = logger
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !handingOn else {
            context.fireChannelRead(data)
            return
        }
        var bytes = unwrapInboundIn(data)
        if pending == nil {
            pending = bytes
        } else {
            pending!.writeBuffer(&bytes)
        }
        serveNext(context: context, inRead: true)
    }

    func read(context: ChannelHandlerContext) {
        // Reading more while a request waits behind the one being served only grows `pending`.
        if !handingOn && serving && (pending?.readableBytes ?? 0) > 0 {
            readWithheld = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard !handingOn, event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        // Hummingbird's connection handler, which closes idle connections on this event, saw
        // none of the requests served here: this handler does what it would do.
        if serving {
            quiescing = true
        } else {
            context.close(promise: nil)
        }
    }

    /// Takes the requests in `pending`, one at a time, until one must wait for its answer,
    /// more bytes are needed, or a request is not one of those taken here.
    private func serveNext(context: ChannelHandlerContext, inRead: Bool) {
        takeRequests: while !serving, !handingOn, let buffer = pending, buffer.readableBytes > 0 {
            let maxValueBytes = api.limits.maxValueBytes
            let loopbackHost = api.browserProtection.requiresLoopbackHost
            let parse = buffer.withUnsafeReadableBytes {
                WireKeyRequest.parse($0, maxValueBytes: maxValueBytes, requiringLoopbackHost: loopbackHost)
            }
            switch parse {
            case .incomplete:
                break takeRequests  // and read on, if a read was held back for these bytes
            case .unsupported:
                handingOn = true
                pending = nil
                context.fireChannelRead(wrapInboundOut(buffer))
                // Hummingbird's handler hands on what it was given when a read completes; within
                // a read, NIO's own read-complete follows.
                if !inRead { context.fireChannelReadComplete() }
            case .request(let request, let length):
                pending!.moveReaderIndex(forwardBy: length)
                if pending!.readableBytes == 0 {
                    pending = nil
                } else if pending!.readerIndex >= 1 << 16 {
                    // A client that pipelines without pause never empties the buffer: drop
                    // what was taken rather than let it grow with the connection.
                    pending!.discardReadBytes()
                }
                serving = true
                closeAfterAnswer = request.closeAfter
                start(request, context: context)
            }
        }
        if !serving, readWithheld {
            readWithheld = false
            context.read()
        }
    }

    /// Carries out `request` (a key refused at once is answered at once), and answers it on
    /// the loop.
    private func start(_ request: WireKeyRequest, context: ChannelHandlerContext) {
        let operation: HTTPAPI<Replica>.KeyOperation
        do throws(APIError) {
            let key = try api.pathKey(raw: request.route.rawKey)
            switch request.route.method {
            case .put: operation = .put(key: key, value: request.value)
            case .delete: operation = .delete(key: key)
            default: operation = .get(key: key, consistency: .linearizable)
            }
        } catch {
            answer(.failure(error), context: context)
            return
        }
        let (logger, loop, route) = (self.logger, context.eventLoop, request.route)
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        api.perform(operation) { outcome in
            let result = outcome.mapError { error in
                if APIError.isUnexpected(error) {
                    logger.error("request failed", metadata: ["error": "\(error)", "path": "\(route.method) \(route.rawKey)"])
                }
                return APIError(answering: error)
            }
            // A write's completion runs on the node's actor, which `flotilla serve` runs on
            // this event loop: the answer is written at once, inside the node's Ready.
            if loop.inEventLoop {
                bound.value.0.answer(result, context: bound.value.1)
            } else {
                loop.execute { bound.value.0.answer(result, context: bound.value.1) }
            }
        }
    }

    // MARK: Answers

    /// Writes the answer to the request being served, then takes the next.
    private func answer(_ result: Result<HTTPAPI<Replica>.KeyAnswer, APIError>, context: ChannelHandlerContext) {
        guard serving, context.channel.isActive else { return }
        serving = false
        let answer: PlainAnswer
        switch result {
        case .success(let success): answer = success.answer
        case .failure(let error): answer = error.answer
        }
        var buffer = context.channel.allocator.buffer(capacity: 160 + (answer.body?.count ?? 0))
        answer.writeHTTP1(to: &buffer, date: HTTPDate.now, serverName: serverName)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
        if closeAfterAnswer || quiescing {
            pending = nil
            context.close(promise: nil)
        } else {
            serveNext(context: context, inRead: false)
        }
    }
}

// MARK: - Which requests

/// A request the fast path serves: its method and the raw (percent-encoded) key segment.
struct KeyRoute: Sendable, Equatable {
    var method: HTTPRequest.Method
    var rawKey: Substring

    /// First path segments that are routes of their own: `PUT|GET /health` and the like go to
    /// the router, as do `/v1/...` paths other than `/v1/kv/KEY`.
    static let reservedSegments: Set<Substring> = ["health", "metrics", "set", "get", "v1"]

    /// The route of a request for `path` when the fast path serves it: `PUT|GET /KEY` and
    /// `PUT|GET|DELETE /v1/kv/KEY`, KEY one non-empty segment, no query or fragment.
    init?(method: HTTPRequest.Method, path: Substring) {
        guard path.first == "/", !path.contains(where: { $0 == "?" || $0 == "#" }) else { return nil }
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        switch segments.count {
        case 1 where method == .put || method == .get:
            guard !segments[0].isEmpty, !Self.reservedSegments.contains(segments[0]) else { return nil }
            rawKey = segments[0]
        case 3 where method == .put || method == .get || method == .delete:
            guard segments[0] == "v1", segments[1] == "kv", !segments[2].isEmpty else { return nil }
            rawKey = segments[2]
        default:
            return nil
        }
        self.method = method
    }
}

extension PlainAnswer {
    /// The answer as Hummingbird writes a router's response: the status line, the answer's
    /// fields, `Content-Length` when there is a body, `Date`, `Server`.
    func writeHTTP1(to buffer: inout ByteBuffer, date: String, serverName: String) {
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(status.code))
        buffer.writeStaticString(" ")
        buffer.writeString(status.reasonPhrase)
        buffer.writeStaticString("\r\n")
        for field in headers {
            buffer.writeString(field.name.rawName)
            buffer.writeStaticString(": ")
            buffer.writeString(field.value)
            buffer.writeStaticString("\r\n")
        }
        if let body {
            buffer.writeStaticString("Content-Length: ")
            buffer.writeString(String(body.count))
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("Date: ")
        buffer.writeString(date)
        buffer.writeStaticString("\r\nServer: ")
        buffer.writeString(serverName)
        buffer.writeStaticString("\r\n\r\n")
        if let body { buffer.writeBytes(body) }
    }
}
