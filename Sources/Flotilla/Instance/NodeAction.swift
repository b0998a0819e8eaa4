import Raft
import RaftNIO
import RaftWAL

/// What a `NodeInstance` asks its shell to do, in order: the instance decides, the shell (the
/// `FlotillaNode` actor, or the whole-node simulator of RaftTestKit) performs.
package enum NodeAction<Response: Sendable> {
    /// Send these to their peers (the transport drops what it cannot deliver).
    case send([Message])
    /// Write this Ready's snapshot, HardState and entries (`DiskStorage.save`), after every
    /// write asked before; then report `NodeInstance.persisted(_:)` with `PersistedReady(ready)`.
    case persist(Ready)
    /// Encode and write a snapshot of the state machine, then record it and compact the log,
    /// in order with the writes asked before; then report `snapshotTaken`.
    case snapshot(SnapshotJob)
    /// A member's address, learned or changed: connect there.
    case addPeer(UInt64, TransportAddress)
    /// A member removed: drop its connection.
    case removePeer(UInt64)
    /// The answer to request `id`.
    case complete(UInt64, RequestOutcome<Response>)
}

/// The answer to one request, by what it asked for.
package enum RequestOutcome<Response: Sendable>: Sendable {
    /// A write: the state machine's response once applied here.
    case applied(Result<Response, FlotillaError>)
    /// A read-index round: the index to have applied before reading.
    case readIndex(Result<UInt64, FlotillaError>)
    /// An index reached, a membership change applied.
    case done(Result<Void, FlotillaError>)
    /// The leader waited for.
    case leader(Result<UInt64, FlotillaError>)
}

/// A snapshot of the state machine to write (`NodeAction.snapshot`).
package struct SnapshotJob: Sendable {
    package let index: UInt64
    let confState: ConfState
    let addresses: [UInt64: TransportAddress]
    /// Entries kept in the log behind the snapshot.
    let keep: UInt64
    /// The state machine's bytes (`StateMachine.captureSnapshot`), encoded off the loop.
    let encode: @Sendable () throws -> [UInt8]

    /// Writes the snapshot file (any thread, beside the WAL's writes). Nil when the storage
    /// holds a newer snapshot by now (the leader's).
    package func writeFile(to storage: DiskStorage) throws -> Snapshot? {
        let data = SnapshotEnvelope(addresses: addresses, state: try encode()).encoded()
        return try storage.writeSnapshotFile(index: index, confState: confState, data: data)
    }

    /// In order with the WAL's writes: the snapshot's record, then the compaction. Returns the
    /// snapshot's index, or 0 when a newer snapshot from the leader was saved meanwhile.
    package func record(_ snapshot: Snapshot, in storage: DiskStorage) throws -> UInt64 {
        guard try storage.recordSnapshot(snapshot) else { return 0 }
        if index > keep {
            let compactIndex = index - keep
            if compactIndex >= (try storage.firstIndex()) { try storage.compact(compactIndex) }
        }
        return index
    }
}

/// A Ready the storage wrote: its number for `RawNode.onPersistReady`, and what waited for it.
package struct PersistedReady: Sendable {
    let number: UInt64
    private(set) var messagesAfterPersist: [Message]
    /// It carried entries or a snapshot (proposals wait while such a write is under way).
    let carriedEntries: Bool

    package init(_ ready: Ready) {
        number = ready.number
        messagesAfterPersist = ready.messagesAfterPersist
        carriedEntries = Self.carriesEntries(ready)
    }

    /// The same report once the shell has sent `messagesAfterPersist` itself, from the thread
    /// that wrote them, right after the write (as etcd 3.6's storage goroutine sends the
    /// responses an append carries): the instance then has nothing left to send.
    package func messagesSent() -> PersistedReady {
        var sent = self
        sent.messagesAfterPersist = []
        return sent
    }

    /// Whether `ready` writes entries or a snapshot (what `carriedEntries` records).
    static func carriesEntries(_ ready: Ready) -> Bool {
        !ready.entries.isEmpty || ready.snapshot != nil
    }
}
