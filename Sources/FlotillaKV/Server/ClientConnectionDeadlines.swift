import Logging
import NIOCore

/// How long a client connection may hold a socket without doing its part
/// (`--read-header-timeout`, `--idle-timeout`; Go's `ReadHeaderTimeout` and `IdleTimeout`).
public struct ClientConnectionLimits: Sendable, Hashable {
    /// Client connections open at once; more wait in the listen backlog (they hold no
    /// descriptor of the node's) until one closes. Default 1024.
    public var maxConnections: Int
    /// From the moment a connection opens, or its last answer was written, to the end of the
    /// next request head (TLS handshake included). A client that dribbles a head (slowloris),
    /// or keeps a connection without asking anything, is closed: one timeout after it opened, or
    /// one to two after its last answer. Default 10 s.
    public var readHeaderTimeout: TimeAmount
    /// A connection over which nothing travels, either way, for this long is closed. Default 60 s.
    public var idleTimeout: TimeAmount

    public init(maxConnections: Int = 1024, readHeaderTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount = .seconds(60)) {
        self.maxConnections = maxConnections
        self.readHeaderTimeout = readHeaderTimeout
        self.idleTimeout = idleTimeout
    }
}

/// The deadlines of `ClientConnectionLimits` on one connection, first in its plaintext pipeline
/// (after TLS, ahead of the wire path and the HTTP decoder, so that it sees every byte whoever
/// answers it).
///
/// The head deadline runs from when the connection opens, and from the last flushed answer, to
/// the `\r\n\r\n` that ends a request head; bytes after a head (its body, or requests pipelined
/// behind it) are not scanned, so a pipelining client's next head is expected by the deadline
/// after the answer in flight. The idle deadline runs from the last byte either way.
///
/// One timer per connection, not one per request: events only note the time, and the timer,
/// when it fires, closes the connection or sleeps until the nearer of the two deadlines (at most
/// a head timeout). So a connection whose answer was flushed closes between one and two head
/// timeouts later if no head follows; one that never sends a head, exactly one after it opened.
final class ClientConnectionDeadlines: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let limits: ClientConnectionLimits
    private let logger: Logger
    private var timer: Scheduled<Void>?
    /// When the head now awaited became due, or nil while a request is being read or answered.
    private var awaitingHeadSince: NIODeadline?
    /// The last three bytes of the head read so far: its end may straddle two reads.
    private var tail: (UInt8, UInt8, UInt8) = (0, 0, 0)
    private var lastTraffic: NIODeadline = .distantPast

    init(limits: ClientConnectionLimits, logger: Logger) {
        self.limits = limits
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    private func start(context: ChannelHandlerContext) {
        guard timer == nil else { return }
        let now = context.eventLoop.now
        lastTraffic = now
        awaitingHeadSince = now
        schedule(context: context, at: now + min(limits.readHeaderTimeout, limits.idleTimeout))
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastTraffic = context.eventLoop.now
        if awaitingHeadSince != nil, containsEndOfHead(unwrapInboundIn(data)) {
            awaitingHeadSince = nil
        }
        context.fireChannelRead(data)
    }

    func flush(context: ChannelHandlerContext) {
        let now = context.eventLoop.now
        lastTraffic = now
        // An answer went out: the next request's head is due a head timeout from the last
        // answer (a pipeline being answered keeps pushing it back, however long it takes).
        if awaitingHeadSince == nil { tail = (0, 0, 0) }
        awaitingHeadSince = now
        context.flush()
    }

    /// Whether `bytes`, after the tail kept from the previous reads, hold `\r\n\r\n`.
    private func containsEndOfHead(_ bytes: ByteBuffer) -> Bool {
        let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        var (a, b, c) = tail
        let found = bytes.withUnsafeReadableBytes { raw -> Bool in
            for byte in raw {
                if a == cr && b == lf && c == cr && byte == lf { return true }
                (a, b, c) = (b, c, byte)
            }
            return false
        }
        tail = (a, b, c)
        return found
    }

    private func schedule(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.check(context: context)
        }
    }

    /// Closes the connection past a deadline, or sleeps until the nearer one.
    private func check(context: ChannelHandlerContext) {
        let now = context.eventLoop.now
        let idleDeadline = lastTraffic + limits.idleTimeout
        if now >= idleDeadline {
            logger.debug("closing a client connection idle for \(limits.idleTimeout)")
            context.close(promise: nil)
            return
        }
        // While a request is read or answered no head is due; look again a head timeout from
        // now, so that a head awaited from an answer flushed meanwhile is checked by then.
        var next = min(idleDeadline, now + limits.readHeaderTimeout)
        if let since = awaitingHeadSince {
            let headDeadline = since + limits.readHeaderTimeout
            if now >= headDeadline {
                logger.debug("closing a client connection that sent no request head in \(limits.readHeaderTimeout)")
                context.close(promise: nil)
                return
            }
            next = min(next, headDeadline)
        }
        schedule(context: context, at: next)
    }
}
