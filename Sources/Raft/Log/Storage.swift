/// What the library reads of the log the application persisted. The application writes it
/// (append entries, set the hard state, apply snapshots) as it handles each `Ready`.
///
/// Implementations must be safe to read from the raft driver while the application writes,
/// and must throw `RaftError.compacted` for indices before `firstIndex()` and
/// `RaftError.unavailable` for indices after `lastIndex()`.
public protocol Storage: AnyObject {
    /// The saved HardState and the ConfState of the latest snapshot/configuration.
    func initialState() throws -> (HardState, ConfState)
    /// Entries in `[lo, hi)`, at most `maxSize` bytes in total but always at least one.
    func entries(_ lo: UInt64, _ hi: UInt64, maxSize: UInt64) throws -> [Entry]
    /// The term of the entry at `index`, which must be in `[firstIndex()-1, lastIndex()]`
    /// (the entry before the first is the snapshot's).
    func term(_ index: UInt64) throws -> UInt64
    func lastIndex() throws -> UInt64
    /// The index of the first entry still available (the snapshot's index + 1).
    func firstIndex() throws -> UInt64
    /// The most recent snapshot. May throw `snapshotTemporarilyUnavailable` while one is being made.
    func snapshot() throws -> Snapshot
}
