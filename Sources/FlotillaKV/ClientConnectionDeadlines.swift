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
    /// or keeps a connection without asking anything, is closed. Default 10 s.
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
/// The head deadline is armed when the connection opens and re-armed when an answer is flushed,
/// and disarmed by the `\r\n\r\n` that ends a request head; bytes after a head (its body, or
/// requests pipelined behind it) are not scanned, so a pipelining client's next head is
/// expected by the deadline after the answer in flight. The idle deadline is any traffic.
final class ClientConnectionDeadlines: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let limits: ClientConnectionLimits
    private let logger: Logger
    private var headDeadline: Scheduled<Void>?
    private var idleCheck: Scheduled<Void>?
    private var awaitingHead = true
    /// The last three bytes of the head read so far: its end may straddle two reads.
    private var tail: (UInt8, UInt8, UInt8) = (0, 0, 0)
    private var lastTraffic: NIODeadline = .now()

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
        guard idleCheck == nil else { return }
        lastTraffic = context.eventLoop.now
        armHeadDeadline(context: context)
        scheduleIdleCheck(context: context, in: limits.idleTimeout)
    }

    func channelInactive(context: ChannelHandlerContext) {
        headDeadline?.cancel()
        idleCheck?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastTraffic = context.eventLoop.now
        if awaitingHead {
            let bytes = unwrapInboundIn(data)
            if containsEndOfHead(bytes) {
                awaitingHead = false
                headDeadline?.cancel()
                headDeadline = nil
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastTraffic = context.eventLoop.now
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        lastTraffic = context.eventLoop.now
        // An answer went out: the next request's head is due.
        if !awaitingHead {
            awaitingHead = true
            tail = (0, 0, 0)
            armHeadDeadline(context: context)
        }
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

    private func armHeadDeadline(context: ChannelHandlerContext) {
        headDeadline?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timeout = limits.readHeaderTimeout
        headDeadline = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = bound.value
            guard handler.awaitingHead else { return }
            handler.logger.debug("closing a client connection that sent no request head in \(timeout)")
            context.close(promise: nil)
        }
    }

    private func scheduleIdleCheck(context: ChannelHandlerContext, in delay: TimeAmount) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = bound.value
            let quiet = context.eventLoop.now - handler.lastTraffic
            if quiet >= handler.limits.idleTimeout {
                handler.logger.debug("closing a client connection idle for \(handler.limits.idleTimeout)")
                context.close(promise: nil)
            } else {
                handler.scheduleIdleCheck(context: context, in: handler.limits.idleTimeout - quiet)
            }
        }
    }
}
