import Synchronization

/// A `Storage` that keeps everything in memory: the hard state, the latest snapshot and the
/// entries after it. Safe to use from several threads: the raft driver reads it while the
/// application writes it.
///
/// Layout (as etcd's): `entries[0]` is a dummy entry carrying the index and term of the latest
/// snapshot (or compaction point); the real entries follow it, so entry `i` lives at
/// `entries[i - entries[0].index]`.
public final class MemoryStorage: Storage, Sendable {
    struct State {
        var hardState = HardState()
        var snapshot = Snapshot()
        /// `entries[0]` is the dummy entry; see the type's documentation.
        var entries: [Entry] = [Entry()]

        var dummyIndex: UInt64 { entries[0].index }
        var firstIndex: UInt64 { entries[0].index + 1 }
        var lastIndex: UInt64 { entries[0].index + UInt64(entries.count) - 1 }
    }

    private let state: Mutex<State>

    public init() {
        state = Mutex(State())
    }

    /// A storage whose entry array is `entries` as is: `entries[0]` is taken as the dummy
    /// entry (the snapshot's index and term). For tests, as etcd's `&MemoryStorage{ents: ...}`.
    init(entries: [Entry]) {
        precondition(!entries.isEmpty, "MemoryStorage needs at least the dummy entry")
        state = Mutex(State(entries: entries))
    }

    // MARK: Writing (the application, while handling a Ready)

    /// The saved hard state.
    public var hardState: HardState {
        state.withLock { $0.hardState }
    }

    public func setHardState(_ hardState: HardState) throws(RaftError) {
        state.withLock { $0.hardState = hardState }
    }

    /// Replaces the contents of the storage with `snapshot`: every entry is dropped.
    /// Throws `snapshotOutOfDate` unless `snapshot` is newer than the snapshot held.
    public func applySnapshot(_ snapshot: Snapshot) throws(RaftError) {
        try state.withLock { (s: inout State) throws(RaftError) in
            // etcd rejects an equal index too: it carries nothing new.
            if s.snapshot.metadata.index >= snapshot.metadata.index {
                throw RaftError.snapshotOutOfDate
            }
            s.snapshot = snapshot
            s.entries = [Entry(term: snapshot.metadata.term, index: snapshot.metadata.index)]
        }
    }

    /// Makes a snapshot of the state machine at `index` (which must be in the log), remembers
    /// it and returns it. `confState`, when given, replaces the configuration recorded.
    /// Throws `snapshotOutOfDate` if `index` is not past the current snapshot, `unavailable`
    /// if `index` is beyond the last entry (etcd panics there).
    /// Compacting the log is separate: call `compact(_:)` afterwards.
    public func createSnapshot(_ index: UInt64, confState: ConfState?, data: [UInt8]) throws(RaftError) -> Snapshot {
        try state.withLock { (s: inout State) throws(RaftError) -> Snapshot in
            if index <= s.snapshot.metadata.index { throw RaftError.snapshotOutOfDate }
            if index > s.lastIndex { throw RaftError.unavailable }
            s.snapshot.metadata.index = index
            s.snapshot.metadata.term = s.entries[Int(index - s.dummyIndex)].term
            if let confState { s.snapshot.metadata.confState = confState }
            s.snapshot.data = data
            return s.snapshot
        }
    }

    /// Discards the entries up to and including `compactIndex`; the entry at `compactIndex`
    /// becomes the dummy entry. The application must not compact beyond what it has applied.
    /// Throws `compacted` if `compactIndex` is already compacted, `unavailable` if it is beyond
    /// the last entry (etcd panics there).
    public func compact(_ compactIndex: UInt64) throws(RaftError) {
        try state.withLock { (s: inout State) throws(RaftError) in
            if compactIndex <= s.dummyIndex { throw RaftError.compacted }
            if compactIndex > s.lastIndex { throw RaftError.unavailable }
            let i = Int(compactIndex - s.dummyIndex)
            // The entry at compactIndex keeps its index and term but not its payload.
            s.entries[i] = Entry(term: s.entries[i].term, index: s.entries[i].index)
            s.entries.removeSubrange(0..<i)
        }
    }

    /// Appends `entries`, which must be contiguous. Entries already compacted are ignored; an
    /// existing suffix that the new entries overlap is replaced. Throws `logGap` if the
    /// entries start after `lastIndex() + 1`: entries were lost on the way.
    public func append(_ entries: [Entry]) throws(RaftError) {
        guard let firstNew = entries.first?.index else { return }
        try state.withLock { (s: inout State) throws(RaftError) in
            let first = s.firstIndex
            let lastNew = firstNew + UInt64(entries.count) - 1
            // Everything new is already compacted.
            if lastNew < first { return }
            // Skip the compacted prefix of the new entries.
            let skip = firstNew < first ? Int(first - firstNew) : 0
            let start = firstNew + UInt64(skip)
            let position = start - s.dummyIndex  // where entries[skip] goes in s.entries
            if position > UInt64(s.entries.count) {
                throw RaftError.logGap(lastIndex: s.lastIndex, appendedFirst: start)
            }
            if position < UInt64(s.entries.count) {
                // Truncate the conflicting suffix in place; the array keeps its capacity.
                s.entries.removeSubrange(Int(position)...)
            }
            s.entries.append(contentsOf: entries[skip...])
        }
    }

    // MARK: Storage (what raft reads)

    public func initialState() throws(RaftError) -> (HardState, ConfState) {
        state.withLock { ($0.hardState, $0.snapshot.metadata.confState) }
    }

    public func entries(_ lo: UInt64, _ hi: UInt64, maxSize: UInt64) throws(RaftError) -> [Entry] {
        try state.withLock { (s: inout State) throws(RaftError) -> [Entry] in
            let offset = s.dummyIndex
            if lo <= offset { throw RaftError.compacted }
            // etcd panics on these two: the caller asked for entries that do not exist.
            if hi > s.lastIndex + 1 || lo > hi { throw RaftError.unavailable }
            // Only the dummy entry: nothing to return.
            if s.entries.count == 1 { throw RaftError.unavailable }
            let slice = s.entries[Int(lo - offset)..<Int(hi - offset)]
            return copyEntries(limitSize(slice, maxSize: maxSize))
        }
    }

    public func term(_ index: UInt64) throws(RaftError) -> UInt64 {
        try state.withLock { (s: inout State) throws(RaftError) -> UInt64 in
            let offset = s.dummyIndex
            if index < offset { throw RaftError.compacted }
            let i = index - offset
            if i >= UInt64(s.entries.count) { throw RaftError.unavailable }
            return s.entries[Int(i)].term
        }
    }

    public func lastIndex() throws(RaftError) -> UInt64 {
        state.withLock { $0.lastIndex }
    }

    public func firstIndex() throws(RaftError) -> UInt64 {
        state.withLock { $0.firstIndex }
    }

    public func snapshot() throws(RaftError) -> Snapshot {
        state.withLock { $0.snapshot }
    }
}

/// etcd's `limitSize`: the longest prefix of `entries` whose total `byteSize` is at most
/// `maxSize`, but never less than one entry, so that progress is always possible.
func limitSize(_ entries: ArraySlice<Entry>, maxSize: UInt64) -> ArraySlice<Entry> {
    // No limit (etcd's noLimit), or nothing to cut: skip measuring.
    if maxSize == .max || entries.count <= 1 { return entries }
    var size = entries[entries.startIndex].byteSize
    var end = entries.startIndex + 1
    while end < entries.endIndex {
        size += entries[end].byteSize
        if size > maxSize { break }
        end += 1
    }
    return entries[entries.startIndex..<end]
}

/// `limitSize` in place on an array: drops the entries past the limit.
func limitSize(_ entries: inout [Entry], maxSize: UInt64) {
    let keep = limitSize(entries[...], maxSize: maxSize).count
    if keep < entries.count { entries.removeSubrange(keep...) }
}

/// A fresh array holding `slice`'s entries. Unlike `Array(slice)`, never shares the slice's
/// buffer, so the array the slice came from stays uniquely referenced and mutable in place.
@inline(__always)
func copyEntries(_ slice: ArraySlice<Entry>) -> [Entry] {
    if slice.isEmpty { return [] }
    var result: [Entry] = []
    result.reserveCapacity(slice.count)
    result.append(contentsOf: slice)
    return result
}
