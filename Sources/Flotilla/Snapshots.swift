import Logging
import Raft
import RaftWAL

extension FlotillaNode {
    /// Every `snapshotInterval` applied entries, and after a member is added: snapshot the
    /// state machine (with the address book) into storage, then drop the log behind it but
    /// `entriesKeptAfterCompaction`.
    ///
    /// Only the capture runs in the loop (`StateMachine.captureSnapshot`); the encoding runs on
    /// the snapshot thread, the file, its WAL record and the compaction on the disk thread
    /// (after the saves submitted before it), and `.snapshotTaken` comes back. One snapshot is
    /// under way at a time.
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
            let data: [UInt8]
            do {
                data = SnapshotEnvelope(addresses: addresses, state: try encode()).encoded()
            } catch {
                inputs?.yield(.snapshotTaken(.failure(error)))
                return
            }
            disk.submit { isActive in
                guard isActive else { return }
                let result = Result<UInt64, any Error> {
                    try Self.writeSnapshot(data, index: index, confState: confState, keep: keep, storage: storage)
                }
                if case .success = result {
                    logger.debug("snapshot taken", metadata: ["index": "\(index)", "bytes": "\(data.count)"])
                }
                inputs?.yield(.snapshotTaken(result))
            }
        }
    }

    /// On the disk thread: the snapshot file and WAL record, then the compaction. A snapshot
    /// from the leader saved meanwhile may have made this one stale: then nothing is written.
    private static func writeSnapshot(
        _ data: [UInt8], index: UInt64, confState: ConfState, keep: UInt64, storage: DiskStorage
    ) throws -> UInt64 {
        let held = try storage.snapshot().metadata.index
        guard index > held else { return held }
        try storage.createSnapshot(index: index, confState: confState, data: data)
        if index > keep {
            let compactIndex = index - keep
            if compactIndex >= (try storage.firstIndex()) { try storage.compact(compactIndex) }
        }
        return index
    }
}
