import Raft

extension NodeInstance {
    /// Every `snapshotInterval` applied entries, and after a member is added: snapshot the
    /// state machine (with the address book) into storage, then drop the log behind it but
    /// `entriesKeptAfterCompaction`.
    ///
    /// Only the capture runs here (`StateMachine.captureSnapshot`); the shell encodes and writes
    /// the file beside the WAL's writes, then records it and compacts in order with them
    /// (`SnapshotJob`), and reports `snapshotTaken`. One snapshot is under way at a time.
    mutating func maybeSnapshot() throws {
        let interval = settings.snapshotInterval
        guard interval > 0, !snapshotUnderWay, applied > snapshotIndex,
              snapshotRequested || applied >= snapshotIndex + interval
        else { return }
        snapshotRequested = false
        snapshotUnderWay = true
        let encode = try machine.captureSnapshot()
        emit(.snapshot(SnapshotJob(
            index: applied, confState: confState, addresses: addresses, keep: settings.entriesKeptAfterCompaction,
            encode: encode)))
    }
}
