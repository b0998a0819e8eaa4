import Logging
import Raft
import RaftWAL

extension FlotillaNode {
    /// Every `snapshotInterval` applied entries, and after a member is added: snapshot the
    /// state machine (with the address book) into storage, then drop the log behind it but
    /// `entriesKeptAfterCompaction`.
    ///
    /// Only the capture runs in the loop (`StateMachine.captureSnapshot`); the encoding and the
    /// snapshot file on the snapshot thread, beside the WAL's writes; its WAL record and the
    /// compaction on the disk thread, after the saves submitted before; then `.snapshotTaken`
    /// comes back. One snapshot is under way at a time.
    func maybeSnapshot() throws {
        let interval = configuration.snapshotInterval
        guard interval > 0, !snapshotUnderWay, applied > snapshotIndex,
              snapshotSoon || applied >= snapshotIndex + interval
        else { return }
        snapshotSoon = false
        snapshotUnderWay = true
        let encode = try machine.captureSnapshot()
        let index = applied
        let confState = confState
        let addresses = addresses
        let keep = configuration.entriesKeptAfterCompaction
        let storage = storage
        let disk = disk
        let inputs = inputs
        let logger = logger
        snapshotThread.submit { isActive in
            guard isActive else { return }
            let file: Snapshot?
            do {
                let data = SnapshotEnvelope(addresses: addresses, state: try encode()).encoded()
                file = try storage.writeSnapshotFile(index: index, confState: confState, data: data)
            } catch {
                inputs.yield(.snapshotTaken(.failure(error)))
                return
            }
            guard let file else {  // the leader's snapshot, newer, arrived meanwhile
                inputs.yield(.snapshotTaken(.success(0)))
                return
            }
            disk.submit { isActive in
                guard isActive else { return }
                let result = Result<UInt64, any Error> {
                    try Self.recordSnapshot(file, keep: keep, storage: storage)
                }
                if case .success = result {
                    logger.debug("snapshot taken", metadata: ["index": "\(index)", "bytes": "\(file.data.count)"])
                }
                inputs.yield(.snapshotTaken(result))
            }
        }
    }

    /// On the disk thread, after the saves submitted before: the snapshot's WAL record, then
    /// the compaction. Returns the snapshot's index, or 0 when a newer snapshot from the leader
    /// was saved meanwhile.
    private static func recordSnapshot(_ snapshot: Snapshot, keep: UInt64, storage: DiskStorage) throws -> UInt64 {
        guard try storage.recordSnapshot(snapshot) else { return 0 }
        let index = snapshot.metadata.index
        if index > keep {
            let compactIndex = index - keep
            if compactIndex >= (try storage.firstIndex()) { try storage.compact(compactIndex) }
        }
        return index
    }
}
