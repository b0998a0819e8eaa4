import NIOCore
import Raft

/// The outbound message stream to one peer: its bounded queue, its connection and its backoff
/// (Docs/TRANSPORT.md §6). A value type with one method per event returning what to do; the
/// `PeerStream` shell runs it under a lock and performs the actions outside it.
///
/// Every dial gets a new `generation`; callbacks carry theirs, so a late callback from a
/// connection that was replaced (peer address changed, stream closed) cannot disturb the
/// current one.
struct PeerStreamStateMachine {
    enum State {
        /// No connection and nothing to send: the stream dials when a message arrives.
        case idle
        case connecting(generation: UInt64)
        /// `writing`: a batch is in flight; later messages wait and leave together after it.
        case connected(generation: UInt64, channel: any Channel, writing: Bool)
        case backingOff(generation: UInt64)
        /// Removed, or the transport shut down: everything is dropped silently.
        case closed
    }

    enum Action {
        case none
        case connect(generation: UInt64, address: TransportAddress)
        case write(generation: UInt64, channel: any Channel, batch: [Message])
        case close(any Channel)
        /// The stream failed: `dropped` queued messages were discarded; report the peer
        /// unreachable and try again after `delay`.
        case failed(dropped: Int, retryAfter: TimeAmount, generation: UInt64)
    }

    /// At most this many messages per write, so one write stays a reasonable size.
    static let maxBatchCount = 512

    private(set) var state: State = .idle
    private(set) var queue: [Message] = []
    private(set) var address: TransportAddress
    private var generation: UInt64 = 0
    private var backoff: Backoff
    let capacity: Int

    init(address: TransportAddress, capacity: Int, backoff: Backoff) {
        self.address = address
        self.capacity = max(1, capacity)
        self.backoff = backoff
    }

    /// Queues what fits; the rest is dropped (the caller reports the peer unreachable).
    mutating func enqueue(_ messages: some Collection<Message>) -> (dropped: Int, action: Action) {
        if case .closed = state { return (0, .none) }
        let room = capacity - queue.count
        let accepted = min(room, messages.count)
        queue.append(contentsOf: messages.prefix(accepted))
        let dropped = messages.count - accepted
        guard !queue.isEmpty else { return (dropped, .none) }
        switch state {
        case .idle:
            return (dropped, startConnecting())
        case .connected(let generation, let channel, writing: false):
            return (dropped, takeBatch(generation: generation, channel: channel))
        case .connecting, .connected, .backingOff, .closed:
            return (dropped, .none)
        }
    }

    /// The dial and the preamble got through.
    mutating func connected(_ channel: any Channel, generation: UInt64) -> Action {
        guard case .connecting(generation) = state else { return .close(channel) }
        backoff.reset()
        state = .connected(generation: generation, channel: channel, writing: false)
        return queue.isEmpty ? .none : takeBatch(generation: generation, channel: channel)
    }

    /// A dial failed (refused, timed out), or an established connection closed.
    mutating func connectionFailed(generation: UInt64) -> Action {
        switch state {
        case .connecting(generation), .connected(generation, _, _):
            let dropped = queue.count
            queue.removeAll()
            state = .backingOff(generation: generation)
            return .failed(dropped: dropped, retryAfter: backoff.nextDelay(), generation: generation)
        default:
            return .none  // a stale connection, already replaced
        }
    }

    /// A batch was handed to the socket (or failed: then the close callback follows).
    mutating func writeCompleted(generation: UInt64) -> Action {
        guard case .connected(generation, let channel, writing: true) = state else { return .none }
        if queue.isEmpty {
            state = .connected(generation: generation, channel: channel, writing: false)
            return .none
        }
        return takeBatch(generation: generation, channel: channel)
    }

    mutating func backoffElapsed(generation: UInt64) -> Action {
        guard case .backingOff(generation) = state else { return .none }
        if queue.isEmpty {
            state = .idle
            return .none
        }
        return startConnecting()
    }

    /// The peer moved: drop the connection and dial the new address (at once if there is
    /// something to send), without waiting out a backoff earned by the old address.
    mutating func addressChanged(_ newAddress: TransportAddress) -> [Action] {
        address = newAddress
        backoff.reset()
        var actions: [Action] = []
        switch state {
        case .closed:
            return []
        case .connected(_, let channel, _):
            actions.append(.close(channel))
        case .idle, .connecting, .backingOff:
            break
        }
        state = .idle
        if !queue.isEmpty { actions.append(startConnecting()) }
        return actions
    }

    /// The stream is removed or the transport is shutting down.
    mutating func close() -> Action {
        queue.removeAll()
        let previous = state
        state = .closed
        if case .connected(_, let channel, _) = previous { return .close(channel) }
        return .none
    }

    private mutating func startConnecting() -> Action {
        generation += 1
        state = .connecting(generation: generation)
        return .connect(generation: generation, address: address)
    }

    private mutating func takeBatch(generation: UInt64, channel: any Channel) -> Action {
        let batch: [Message]
        if queue.count <= PeerStreamStateMachine.maxBatchCount {
            batch = queue
            queue = []
        } else {
            batch = Array(queue.prefix(PeerStreamStateMachine.maxBatchCount))
            queue.removeFirst(PeerStreamStateMachine.maxBatchCount)
        }
        state = .connected(generation: generation, channel: channel, writing: true)
        return .write(generation: generation, channel: channel, batch: batch)
    }
}
