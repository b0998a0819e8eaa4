import Logging
import NIOCore
import Raft

/// The last handler of an accepted connection: feeds the decoder's events to the
/// `InboundStreamStateMachine` and carries out its actions (deliver, acknowledge, refuse).
final class InboundStreamHandler: ChannelInboundHandler {
    typealias InboundIn = WireEvent
    typealias OutboundOut = OutboundFrame

    private var stateMachine: InboundStreamStateMachine
    private let deliver: @Sendable (Message) -> Void
    private var logger: Logger
    private let handshakeTimeout: TimeAmount
    private var handshakeTimer: Scheduled<Void>?

    init(
        clusterID: UInt64, localID: UInt64, maxSnapshotSize: Int, handshakeTimeout: TimeAmount, logger: Logger,
        deliver: @escaping @Sendable (Message) -> Void
    ) {
        self.stateMachine = InboundStreamStateMachine(
            clusterID: clusterID, localID: localID, maxSnapshotSize: maxSnapshotSize)
        self.deliver = deliver
        self.logger = logger
        self.handshakeTimeout = handshakeTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        logger[metadataKey: "remote"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        // The timer runs on this channel's loop, so the handler and context stay loop-bound.
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: handshakeTimeout) {
            handler.value.run(handler.value.stateMachine.handshakeTimedOut(), context: boundContext.value)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let action: InboundStreamStateMachine.Action
        switch unwrapInboundIn(data) {
        case .preamble(let preamble):
            action = stateMachine.preambleReceived(preamble)
            if case .none = action {
                handshakeTimer?.cancel()
                logger[metadataKey: "peer"] = "\(hex(preamble.from))"
                logger.debug("accepted \(preamble.kind) stream")
            }
        case .frame(let frame):
            action = stateMachine.frameReceived(frame)
        }
        run(action, context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? TransportProtocolError {
            run(stateMachine.errorCaught(error), context: context)
        } else {
            // An I/O error (reset by peer and the like): nothing to refuse, just let it go.
            logger.debug("inbound stream failed: \(error)")
            context.close(promise: nil)
        }
    }

    private func run(_ action: InboundStreamStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .deliver(let message):
            deliver(message)
        case .deliverSnapshotAndAcknowledge(let message):
            logger.debug("received snapshot", metadata: [
                "index": "\(message.snapshot?.metadata.index ?? 0)",
                "bytes": "\(message.snapshot?.data.count ?? 0)",
            ])
            deliver(message)
            context.writeAndFlush(wrapOutboundOut(.snapshotAck), promise: nil)
        case .refuse(let error):
            logger.warning("refusing peer connection: \(error)")
            context.close(promise: nil)
        }
    }
}
