/// The tail of the log that the application has not persisted yet: entries (appended by the
/// leader, or received by a follower) and possibly an incoming snapshot. Once the application
/// reports them stable (`stableTo`, `stableSnapTo`), they are dropped from here and read from
/// `Storage` instead.
///
/// `entries[i]` has index `offset + i`. Note that `offset` may be lower than the index of an
/// entry already in storage: a leader change can overwrite entries the application persisted
/// but whose newer versions it has not persisted yet.
struct UnstableLog {
    /// The incoming snapshot, if any; it precedes `entries`.
    var snapshot: Snapshot? { snapshotBox?.value }
    /// Boxed, as in `Message`: every index lookup asks whether there is a snapshot, and an
    /// inline `Snapshot?` (data and four arrays) would be copied out, with memcpy and retains,
    /// for each question.
    private(set) var snapshotBox: SnapshotBox? = nil
    /// The snapshot's index, if there is one.
    var snapshotIndex: UInt64? { snapshotBox?.value.metadata.index }
    /// The entries not yet persisted.
    var entries: [Entry] = []
    /// The index of `entries[0]` (or where the next entry goes when there is none).
    var offset: UInt64 = 0
    /// With asynchronous storage writes (`Config.asyncStorageWrites`): the entries before this
    /// index were handed to the application in a Ready and are being written; the next Ready
    /// carries only the ones from here on. Invariant: `offset <= offsetInProgress <= offset +
    /// entries.count`. Stays equal to `offset` in the synchronous mode, where a Ready carries every
    /// unstable entry until `advance` (etcd 3.6's `offsetInProgress`).
    var offsetInProgress: UInt64 = 0
    /// The snapshot was handed out in a Ready and is being written (asynchronous mode only).
    var snapshotInProgress = false

    init(snapshot: Snapshot? = nil, entries: [Entry] = [], offset: UInt64) {
        self.snapshotBox = snapshot.map(SnapshotBox.init)
        self.entries = entries
        self.offset = offset
        offsetInProgress = offset
    }

    /// The entries not yet handed out for writing.
    var entriesNotInProgress: ArraySlice<Entry> {
        entries[Int(offsetInProgress - offset)...]
    }

    /// Whether there is something to hand out for writing: entries or a snapshot.
    var hasNotInProgress: Bool {
        offsetInProgress < offset + UInt64(entries.count) || (snapshotBox != nil && !snapshotInProgress)
    }

    /// Marks every entry and the snapshot as being written.
    mutating func acceptInProgress() {
        offsetInProgress = offset + UInt64(entries.count)
        if snapshotBox != nil { snapshotInProgress = true }
    }

    /// The index of the first entry, if known from the snapshot.
    func maybeFirstIndex() -> UInt64? {
        snapshotIndex.map { $0 + 1 }
    }

    /// The index of the last entry, if there are entries or a snapshot.
    func maybeLastIndex() -> UInt64? {
        if !entries.isEmpty { return offset + UInt64(entries.count) - 1 }
        return snapshotIndex
    }

    /// The term of the entry at `i`, if the unstable log holds it (or it is the snapshot's).
    func maybeTerm(_ i: UInt64) -> UInt64? {
        if i < offset {
            if let box = snapshotBox, box.value.metadata.index == i { return box.value.metadata.term }
            return nil
        }
        let position = i - offset
        if position < UInt64(entries.count) { return entries[Int(position)].term }
        // Beyond the entries: only the snapshot could answer, and it lies before `offset`.
        return nil
    }

    /// The application persisted the entries up to `index`, the last of which had `term`.
    /// Ignored unless `index` is an unstable entry of that term: otherwise the entry was
    /// overwritten in the meantime and the newer one still has to be persisted.
    mutating func stableTo(index: UInt64, term: UInt64) {
        // Matching the snapshot (index < offset) leaves the entries alone.
        guard index >= offset, let t = maybeTerm(index), t == term else { return }
        let stable = Int(index + 1 - offset)
        if stable == entries.count {
            // The hot path: everything is stable. Let go of the buffer rather than empty it in
            // place: the Ready that carried these entries shares it, so keeping its capacity
            // would copy it. The next append starts (or adopts) a new one.
            entries = []
        } else {
            entries.removeSubrange(0..<stable)
        }
        offset = index + 1
        offsetInProgress = Swift.max(offsetInProgress, offset)
    }

    /// The application persisted the snapshot at index `i`.
    mutating func stableSnapTo(_ i: UInt64) {
        if snapshotIndex == i {
            snapshotBox = nil
            snapshotInProgress = false
        }
    }

    /// Replaces everything with the snapshot `s`: the log continues after it.
    mutating func restore(_ s: Snapshot) {
        offset = s.metadata.index + 1
        offsetInProgress = offset
        entries.removeAll()
        snapshotBox = SnapshotBox(s)
        snapshotInProgress = false
    }

    /// Appends `ents`, which must be contiguous and non-empty, replacing any unstable entries
    /// at or after `ents[0].index`.
    mutating func truncateAndAppend(_ ents: [Entry]) {
        if entries.isEmpty, let first = ents.first, first.index == offset {
            // Nothing unstable: adopt the caller's array instead of copying it (arrays are
            // shared until written). A leader's proposal then reaches Ready and the followers'
            // messages without one copy of its entries.
            entries = ents
            return
        }
        truncateAndAppend(ents[...])
    }

    mutating func truncateAndAppend(_ ents: ArraySlice<Entry>) {
        guard let after = ents.first?.index else { return }
        // Entries being written that are replaced: their replacements must be written too.
        if after < offsetInProgress { offsetInProgress = after }
        defer { offsetInProgress = Swift.max(offsetInProgress, offset) }
        if after == offset + UInt64(entries.count) {
            // Directly after the last entry: the common case.
            entries.append(contentsOf: ents)
        } else if after <= offset {
            // Everything unstable is replaced; the log now resumes at `after`
            // (the entries before it are in storage).
            offset = after
            entries = Array(ents)
        } else {
            // Keep the entries before `after`, replace the rest.
            precondition(
                after < offset + UInt64(entries.count),
                "unstable log: appending at \(after) would leave a gap after \(offset + UInt64(entries.count) - 1)")
            entries.removeSubrange(Int(after - offset)...)
            entries.append(contentsOf: ents)
        }
    }

    /// The entries in `[lo, hi)`, which must lie within the unstable entries.
    func slice(_ lo: UInt64, _ hi: UInt64) -> ArraySlice<Entry> {
        precondition(lo <= hi, "invalid unstable.slice \(lo) > \(hi)")
        let upper = offset + UInt64(entries.count)
        precondition(lo >= offset && hi <= upper, "unstable.slice[\(lo),\(hi)) out of bound [\(offset),\(upper)]")
        return entries[Int(lo - offset)..<Int(hi - offset)]
    }
}
