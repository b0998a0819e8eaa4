import Logging
import NIOCore
import NIOSSL
import Raft

/// The last handler of an accepted connection: feeds the decoder's events to the
/// `InboundStreamStateMachine` and carries out its actions (deliver, acknowledge, refuse).
final class InboundStreamHandler: ChannelInboundHandler {
    typealias InboundIn = WireEvent
    typealias OutboundOut = OutboundFrame

    private var stateMachine: InboundStreamStateMachine
    private let deliver: @Sendable (Message) -> Void
    private let refused: @Sendable (PeerInputRefusal) -> Void
    private let directory: PeerDirectory
    private var logger: Logger
    private let handshakeTimeout: TimeAmount
    private var handshakeTimer: Scheduled<Void>?
    private let idleTimeout: TimeAmount
    /// With TLS: whether the dialler's certificate must name the host of the member it claims
    /// to be (the listener's side of peer identity; the dialler checks the listener's name).
    private let checksPeerIdentity: Bool
    private var idleCheck: RepeatedTask?
    /// Whether anything arrived since the last idle check.
    private var sawTraffic = false
    /// The peer whose one inbound snapshot stream this connection holds, to release on close.
    private var snapshotClaim: UInt64?
    /// Refused messages on this stream, for logging the first few and then one in a thousand:
    /// a peer that floods bad messages must not flood the log.
    private var refusals = 0

    init(
        clusterID: UInt64, localID: UInt64, maxSnapshotSize: Int, handshakeTimeout: TimeAmount,
        idleTimeout: TimeAmount, checksPeerIdentity: Bool = false, directory: PeerDirectory, logger: Logger, deliver: @escaping @Sendable (Message) -> Void,
        refused: @escaping @Sendable (PeerInputRefusal) -> Void
    ) {
        self.stateMachine = InboundStreamStateMachine(
            clusterID: clusterID, localID: localID, maxSnapshotSize: maxSnapshotSize,
            isMember: { directory.contains($0) })
        self.deliver = deliver
        self.refused = refused
        self.directory = directory
        self.logger = logger
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.checksPeerIdentity = checksPeerIdentity
    }

    func channelActive(context: ChannelHandlerContext) {
        logger[metadataKey: "remote"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        // The timer runs on this channel's loop, so the handler and context stay loop-bound.
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: handshakeTimeout) {
            handler.value.run(handler.value.stateMachine.handshakeTimedOut(), context: boundContext.value)
        }
        // A stream that carried nothing for a whole idle period has a dead or vanished peer
        // behind it (a live leader's heartbeats keep the streams that matter busy): close it, so
        // its sender redials and strangers' sockets do not pile up. Checked once a period, so a
        // silent stream closes between one and two periods after its last frame.
        idleCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: idleTimeout, delay: idleTimeout) { _ in
            let handler = handler.value
            if handler.sawTraffic {
                handler.sawTraffic = false
            } else {
                handler.logger.info("closing a peer stream that was idle for \(handler.idleTimeout)")
                boundContext.value.close(promise: nil)
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        idleCheck?.cancel()
        if let peer = snapshotClaim {
            directory.releaseSnapshotStream(from: peer)
            snapshotClaim = nil
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        sawTraffic = true
        let action: InboundStreamStateMachine.Action
        switch unwrapInboundIn(data) {
        case .preamble(let preamble):
            action = stateMachine.preambleReceived(preamble)
            if case .none = action {
                handshakeTimer?.cancel()
                logger[metadataKey: "peer"] = "\(hex(preamble.from))"
                if checksPeerIdentity, let problem = identityProblem(claimed: preamble.from, context: context) {
                    run(stateMachine.errorCaught(problem), context: context)
                    return
                }
                if preamble.kind == .snapshot {
                    guard directory.claimSnapshotStream(from: preamble.from) else {
                        run(stateMachine.errorCaught(TransportProtocolError(.snapshotStreamBusy(preamble.from))), context: context)
                        return
                    }
                    snapshotClaim = preamble.from
                }
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
        } else if PeerTLS.isTLSError(error) {
            // A plaintext dialler, a certificate of another CA, none at all: refused by TLS.
            logger.warning("refusing peer connection: TLS: \(error)")
            context.close(promise: nil)
        } else {
            // An I/O error (reset by peer and the like): nothing to refuse, just let it go.
            logger.debug("inbound stream failed: \(error)")
            context.close(promise: nil)
        }
    }

    /// Why the TLS peer may not speak as member `id`, or nil: its certificate must name the host
    /// of `id`'s peer URL, so that one member's certificate cannot be used to pose as another
    /// on another host.
    private func identityProblem(claimed id: UInt64, context: ChannelHandlerContext) -> TransportProtocolError? {
        guard let host = directory.address(of: id)?.host else { return TransportProtocolError(.unknownPeer(id)) }
        let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
        guard let certificate, PeerTLS.certificate(certificate, names: host) else {
            return TransportProtocolError(.peerIdentityMismatch(id: id, host: host))
        }
        return nil
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
        case .drop(let refusal):
            refusals += 1
            if refusals <= 10 || refusals % 1000 == 0 {
                logger.warning("dropped a peer message: \(refusal)", metadata: ["refusedOnStream": "\(refusals)"])
            }
            refused(refusal)
        case .refuse(let error):
            logger.warning("refusing peer connection: \(error)")
            context.close(promise: nil)
        }
    }
}
