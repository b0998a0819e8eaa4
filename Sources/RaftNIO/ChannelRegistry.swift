import Logging
import NIOCore
import Synchronization

/// Every open connection of a transport, inbound and outbound, so `shutdown()` can close them
/// all. Once closed, the registry closes any channel registered late (a dial that completes
/// during shutdown) instead of keeping it.
final class ChannelRegistry: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var isClosed = false
    }

    private let state = Mutex(State())

    /// Tracks `channel` until it closes. Returns false (and closes it) after `closeAll()`.
    @discardableResult
    func register(_ channel: any Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        let accepted = state.withLock { state in
            guard !state.isClosed else { return false }
            state.channels[key] = channel
            return true
        }
        guard accepted else {
            channel.close(promise: nil)
            return false
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.state.withLock { $0.channels.removeValue(forKey: key) }
        }
        return true
    }

    /// Closes every tracked channel and refuses new ones; completes when all have closed.
    func closeAll(eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let channels = state.withLock { state in
            state.isClosed = true
            return Array(state.channels.values)
        }
        let closed = channels.map { channel in
            channel.close().flatMapError { _ in channel.eventLoop.makeSucceededVoidFuture() }
        }
        return EventLoopFuture.andAllComplete(closed, on: eventLoop)
    }
}

/// What the per-peer senders share with their transport.
struct TransportContext: Sendable {
    let configuration: RaftTransportConfiguration
    let group: any EventLoopGroup
    let logger: Logger
    let registry: ChannelRegistry
    /// Hands an event to the transport's delivery.
    let report: @Sendable (TransportEvent) -> Void
}
