import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1

/// Serves the key routes of `APIRoute` — `PUT`/`GET /KEY` and `PUT`/`GET`/`DELETE /v1/kv/KEY` —
/// from the parts NIO's HTTP/1 decoder reads, ahead of Hummingbird's codec; the first request it
/// does not take hands the connection, from that request's head on, to the codec and the router.
///
/// Why: on a loaded leader the HTTP layers cost more than the node, and most of that is above
/// the decoder: the HTTP/1 ↔ HTTPTypes conversion, the async channel, the router's task per
/// request. Here a request is one table lookup (`APIRoute.keyRequest`) and one answer written
/// through NIO's encoder, and a write's answer is written from the node's completion handler,
/// without a task (Benchmarks/README.md has the figures).
///
/// It answers exactly what the router answers: the same routes (one table), key parsing
/// (`HTTPAPI.pathKey(raw:)`), browser protection (`BrowserProtection.refusal`), operation
/// (`HTTPAPI.perform`), errors (`APIError(answering:)`) and header fields
/// (`APIResponse.responseHead`). The API's tests run through both, and one compares the bytes.
///
/// The connection's state is `KeyRouteConnection`; this class only carries out its actions.
final class KeyRouteHandler<Replica: KeyValueReplica>: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let api: HTTPAPI<Replica>
    private let serverName: String
    private let logger: Logger
    private var connection: KeyRouteConnection
    /// Inside `channelRead`: NIO sends the read-complete that follows; outside, it is ours to send.
    private var inRead = false
    /// Taking what waited behind an answer: an answer written meanwhile (a request refused at
    /// once) leaves the taking to the loop already running, so the stack stays flat however
    /// many requests are pipelined.
    private var takingWaiting = false

    init(api: HTTPAPI<Replica>, serverName: String, logger: Logger) {
        self.api = api
        self.serverName = serverName
        self.logger = logger
        self.connection = KeyRouteConnection(maxValueBytes: api.limits.maxValueBytes)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if connection.isHandedOn {
            context.fireChannelRead(data)
            return
        }
        inRead = true
        defer { inRead = false }
        perform(connection.received(.part(unwrapInboundIn(data))), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The decoder's errors (malformed HTTP) take their place in the request order: the
        // router answers them after the answers owed before them.
        perform(connection.received(.error(error)), context: context)
    }

    func read(context: ChannelHandlerContext) {
        if connection.shouldRead() { context.read() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch connection.quiesce() {
        case .forward: context.fireUserInboundEventTriggered(event)
        case .close: context.close(promise: nil)
        case .closeAfterAnswer: break
        }
    }

    private func perform(_ action: KeyRouteConnection.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .forward(let inbound):
            for item in inbound {
                switch item {
                case .part(let part): context.fireChannelRead(wrapInboundOut(part))
                case .error(let error): context.fireErrorCaught(error)
                }
            }
            // Hummingbird's async channel hands on what it was given when a read completes.
            if !inRead { context.fireChannelReadComplete() }
        case .serve(let request):
            serve(request, context: context)
        }
    }

    // MARK: Serving

    /// Carries out `request` and answers it on the loop (at once when it is refused at once).
    private func serve(_ request: KeyRouteRequest, context: ChannelHandlerContext) {
        let operation: HTTPAPI<Replica>.KeyOperation
        do throws(APIError) {
            if let refusal = api.browserProtection.refusal(host: request.host, origin: request.origin, fetchSite: request.fetchSite) {
                throw refusal
            }
            let key = try api.pathKey(raw: request.rawKey)
            switch request.method {
            case .put:
                try api.checkValueSize(request.value.count)
                operation = .put(key: key, value: request.value)
            case .delete: operation = .delete(key: key)
            case .get: operation = .get(key: key, consistency: .linearizable)
            }
        } catch {
            answer(error.apiResponse, context: context)
            return
        }
        let (logger, loop) = (self.logger, context.eventLoop)
        let described = "\(request.method) \(request.rawKey)"
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        api.perform(operation) { outcome in
            let response: APIResponse
            switch outcome {
            case .success(let answer): response = answer.apiResponse
            case .failure(let error):
                if APIError.isUnexpected(error) {
                    logger.error("request failed", metadata: ["error": "\(error)", "request": "\(described)"])
                }
                response = APIError(answering: error).apiResponse
            }
            // A write's completion runs on the node's actor, which `flotilla serve` runs on
            // this event loop: the answer is written at once, inside the node's Ready.
            if loop.inEventLoop {
                bound.value.0.answer(response, context: bound.value.1)
            } else {
                loop.execute { bound.value.0.answer(response, context: bound.value.1) }
            }
        }
    }

    /// Writes the answer to the request served, then takes what waited behind it.
    private func answer(_ response: APIResponse, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        context.write(wrapOutboundOut(.head(response.responseHead(date: HTTPDate.now, serverName: serverName))), promise: nil)
        if let body = response.body {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if connection.answerWritten() {
            context.close(promise: nil)
            return
        }
        guard !takingWaiting else { return }
        takingWaiting = true
        defer { takingWaiting = false }
        while let action = connection.nextWaiting() {
            perform(action, context: context)
        }
        if connection.takeWithheldRead() { context.read() }
    }
}

extension APIResponse {
    /// The head Hummingbird writes for the router's response: the response's fields,
    /// `Content-Length` when there is a body, `Date`, `Server`.
    func responseHead(date: String, serverName: String) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(fields.count + 3)
        for field in fields { headers.add(name: field.name.rawName, value: field.value) }
        if let body { headers.add(name: "Content-Length", value: String(body.count)) }
        headers.add(name: "Date", value: date)
        headers.add(name: "Server", value: serverName)
        return HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: status.code, reasonPhrase: status.reasonPhrase),
            headers: headers)
    }
}
