import Logging
import NIOCore
import NIOPosix
import Raft

/// Streams one `.snapshot` message on its own connection (Docs/TRANSPORT.md §4): preamble,
/// header, data chunks of at most a frame, end; then waits for the receiver's ack.
///
/// Each chunk is awaited before the next is written, so at most one chunk (plus what the kernel
/// holds) is in flight: a 1 GiB snapshot does not become 1 GiB of NIO buffers.
struct SnapshotSender {
    let peerID: UInt64
    let address: TransportAddress
    let context: TransportContext

    struct AckTimeout: Error, CustomStringConvertible {
        let timeout: TimeAmount
        var description: String { "no snapshot ack within \(timeout.nanoseconds / 1_000_000) ms" }
    }

    struct ClosedBeforeAck: Error, CustomStringConvertible {
        var description: String { "the receiver closed the connection before acknowledging the snapshot" }
    }

    /// Sends `message` and returns the outcome raft should hear about. Never throws.
    func send(_ message: Message) async -> SnapshotStatus {
        var logger = context.logger
        logger[metadataKey: "peer"] = "\(hex(peerID))"
        logger[metadataKey: "snapshotIndex"] = "\(message.snapshot?.metadata.index ?? 0)"
        do {
            try await stream(message, logger: logger)
            logger.debug("snapshot sent")
            return .finish
        } catch {
            logger.warning("sending snapshot failed: \(error)")
            return .failure
        }
    }

    private func stream(_ message: Message, logger: Logger) async throws {
        let configuration = context.configuration
        let data = message.snapshot?.data ?? []
        var header = message
        header.snapshot?.data = []
        let ackPromise = context.group.next().makePromise(of: Void.self)
        let registry = context.registry
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: context.group)
                .connectTimeout(configuration.connectTimeout)
                .peerSocketOptions()
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        if let tls = configuration.tls { try pipeline.addHandler(tls.clientHandler(host: address.host)) }
                        try pipeline.addHandler(ByteToMessageHandler(
                            WireDecoder(maxFrameSize: configuration.maxFrameSize, expectsPreamble: false)))
                        try pipeline.addHandler(MessageToByteHandler(FrameEncoder()))
                        try pipeline.addHandler(SnapshotAckHandler(ack: ackPromise))
                    }
                }
                .connect(host: address.host, port: address.port)
                .get()
        } catch {
            ackPromise.fail(error)  // nobody will wait on it; keep the promise from leaking
            throw error
        }
        guard registry.register(channel) else { throw ChannelError.ioOnClosedChannel }
        do {
            channel.write(OutboundFrame.preamble(Preamble(
                kind: .snapshot, clusterID: configuration.clusterID, from: configuration.localID, to: peerID)),
                promise: nil)
            try await channel.writeAndFlush(OutboundFrame.snapshotHeader(header, dataSize: UInt64(data.count))).get()
            let chunkSize = FrameLayout.maxPayload(maxFrameSize: configuration.maxFrameSize)
            var start = data.startIndex
            while start < data.endIndex {
                try Task.checkCancellation()
                let end = min(start + chunkSize, data.endIndex)
                try await channel.writeAndFlush(OutboundFrame.snapshotChunk(data[start..<end])).get()
                start = end
            }
            try await channel.writeAndFlush(OutboundFrame.snapshotEnd).get()
            let timeout = channel.eventLoop.scheduleTask(in: configuration.snapshotAckTimeout) {
                ackPromise.fail(AckTimeout(timeout: configuration.snapshotAckTimeout))
            }
            defer { timeout.cancel() }
            try await ackPromise.futureResult.get()
            try? await channel.close().get()
        } catch {
            ackPromise.fail(error)
            try? await channel.close().get()
            throw error
        }
    }
}

/// Completes the ack promise when the receiver acknowledges, and fails it if the connection
/// closes or errors first (the receiver refused the snapshot, or died).
final class SnapshotAckHandler: ChannelInboundHandler {
    typealias InboundIn = WireEvent

    private let ack: EventLoopPromise<Void>

    init(ack: EventLoopPromise<Void>) { self.ack = ack }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .frame(let frame) = unwrapInboundIn(data), frame.kind == .snapshotAck {
            ack.succeed()
        } else {
            ack.fail(TransportProtocolError(.unexpectedFrame(.message)))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        ack.fail(SnapshotSender.ClosedBeforeAck())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        ack.fail(error)
        context.close(promise: nil)
    }
}
