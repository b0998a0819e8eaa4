import Logging
import NIOCore
import NIOPosix
import Raft
import Synchronization

/// The outbound message stream to one peer: runs a `PeerStreamStateMachine` under a lock and
/// performs its actions (dial, write, close, schedule a retry) outside the lock, so `send`
/// costs a lock and an append and never waits for the network.
final class PeerStream: Sendable {
    let peerID: UInt64
    private let context: TransportContext
    private let stateMachine: Mutex<PeerStreamStateMachine>
    private var logger: Logger {
        var logger = context.logger
        logger[metadataKey: "peer"] = "\(hex(peerID))"
        return logger
    }

    init(peerID: UInt64, address: TransportAddress, context: TransportContext) {
        self.peerID = peerID
        self.context = context
        let configuration = context.configuration
        self.stateMachine = Mutex(PeerStreamStateMachine(
            address: address, capacity: configuration.peerQueueCapacity,
            backoff: Backoff(minimum: configuration.backoffMin, maximum: configuration.backoffMax,
                             jitter: configuration.jitter)))
    }

    /// Queues `messages` (all addressed to this peer). Returns how many were dropped because
    /// the queue was full; the transport reports those as one `.unreachable`.
    func send(_ messages: some Collection<Message>) -> Int {
        let (dropped, action) = stateMachine.withLock { $0.enqueue(messages) }
        run(action)
        return dropped
    }

    func updateAddress(_ address: TransportAddress) {
        let actions = stateMachine.withLock { $0.addressChanged(address) }
        for action in actions { run(action) }
    }

    func close() {
        run(stateMachine.withLock { $0.close() })
    }

    private func run(_ action: PeerStreamStateMachine.Action) {
        switch action {
        case .none:
            break
        case .connect(let generation, let address):
            connect(generation: generation, address: address)
        case .write(let generation, let channel, let batch):
            channel.writeAndFlush(OutboundFrame.messages(batch)).whenComplete { result in
                switch result {
                case .success:
                    self.run(self.stateMachine.withLock { $0.writeCompleted(generation: generation) })
                case .failure(let error):
                    // Fail the stream now rather than write the rest into a dying channel; the
                    // close callback that follows is then stale and does nothing.
                    self.logger.debug("write to peer failed: \(error)")
                    channel.close(promise: nil)
                    self.run(self.stateMachine.withLock { $0.connectionFailed(generation: generation) })
                }
            }
        case .close(let channel):
            channel.close(promise: nil)
        case .failed(let dropped, let delay, let generation):
            logger.debug("peer stream failed; retrying", metadata: [
                "dropped": "\(dropped)", "retryIn": "\(delay.nanoseconds / 1_000_000)ms",
            ])
            context.report(.unreachable(peerID))
            context.group.next().scheduleTask(in: delay) {
                self.run(self.stateMachine.withLock { $0.backoffElapsed(generation: generation) })
            }
        }
    }

    /// Dials, writes the preamble, and only then calls the stream connected: a connection that
    /// cannot even take 32 bytes is a failed one.
    private func connect(generation: UInt64, address: TransportAddress) {
        let configuration = context.configuration
        let preamble = Preamble(kind: .messages, clusterID: configuration.clusterID,
                                from: configuration.localID, to: peerID)
        let registry = context.registry
        ClientBootstrap(group: context.group)
            .connectTimeout(configuration.connectTimeout)
            .peerSocketOptions()
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = configuration.tls {
                        try channel.pipeline.syncOperations.addHandler(tls.clientHandler(host: address.host))
                    }
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                    // Nothing is read on a message stream; whatever arrives is discarded.
                }
            }
            .connect(host: address.host, port: address.port)
            .flatMap { channel in
                channel.writeAndFlush(OutboundFrame.preamble(preamble)).map { channel }
                    .flatMapErrorThrowing { error in
                        channel.close(promise: nil)
                        throw error
                    }
            }
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    guard registry.register(channel) else { return }  // shutting down
                    self.logger.debug("connected to peer", metadata: ["address": "\(address)"])
                    channel.closeFuture.whenComplete { _ in
                        self.run(self.stateMachine.withLock { $0.connectionFailed(generation: generation) })
                    }
                    self.run(self.stateMachine.withLock { $0.connected(channel, generation: generation) })
                case .failure(let error):
                    // A TLS failure is a misconfiguration (or not our peer): say so louder than
                    // a peer that is merely down.
                    self.logger.log(level: PeerTLS.isTLSError(error) ? .warning : .debug, "cannot connect to peer", metadata: [
                        "address": "\(address)", "error": "\(error)",
                    ])
                    self.run(self.stateMachine.withLock { $0.connectionFailed(generation: generation) })
                }
            }
    }
}
