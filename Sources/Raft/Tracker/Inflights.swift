/// The append messages in flight to one follower, as a ring buffer of (last index, bytes).
/// The leader stops sending when the window is full (by count or by bytes) and frees slots
/// as acknowledgements arrive; this is the flow control of etcd's tracker/inflights.go.
public struct Inflights: Sendable, Hashable {
    @usableFromInline struct Slot: Sendable, Hashable {
        var index: UInt64
        var bytes: UInt64
    }

    /// The ring; it grows lazily up to `capacity` so idle followers cost nothing.
    @usableFromInline var buffer: [Slot] = []
    @usableFromInline var start = 0
    /// Messages in flight.
    public private(set) var count = 0
    /// Bytes in flight.
    public private(set) var bytes: UInt64 = 0
    /// The most messages in flight.
    public let capacity: Int
    /// The most bytes in flight; 0 = no limit.
    public let maxBytes: UInt64

    public init(capacity: Int, maxBytes: UInt64 = 0) {
        precondition(capacity > 0, "inflights capacity must be positive")
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    /// Whether no more messages may be sent.
    @inlinable
    public var isFull: Bool {
        count == capacity || (maxBytes != 0 && bytes >= maxBytes)
    }

    /// Records a message ending at `index` carrying `bytes` of entries. Indices must increase.
    mutating func add(index: UInt64, bytes size: UInt64) {
        precondition(!isFull, "cannot add into a full inflights window")
        var next = start + count
        if next >= capacity { next -= capacity }
        if next >= buffer.count {
            // Grow: the ring is only ever unwrapped while it is smaller than capacity.
            if buffer.isEmpty { buffer.reserveCapacity(min(capacity, 16)) }
            buffer.append(Slot(index: index, bytes: size))
        } else {
            buffer[next] = Slot(index: index, bytes: size)
        }
        count += 1
        bytes &+= size
    }

    /// Frees every message whose last index is ≤ `index` (they were acknowledged).
    mutating func freeLE(_ index: UInt64) {
        if count == 0 || index < buffer[start].index { return }
        var freed = 0
        var idx = start
        var freedBytes: UInt64 = 0
        // In-use slots are start, start+1, … (mod capacity); they always lie inside `buffer`.
        while freed < count && buffer[idx].index <= index {
            freedBytes &+= buffer[idx].bytes
            idx += 1
            if idx == capacity { idx = 0 }
            freed += 1
        }
        count -= freed
        bytes -= freedBytes
        // Nothing in flight: restart at 0 so the ring stays compact.
        start = count == 0 ? 0 : idx
    }

    /// Frees the oldest message (a heartbeat response proves the follower is alive; let one more go).
    mutating func freeFirstOne() {
        guard count > 0 else { return }
        freeLE(buffer[start].index)
    }

    /// Forgets everything in flight.
    mutating func reset() {
        count = 0
        start = 0
        bytes = 0
    }
}
