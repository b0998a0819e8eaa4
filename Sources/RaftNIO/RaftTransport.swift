import Logging
import NIOCore
import NIOPosix
import Raft
import Synchronization

/// The peer transport of one raft node (Docs/TRANSPORT.md).
///
/// A `final class` that is `Sendable` rather than an actor: `send` is called from the Ready
/// loop on every iteration and must not hop or suspend, so it takes a lock, appends to the
/// peers' bounded queues and returns; the network work happens on the event loops. Everything
/// received is handed to the `TransportDelivery` it was made with, on the event loop that read
/// it, in arrival order per connection; so is what raft must hear about its sends.
///
/// ```swift
/// let transport = RaftTransport(
///     configuration: config, eventLoopGroup: group, logger: logger,
///     delivery: TransportDelivery(
///         message: { message in inbox.yield(.message(message)) },   // enqueue, don't process
///         event: { event in inbox.yield(.transport(event)) }))      // reportUnreachable / reportSnapshot
/// let port = try await transport.start()
/// transport.addPeer(id: 2, address: TransportAddress(host: "10.0.0.2", port: 2380))
/// transport.send(ready.messages)                                   // never blocks
/// await transport.shutdown()
/// ```
///
/// One delivery mode only, callbacks: a runtime has a queue of its own (the Ready loop's
/// inbox), and a stream in between would cost a hop and a task per message. A caller that wants
/// an `AsyncSequence` makes one with `AsyncStream.makeStream` and yields into it from the
/// callbacks.
public final class RaftTransport: Sendable {
    public let configuration: RaftTransportConfiguration

    private let deliverMessage: @Sendable (Message) -> Void
    private let reportRefusal: @Sendable (PeerInputRefusal) -> Void
    /// The peers and their addresses (`addPeer` / `removePeer`): whom inbound streams may come
    /// from, and where snapshots go.
    private let directory = PeerDirectory()
    private let context: TransportContext
    private let state = Mutex(State())
    /// Off from the start of `shutdown()`: events are no longer reported.
    private let reporting = ReportingSwitch()

    private struct State {
        enum Lifecycle {
            case initial
            case starting
            case running(listener: any Channel)
            case shutDown
        }

        var lifecycle: Lifecycle = .initial
        var peers: [UInt64: PeerStream] = [:]
        var snapshotTasks: [UInt64: Task<Void, Never>] = [:]
        var nextSnapshotTask: UInt64 = 0
    }

    /// A transport error the caller can act on.
    public struct LifecycleError: Error, Hashable, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// A transport that hands what it receives to `delivery`, whose callbacks run on the
    /// transport's event loops and must return quickly (enqueue, don't process).
    public init(
        configuration: RaftTransportConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger,
        delivery: TransportDelivery
    ) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "raft.node"] = "\(hex(configuration.localID))"
        deliverMessage = delivery.message
        reportRefusal = delivery.refused
        // Once shutdown begins, what the closing connections report is of no use to anyone.
        let reporting = reporting
        let report = delivery.event
        context = TransportContext(
            configuration: configuration, group: eventLoopGroup, logger: logger, registry: ChannelRegistry(),
            report: { event in if reporting.isOn { report(event) } })
    }

    /// Binds the listener and returns the port it is bound to (useful with port 0).
    public func start() async throws -> Int {
        try state.withLock { state in
            guard case .initial = state.lifecycle else {
                throw LifecycleError(description: "RaftTransport.start() called twice or after shutdown()")
            }
            state.lifecycle = .starting
        }
        let configuration = context.configuration
        let registry = context.registry
        let logger = context.logger
        let deliver = deliverMessage
        let refused = reportRefusal
        let directory = directory
        let listener: any Channel
        do {
            listener = try await ServerBootstrap(group: context.group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .peerChildSocketOptions()
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        guard registry.register(channel) else { return }  // shutting down
                        let pipeline = channel.pipeline.syncOperations
                        if let tls = configuration.tls { try pipeline.addHandler(tls.serverHandler()) }
                        try pipeline.addHandler(ByteToMessageHandler(
                            WireDecoder(maxFrameSize: configuration.maxFrameSize, expectsPreamble: true)))
                        try pipeline.addHandler(MessageToByteHandler(FrameEncoder()))
                        try pipeline.addHandler(InboundStreamHandler(
                            clusterID: configuration.clusterID, localID: configuration.localID,
                            maxSnapshotSize: configuration.maxSnapshotSize,
                            handshakeTimeout: configuration.handshakeTimeout,
                            idleTimeout: configuration.peerIdleTimeout, checksPeerIdentity: configuration.tls != nil,
                            directory: directory, logger: logger,
                            deliver: deliver, refused: refused))
                    }
                }
                .bind(host: configuration.listenAddress.host, port: configuration.listenAddress.port)
                .get()
        } catch {
            state.withLock { $0.lifecycle = .initial }
            throw error
        }
        let stillWanted = state.withLock { state in
            guard case .starting = state.lifecycle else { return false }
            state.lifecycle = .running(listener: listener)
            return true
        }
        guard stillWanted else {  // shut down while binding
            try? await listener.close()
            throw LifecycleError(description: "RaftTransport was shut down while starting")
        }
        let port = listener.localAddress?.port ?? configuration.listenAddress.port
        logger.info("raft transport listening", metadata: ["address": "\(configuration.listenAddress.host):\(port)"])
        return port
    }

    /// The port the listener is bound to, once started.
    public var localPort: Int? {
        state.withLock { state in
            if case .running(let listener) = state.lifecycle { return listener.localAddress?.port }
            return nil
        }
    }

    /// Makes `id` reachable at `address`, and lets it open streams to this node (a node that was
    /// never added, or was removed, is refused at the handshake). Adding a known peer updates its
    /// address.
    public func addPeer(id: UInt64, address: TransportAddress) {
        let existing: PeerStream? = state.withLock { state in
            if case .shutDown = state.lifecycle { return nil }
            directory.add(id, address: address)
            if let stream = state.peers[id] { return stream }
            state.peers[id] = PeerStream(peerID: id, address: address, context: context)
            return nil
        }
        existing?.updateAddress(address)
    }

    /// The peer moved: its stream reconnects to the new address.
    public func updatePeer(id: UInt64, address: TransportAddress) {
        addPeer(id: id, address: address)
    }

    /// Forgets `id`: its queue is dropped and its stream closed. Snapshots already streaming
    /// to it run to their end.
    public func removePeer(id: UInt64) {
        let stream = state.withLock { state in
            directory.remove(id)
            return state.peers.removeValue(forKey: id)
        }
        stream?.close()
    }

    /// Queues `messages` for their peers (`message.to`) and returns at once.
    ///
    /// A peer whose queue is full has the excess dropped and one `.unreachable` reported. A
    /// `.snapshot` message is streamed on its own connection and reported as `.snapshot(to,
    /// .finish/.failure)`. Messages to unknown peers, or too large for a frame, are dropped
    /// and logged (the latter also reported `.unreachable`).
    public func send(_ messages: [Message]) {
        guard !messages.isEmpty else { return }
        // Group by peer, keeping each peer's order, so each peer takes its lock once per call.
        var byPeer: [UInt64: [Message]] = [:]
        var tooLarge: Set<UInt64> = []
        for message in messages {
            if message.type == .snapshot {
                sendSnapshot(message)
            } else if message.frameLength > configuration.maxFrameSize {
                context.logger.error("dropping a message too large for one frame", metadata: [
                    "peer": "\(hex(message.to))", "type": "\(message.type)",
                    "bytes": "\(message.serializedSize)", "maxFrameSize": "\(configuration.maxFrameSize)",
                ])
                tooLarge.insert(message.to)
            } else {
                byPeer[message.to, default: []].append(message)
            }
        }
        let streams = state.withLock { state in byPeer.keys.map { ($0, state.peers[$0]) } }
        for (peer, stream) in streams {
            guard let stream else {
                context.logger.debug("dropping messages to an unknown peer", metadata: ["peer": "\(hex(peer))"])
                continue
            }
            if stream.send(byPeer[peer]!) > 0 { tooLarge.insert(peer) }
        }
        for peer in tooLarge { context.report(.unreachable(peer)) }
    }

    private func sendSnapshot(_ message: Message) {
        let peer = message.to
        let context = context
        state.withLock { state in
            guard let address = directory.address(of: peer), case .running = state.lifecycle else {
                context.logger.warning("cannot send a snapshot to an unknown peer", metadata: ["peer": "\(hex(peer))"])
                context.report(.unreachable(peer))
                context.report(.snapshot(peer, .failure))
                return
            }
            let taskID = state.nextSnapshotTask
            state.nextSnapshotTask += 1
            state.snapshotTasks[taskID] = Task {
                let status = await SnapshotSender(peerID: peer, address: address, context: context).send(message)
                if status == .failure { context.report(.unreachable(peer)) }  // as etcd does
                context.report(.snapshot(peer, status))
                _ = self.state.withLock { $0.snapshotTasks.removeValue(forKey: taskID) }
            }
        }
    }

    /// Stops accepting, closes every connection and cancels snapshot streams; no event is
    /// reported from its start. Idempotent. The event loop group stays the caller's.
    public func shutdown() async {
        let (listener, peers, tasks) = state.withLock { state -> ((any Channel)?, [PeerStream], [Task<Void, Never>]) in
            var listener: (any Channel)?
            if case .running(let channel) = state.lifecycle { listener = channel }
            state.lifecycle = .shutDown
            defer {
                state.peers.removeAll()
                state.snapshotTasks.removeAll()
            }
            return (listener, Array(state.peers.values), Array(state.snapshotTasks.values))
        }
        reporting.turnOff()
        try? await listener?.close()
        for peer in peers { peer.close() }
        for task in tasks { task.cancel() }
        try? await context.registry.closeAll(eventLoop: context.group.next()).get()
        for task in tasks { await task.value }
        context.logger.debug("raft transport shut down")
    }
}

/// Where a transport hands what it receives. Both are called on the transport's event loops, in arrival order per
/// connection: they must return quickly and never block (enqueue, don't process).
public struct TransportDelivery: Sendable {
    /// A message received from a peer.
    public var message: @Sendable (Message) -> Void
    /// Feedback for `reportUnreachable` / `reportSnapshot`.
    public var event: @Sendable (TransportEvent) -> Void
    /// A message a peer stream carried that was dropped (already logged): count it.
    public var refused: @Sendable (PeerInputRefusal) -> Void

    public init(
        message: @escaping @Sendable (Message) -> Void, event: @escaping @Sendable (TransportEvent) -> Void,
        refused: @escaping @Sendable (PeerInputRefusal) -> Void = { _ in }
    ) {
        self.message = message
        self.event = event
        self.refused = refused
    }
}

/// Whether a transport still reports events to its delivery.
private final class ReportingSwitch: Sendable {
    private let on = Atomic<Bool>(true)

    var isOn: Bool { on.load(ordering: .relaxed) }
    func turnOff() { on.store(false, ordering: .relaxed) }
}
