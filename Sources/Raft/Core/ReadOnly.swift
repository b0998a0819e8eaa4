/// Pending ReadIndex requests on the leader (etcd's read_only.go). With `.safe`, a request is
/// answered once a quorum acknowledged a heartbeat carrying its context, which proves that this
/// node was still the leader when the read arrived (thesis §6.4).
struct ReadOnly: Sendable {
    struct Status: Sendable {
        /// The original request (its single entry's data is the context).
        var request: Message
        /// The commit index when the request arrived: the read is served at this index.
        var index: UInt64
        var acks: Set<UInt64>
    }

    let option: ReadOnlyOption
    /// Requests by context.
    private(set) var pending: [[UInt8]: Status] = [:]
    /// Contexts in arrival order.
    private(set) var queue: [[UInt8]] = []

    init(option: ReadOnlyOption) {
        self.option = option
    }

    /// Queues a request made at commit index `index`. A duplicate context joins the first.
    mutating func addRequest(index: UInt64, _ message: Message) {
        let context = message.entries[0].data
        if pending[context] != nil { return }
        pending[context] = Status(request: message, index: index, acks: [])
        queue.append(context)
    }

    /// Records `id`'s heartbeat acknowledgement of `context`; returns the acks so far, or nil
    /// if the context is unknown (already answered or never asked).
    mutating func recvAck(from id: UInt64, context: [UInt8]) -> Set<UInt64>? {
        guard pending[context] != nil else { return nil }
        pending[context]!.acks.insert(id)
        return pending[context]!.acks
    }

    /// Releases every request up to and including the one with `context`: a quorum acknowledged
    /// it, and requests queued before it were made at an index no later than it.
    mutating func advance(context: [UInt8]) -> [Status] {
        guard let position = queue.firstIndex(of: context) else { return [] }
        var released: [Status] = []
        released.reserveCapacity(position + 1)
        for ctx in queue[...position] {
            guard let status = pending.removeValue(forKey: ctx) else {
                preconditionFailure("read-only queue and pending map disagree")
            }
            released.append(status)
        }
        queue.removeFirst(position + 1)
        return released
    }

    /// The context of the newest pending request; heartbeats carry it so that one round
    /// confirms every request before it.
    var lastPendingContext: [UInt8]? { queue.last }

    var pendingCount: Int { queue.count }
}
