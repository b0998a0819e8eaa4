/// The application's replicated state: what every node of the cluster builds, identically, by
/// applying the same committed commands in the same order.
///
/// You implement it; a `FlotillaNode` owns one instance and is the only caller. Every call comes
/// from the node's Ready loop (or, for reads, from `FlotillaNode.read`/`readLocal`), on the
/// node's actor, one at a time, so the state machine needs no locking of its own and need not
/// be `Sendable`: it is handed to the node when the node is created and never leaves it.
///
/// The rules that keep replicas identical:
///
/// - `apply` must be deterministic: the same state and command give the same new state and
///   response on every node (no clocks, no randomness, no I/O whose result can differ).
/// - A command the state machine cannot understand is still "applied": return a response that
///   says so, but change the state the same way (or not at all) on every node.
/// - `snapshot()` captures everything `apply` built; `restore(from:)` replaces the state with it.
///
/// `apply` runs while the Ready loop waits for it, so keep it short: a slow `apply` delays
/// heartbeats and every other request of this node. Every `Configuration.snapshotInterval`
/// applied entries the node takes a snapshot: `captureSnapshot()` in the loop, then the
/// closure it returns on a thread of its own. By default the capture is `snapshot()` itself;
/// a state machine whose state is a value can capture a copy (cheap with copy-on-write) and
/// encode it off the loop.
///
/// ```swift
/// struct Counter: StateMachine {
///     var value: Int64 = 0
///     mutating func apply(_ command: [UInt8], index: UInt64) -> Int64 {
///         value += Int64(command.first ?? 0)
///         return value
///     }
///     func snapshot() -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
///     mutating func restore(from snapshot: [UInt8]) throws {
///         value = snapshot.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
///     }
/// }
/// ```
///
/// The type (not its instances) is `SendableMetatype`: the node's tasks refer to it.
public protocol StateMachine: SendableMetatype {
    /// What `apply` returns to the client whose command it was (on the node that proposed it).
    associatedtype Response: Sendable

    /// Applies one committed command. `index` is its raft log index: strictly increasing, so a
    /// state machine that persists itself can skip what it already holds.
    mutating func apply(_ command: [UInt8], index: UInt64) -> Response

    /// The whole state, as bytes that `restore(from:)` accepts, on this node and on any other.
    /// A thrown error stops the node (its data stays consistent: it restarts from the last
    /// snapshot and the log).
    func snapshot() throws -> [UInt8]

    /// Replaces the whole state with a snapshot made by `snapshot()` (on this node before a
    /// restart, or on the leader, when this node was too far behind to catch up from the log).
    /// A thrown error stops the node: the snapshot is corrupt or from an incompatible version.
    mutating func restore(from snapshot: [UInt8]) throws

    /// Captures the state now, for a snapshot encoded later by the closure returned, on another
    /// thread, while `apply` goes on. The closure's bytes must be what `snapshot()` returned at
    /// the time of the capture. It may note the capture (to encode the next one from this one,
    /// say). The default calls `snapshot()` at once.
    mutating func captureSnapshot() throws -> @Sendable () throws -> [UInt8]
}

extension StateMachine {
    public func captureSnapshot() throws -> @Sendable () throws -> [UInt8] {
        let bytes = try snapshot()
        return { bytes }
    }
}
