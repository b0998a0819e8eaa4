/// The log as raft sees it: what the application persisted (`storage`), followed by what it
/// has not persisted yet (`unstable`), and how far it is committed and applied.
///
///     storage:   [firstIndex ........... unstable.offset-1]
///     unstable:                          [unstable.offset ...... lastIndex]
///     committed/applied: applied <= committed <= lastIndex
///
/// Broken invariants (committing beyond the log, overwriting committed entries, a storage that
/// fails for reasons other than compaction) stop the process with a message, as etcd panics:
/// continuing would risk the safety of the replicated log.
struct RaftLog {
    /// The entries the application persisted: the log up to `unstable.offset - 1`.
    let storage: any Storage
    /// The entries and snapshot not yet persisted.
    var unstable: UnstableLog
    /// The highest index known to be on a quorum of nodes.
    var committed: UInt64
    /// The highest index the application applied to its state machine. `applied <= committed`.
    var applied: UInt64
    /// Asynchronous storage writes: the highest index handed out to apply (committed entries or
    /// a snapshot) that the application has not reported applied yet. `applied <= applying`;
    /// equal to `applied` in the synchronous mode.
    var applying: UInt64
    /// The byte limit of the entries one `nextCommittedEntries()` returns (at least one entry).
    var maxNextEntriesSize: UInt64
    /// The entries the application last reported persisted, when that was the whole unstable
    /// tail (the buffer `stableTo` let go of, shared, not copied): the same entries storage
    /// now holds from `recentlyStable[0].index`. A follower applies them one round after it
    /// persisted them, and reads them from here instead of copying them out of storage.
    /// Invariant: storage holds exactly these entries at their indices, so it is dropped
    /// whenever the log is truncated at or below its end, or replaced by a snapshot.
    private(set) var recentlyStable: [Entry] = []
    /// The indexes `recentlyStable` holds (empty when it holds none).
    private var recentlyStableRange: Range<UInt64> {
        guard let first = recentlyStable.first?.index else { return 0..<0 }
        return first..<first + UInt64(recentlyStable.count)
    }

    /// A log over `storage`, committed and applied up to its snapshot; everything after
    /// storage's last entry will be unstable.
    init(storage: any Storage, maxNextEntriesSize: UInt64 = .max) throws {
        let first = try storage.firstIndex()
        let last = try storage.lastIndex()
        precondition(first >= 1, "storage's firstIndex must be at least 1 (it is \(first))")
        self.storage = storage
        self.unstable = UnstableLog(offset: last + 1)
        self.committed = first - 1
        self.applied = first - 1
        self.applying = first - 1
        self.maxNextEntriesSize = maxNextEntriesSize
    }

    // MARK: Bounds

    /// The index of the first entry still available (the snapshot's index + 1).
    var firstIndex: UInt64 {
        if let i = unstable.maybeFirstIndex() { return i }
        do {
            return try storage.firstIndex()
        } catch {
            fatalError("raft log: storage.firstIndex() failed: \(error)")
        }
    }

    /// The index of the last entry (the snapshot's when there are no entries).
    var lastIndex: UInt64 {
        if let i = unstable.maybeLastIndex() { return i }
        // With no unstable entries the log ends where storage does, just before `unstable.offset`:
        // the offset starts at storage's last index + 1 and moves only as the application
        // reports entries persisted (`stableTo`), which it does after writing them. Answering
        // from it spares a storage call (a lock and a dynamic dispatch) on every proposal.
        return unstable.offset - 1
    }

    /// The term of the last entry.
    var lastTerm: UInt64 {
        do {
            return try term(lastIndex)
        } catch {
            fatalError("raft log: unexpected error when getting the last term: \(error)")
        }
    }

    /// The first index not yet applied that the log still holds: max(applied+1, firstIndex).
    private var firstUnappliedIndex: UInt64 {
        let next = Swift.max(applied, applying) + 1
        // firstIndex <= unstable.offset always: everything before the unstable entries is in
        // storage (or the unstable snapshot). So when applied has reached the unstable entries,
        // storage need not be asked. This is the hot path of a busy leader.
        if next >= unstable.offset { return next }
        return max(next, firstIndex)
    }

    // MARK: Terms

    /// The term of the entry at `i`; 0 if `i` is outside `[firstIndex-1, lastIndex]` (as etcd
    /// 3.5). Throws `compacted` or `unavailable` if storage lost the entry meanwhile.
    func term(_ i: UInt64) throws(RaftError) -> UInt64 {
        // The unstable log first: it answers without a trip to storage, and anything it holds
        // is within the valid range.
        if let t = unstable.maybeTerm(i) { return t }
        // Past the unstable entries means past lastIndex.
        if i >= unstable.offset && !unstable.entries.isEmpty { return 0 }
        // The valid range is [index of the dummy entry, lastIndex]: the term of the entry just
        // before the first is known (the snapshot's), for matching appends.
        // (firstIndex >= 1; `i + 1` could overflow on a hostile index.)
        if i < firstIndex - 1 || i > lastIndex { return 0 }
        // Within bounds and persisted last: the batch storage holds as it is answers without
        // a storage call (a follower checks the leader's previous entry against it).
        let recent = recentlyStableRange
        if recent.contains(i) { return recentlyStable[Int(i - recent.lowerBound)].term }
        do {
            return try storage.term(i)
        } catch let error as RaftError where error == .compacted || error == .unavailable {
            throw error
        } catch {
            fatalError("raft log: storage.term(\(i)) failed: \(error)")
        }
    }

    /// The term of the entry at `i`, or 0 if it is unknown (compacted or unavailable).
    func zeroTermOnOutOfBounds(_ i: UInt64) -> UInt64 {
        (try? term(i)) ?? 0
    }

    /// Whether the entry at `i` has term `t`.
    func matchTerm(_ i: UInt64, _ t: UInt64) -> Bool {
        guard let ourTerm = try? term(i) else { return false }
        return ourTerm == t
    }

    /// The index of the first of `ents` that is not in the log with the same term: either it
    /// conflicts with an existing entry, or it is new (beyond lastIndex). 0 if every entry is
    /// already in the log. `ents` must be contiguous.
    func findConflict(_ ents: ArraySlice<Entry>) -> UInt64 {
        for entry in ents where !matchTerm(entry.index, entry.term) {
            return entry.index
        }
        return 0
    }

    /// The leader's fast backtracking of a rejected append (thesis §5.3 optimisation): the
    /// largest index `<= index` whose term is `<= term`, with that term. Every entry above it
    /// has a larger term, so it cannot match a log whose entry at `index` has `term`.
    /// Stops at the first index whose term is unknown (compacted), returning it with term 0:
    /// it may match. If `index` is beyond lastIndex, returns `(index, 0)`.
    func findConflictByTerm(index: UInt64, term: UInt64) -> (index: UInt64, term: UInt64) {
        if index > lastIndex { return (index, 0) }
        var i = index
        while i > 0 {
            guard let ourTerm = try? self.term(i) else { return (i, 0) }
            if ourTerm <= term { return (i, ourTerm) }
            i -= 1
        }
        return (0, 0)
    }

    /// Whether a candidate whose log ends at (`lastIndex`, `term`) is at least as up to date as
    /// this log (thesis §3.6.1 / paper §5.4.1): a later last term wins, then a longer log.
    func isUpToDate(lastIndex candidateIndex: UInt64, term candidateTerm: UInt64) -> Bool {
        let ourTerm = lastTerm
        return candidateTerm > ourTerm || (candidateTerm == ourTerm && candidateIndex >= lastIndex)
    }

    // MARK: Appending

    /// A follower's append: if the log has the entry (`index`, `logTerm`) the leader's entries
    /// follow, appends `entries` (after it), truncating any conflicting suffix, and commits up
    /// to `committed` (but not beyond the last new entry). Returns the index of the last new
    /// entry, or nil if the log does not match at `index`.
    mutating func maybeAppend(index: UInt64, logTerm: UInt64, committed: UInt64, entries: [Entry]) -> UInt64? {
        guard matchTerm(index, logTerm) else { return nil }
        let lastNewIndex = index + UInt64(entries.count)
        let conflict = findConflict(entries[...])
        if conflict != 0 {
            if conflict <= self.committed {
                fatalError("raft log: entry \(conflict) conflicts with committed entry [committed(\(self.committed))]")
            }
            // Entries before the conflict are already in the log.
            precondition(
                conflict > index && conflict - index <= UInt64(entries.count),
                "raft log: appended entries must follow index \(index) contiguously; conflict at \(conflict)")
            let start = Int(conflict - (index + 1))
            // All new (the common case): hand over the message's array itself, no copy.
            if start == 0 { append(entries) } else { append(entries[start...]) }
        }
        commitTo(min(committed, lastNewIndex))
        return lastNewIndex
    }

    /// Appends `ents` (contiguous) to the unstable log, replacing any entries from
    /// `ents[0].index` on. Returns the new lastIndex. Overwriting a committed entry is fatal.
    @discardableResult
    mutating func append(_ ents: [Entry]) -> UInt64 {
        guard let first = ents.first else { return lastIndex }
        checkAppendable(first.index)
        forgetRecentlyStable(from: first.index)
        // The array overload: an empty unstable tail adopts the array instead of copying it.
        unstable.truncateAndAppend(ents)
        return lastIndex
    }

    @discardableResult
    mutating func append(_ ents: ArraySlice<Entry>) -> UInt64 {
        guard let first = ents.first else { return lastIndex }
        checkAppendable(first.index)
        forgetRecentlyStable(from: first.index)
        unstable.truncateAndAppend(ents)
        return lastIndex
    }

    /// Entries from `index` on are being replaced: once the application persists the new ones,
    /// storage no longer holds the recently stable batch as it was.
    @inline(__always)
    private mutating func forgetRecentlyStable(from index: UInt64) {
        if index < recentlyStableRange.upperBound { recentlyStable = [] }
    }

    /// Overwriting a committed entry would break the log's safety: stop.
    private func checkAppendable(_ first: UInt64) {
        if first == 0 || first - 1 < committed {
            fatalError("raft log: appending after \(first &- 1) is out of range [committed(\(committed))]")
        }
    }

    // MARK: Reading

    /// The entries the application has yet to persist.
    var unstableEntries: [Entry] {
        // Shared, not copied: the unstable log lets go of its buffer once these are stable.
        unstable.entries
    }

    /// The committed entries not yet applied, at most `maxNextEntriesSize` bytes (but at least
    /// one). As in etcd 3.5, they may include entries not yet persisted: applying an entry
    /// committed on a quorum is safe before the local write completes.
    func nextCommittedEntries() -> [Entry] {
        let lo = firstUnappliedIndex
        guard committed + 1 > lo else { return [] }
        do {
            return try slice(lo, committed + 1, maxSize: maxNextEntriesSize)
        } catch {
            fatalError("raft log: unexpected error when getting unapplied entries [\(lo), \(committed)]: \(error)")
        }
    }

    /// `nextCommittedEntries()`, but when those are exactly the unstable entries (a leader that
    /// commits on append, as a single voter does) it returns `unstableCopy`, which the caller
    /// already made of them, instead of copying them a second time.
    func nextCommittedEntries(reusing unstableCopy: [Entry]) -> [Entry] {
        if let first = unstableCopy.first, let last = unstableCopy.last,
            first.index == unstable.offset, firstUnappliedIndex == first.index, committed == last.index
        {
            // One entry is always returned, whatever its size; more must fit in the limit.
            if unstableCopy.count == 1 { return unstableCopy }
            var size: UInt64 = 0
            for e in unstableCopy { size &+= e.byteSize }
            if size <= maxNextEntriesSize { return unstableCopy }
        }
        return nextCommittedEntries()
    }

    /// Whether there are committed entries not yet applied.
    var hasNextCommittedEntries: Bool {
        committed + 1 > firstUnappliedIndex
    }

    /// The last index of the log's durable prefix with asynchronous storage writes: everything
    /// before the unstable entries (those being written included) — or 0 while a snapshot is
    /// unstable, which nothing after can precede on disk.
    var persistedIndex: UInt64 {
        unstable.snapshotBox == nil ? unstable.offset - 1 : 0
    }

    /// Asynchronous storage writes: the committed entries not yet handed out to apply that are
    /// also durable here, at most `maxNextEntriesSize` bytes (but at least one). A node applies
    /// only what it has persisted, so that every applied index is in its storage (a snapshot
    /// of the state machine can be taken at it, and a restart never applies less).
    func nextPersistedCommittedEntries() -> [Entry] {
        let lo = firstUnappliedIndex
        let hi = Swift.min(committed, persistedIndex)
        guard hi + 1 > lo else { return [] }
        do {
            return try slice(lo, hi + 1, maxSize: maxNextEntriesSize)
        } catch {
            fatalError("raft log: unexpected error when getting unapplied entries [\(lo), \(hi)]: \(error)")
        }
    }

    /// Whether `nextPersistedCommittedEntries()` has any.
    var hasNextPersistedCommittedEntries: Bool {
        Swift.min(committed, persistedIndex) + 1 > firstUnappliedIndex
    }

    /// The latest snapshot: the unstable one if there is one, else storage's.
    func snapshot() throws -> Snapshot {
        if let s = unstable.snapshot { return s }
        return try storage.snapshot()
    }

    /// Whether a snapshot waits to be persisted and applied.
    var hasPendingSnapshot: Bool {
        guard let box = unstable.snapshotBox else { return false }
        return !box.value.isEmpty
    }

    /// The entries from `i` to the end, at most `maxSize` bytes (but at least one); empty if
    /// `i` is beyond lastIndex. Throws `compacted` if `i` is before firstIndex.
    func entries(from i: UInt64, maxSize: UInt64) throws(RaftError) -> [Entry] {
        let last = lastIndex
        if i > last { return [] }
        return try slice(i, last + 1, maxSize: maxSize)
    }

    /// Every entry in the log (for tests). Retries when a compaction races with the read.
    func allEntries() -> [Entry] {
        while true {
            do {
                return try entries(from: firstIndex, maxSize: .max)
            } catch RaftError.compacted {
                continue
            } catch {
                fatalError("raft log: unexpected error reading all entries: \(error)")
            }
        }
    }

    /// The entries in `[lo, hi)`, at most `maxSize` bytes (but at least one), read from
    /// storage below `unstable.offset` and from the unstable log from there on.
    /// Throws `compacted` if `lo` is before firstIndex; `hi` beyond lastIndex+1 is fatal.
    func slice(_ lo: UInt64, _ hi: UInt64, maxSize: UInt64) throws(RaftError) -> [Entry] {
        try checkOutOfBounds(lo, hi)
        if lo == hi { return [] }
        let offset = unstable.offset
        guard lo < offset else {
            // Entirely unstable: copy only what the limit keeps.
            return copyEntries(limitSize(unstable.slice(lo, hi), maxSize: maxSize))
        }

        let storedHi = min(hi, offset)
        var ents: [Entry]
        if let recent = recentlyStableEntries(lo, storedHi) {
            ents = recent
            // Limited here as storage limits what it returns.
            if maxSize != .max { limitSize(&ents, maxSize: maxSize) }
        } else {
            ents = try storedEntries(lo, storedHi, maxSize: maxSize)
        }
        // Storage stopped early at the size limit: the unstable entries would exceed it too.
        if UInt64(ents.count) < storedHi - lo { return ents }
        if hi > offset {
            appendLimited(unstable.slice(offset, hi), to: &ents, maxSize: maxSize)
        } else {
            limitSize(&ents, maxSize: maxSize)
        }
        return ents
    }

    /// Storage's entries in `[lo, hi)`; only compaction is an error the caller may handle.
    private func storedEntries(_ lo: UInt64, _ hi: UInt64, maxSize: UInt64) throws(RaftError) -> [Entry] {
        do {
            return try storage.entries(lo, hi, maxSize: maxSize)
        } catch RaftError.compacted {
            throw .compacted
        } catch RaftError.unavailable {
            fatalError("raft log: entries[\(lo),\(hi)) are unavailable from storage")
        } catch {
            fatalError("raft log: storage.entries(\(lo), \(hi)) failed: \(error)")
        }
    }

    /// The entries in `[lo, hi)` from `recentlyStable`, if it holds all of them: its own array
    /// when it is exactly that range (the hot path), else a copy of the part.
    private func recentlyStableEntries(_ lo: UInt64, _ hi: UInt64) -> [Entry]? {
        let recent = recentlyStableRange
        guard !recent.isEmpty, lo >= recent.lowerBound, hi <= recent.upperBound else { return nil }
        if lo..<hi == recent { return recentlyStable }
        return Array(recentlyStable[Int(lo - recent.lowerBound)..<Int(hi - recent.lowerBound)])
    }

    /// Appends to `ents` as many of `more` as keep the total within `maxSize` — the same as
    /// etcd's limitSize over the concatenation, without copying what would be cut.
    private func appendLimited(_ more: ArraySlice<Entry>, to ents: inout [Entry], maxSize: UInt64) {
        if maxSize == .max {
            ents.append(contentsOf: more)
            return
        }
        limitSize(&ents, maxSize: maxSize)
        var size: UInt64 = 0
        for entry in ents { size += entry.byteSize }
        var end = more.startIndex
        while end < more.endIndex {
            size += more[end].byteSize
            // The first entry overall is always kept.
            if size > maxSize && !(ents.isEmpty && end == more.startIndex) { break }
            end += 1
        }
        ents.append(contentsOf: more[more.startIndex..<end])
    }

    /// Checks that `[lo, hi)` lies within the log: throws `compacted` if `lo` is before
    /// firstIndex; `lo > hi` or `hi > lastIndex + 1` is a programming error and fatal.
    func checkOutOfBounds(_ lo: UInt64, _ hi: UInt64) throws(RaftError) {
        if lo > hi { fatalError("raft log: invalid slice \(lo) > \(hi)") }
        // firstIndex <= unstable.offset, so only an index below the offset can be compacted;
        // this spares the hot path a trip to storage.
        if lo < unstable.offset && lo < firstIndex { throw .compacted }
        let last = lastIndex
        if hi > last + 1 {
            fatalError("raft log: slice[\(lo),\(hi)) out of bound [\(firstIndex),\(last)]")
        }
    }

    // MARK: Progress

    /// Commits up to `maxIndex` if it is beyond `committed` and its entry has `term` (a leader
    /// only commits entries of its own term by counting replicas: thesis §3.6.2).
    mutating func maybeCommit(maxIndex: UInt64, term: UInt64) -> Bool {
        guard maxIndex > committed, zeroTermOnOutOfBounds(maxIndex) == term else { return false }
        commitTo(maxIndex)
        return true
    }

    /// Raises `committed` to `toCommit` (never lowers it). Committing beyond the log is fatal.
    mutating func commitTo(_ toCommit: UInt64) {
        guard committed < toCommit else { return }
        let last = lastIndex
        if last < toCommit {
            fatalError("raft log: tocommit(\(toCommit)) is out of range [lastIndex(\(last))]. Was the raft log corrupted, truncated, or lost?")
        }
        committed = toCommit
    }

    /// Records that the application applied up to `i` (0 is ignored). `i` must be in
    /// `[applied, committed]`.
    mutating func appliedTo(_ i: UInt64) {
        if i == 0 { return }
        if committed < i || i < applied {
            fatalError("raft log: applied(\(i)) is out of range [prevApplied(\(applied)), committed(\(committed))]")
        }
        applied = i
        applying = Swift.max(applying, i)
    }

    /// The application persisted the entries up to `index` (whose term was `term`).
    mutating func stableTo(index: UInt64, term: UInt64) {
        // Held only when the whole tail is reported: a second reference to a buffer the unstable
        // log then trims in place would make it copy the rest.
        let tailEnd = unstable.offset + UInt64(unstable.entries.count)
        let tail = !unstable.entries.isEmpty && index == tailEnd - 1 ? unstable.entries : []
        unstable.stableTo(index: index, term: term)
        // The whole tail persisted: keep it. Anything else (a part, or nothing because it was
        // overwritten meanwhile) leaves no batch that storage is known to hold as it is.
        recentlyStable = !tail.isEmpty && unstable.entries.isEmpty && unstable.offset == tailEnd ? tail : []
    }

    /// The application persisted the snapshot at `i`.
    mutating func stableSnapTo(_ i: UInt64) {
        unstable.stableSnapTo(i)
    }

    /// Replaces the log with snapshot `s` (a follower behind the leader's compaction point):
    /// everything up to it is committed.
    mutating func restore(_ s: Snapshot) {
        committed = s.metadata.index
        recentlyStable = []
        unstable.restore(s)
    }
}

extension RaftLog: CustomStringConvertible {
    var description: String {
        "committed=\(committed), applied=\(applied), unstable.offset=\(unstable.offset), len(unstable.entries)=\(unstable.entries.count)"
    }
}
