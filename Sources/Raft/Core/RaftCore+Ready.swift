/// The Ready/advance handshake with the application (etcd's rawnode.go). It lives on the value
/// type so that a driver touches its state with one access per call.
extension RaftCore {
    /// Whether there is anything to persist, send or apply. A `mutating get` only so that a
    /// driver holding the core in a class property reads it in place instead of copying it.
    var hasReady: Bool {
        mutating get {
        if !messages.isEmpty { return true }
        if asyncStorageWrites {
            if !messagesAfterPersist.isEmpty || log.unstable.hasNotInProgress || log.hasNextPersistedCommittedEntries {
                return true
            }
        } else if !log.unstable.entries.isEmpty || log.hasNextCommittedEntries {
            return true
        }
        if softState != reportedSoftState { return true }
        let hs = hardState
        if !hs.isEmpty && hs != reportedHardState { return true }
        if log.hasPendingSnapshot && !(asyncStorageWrites && log.unstable.snapshotInProgress) { return true }
        return !readStates.isEmpty
        }
    }

    /// Collects what the application must do next and takes it off the node's hands.
    mutating func makeReady() -> Ready {
        asyncStorageWrites ? makeAsyncReady() : makeSyncReady()
    }

    /// The Ready of etcd 3.4's handshake: everything at once, taken back by `advance`.
    private mutating func makeSyncReady() -> Ready {
        // Built from locals with the memberwise initializer (see Ready.swift): mutating a
        // `Ready` variable field by field made the compiler copy the whole struct around.
        let entries = log.unstableEntries
        let committed = log.nextCommittedEntries(reusing: entries)
        // Hand the buffer over: the Ready owns it now (keeping capacity would copy it).
        let outgoing = messages
        messages = []
        let (changedSoft, changedHard, mustSync, reads) = takeStateChanges(withEntries: !entries.isEmpty)
        return Ready(
            softState: changedSoft, hardState: changedHard, readStates: reads, entries: entries,
            snapshot: log.unstable.snapshot, committedEntries: committed, messages: outgoing, mustSync: mustSync,
            number: 0, messagesAfterPersist: [])
    }

    /// The soft and hard state changed since the last Ready (now reported), whether the Ready
    /// must sync, and the read states to hand out.
    @inline(__always)
    private mutating func takeStateChanges(withEntries: Bool)
        -> (soft: SoftState?, hard: HardState?, mustSync: Bool, reads: [ReadState])
    {
        let soft = softState
        var changedSoft: SoftState?
        if soft != reportedSoftState {
            changedSoft = soft
            reportedSoftState = soft
        }
        let hard = hardState
        let changedHard: HardState? = hard != reportedHardState ? hard : nil
        // Sync when something that must survive a crash changed: entries, term or vote.
        // The commit index alone can be recovered from the cluster.
        let mustSync = withEntries || hard.term != reportedHardState.term || hard.vote != reportedHardState.vote
        if changedHard != nil { reportedHardState = hard }
        var reads: [ReadState] = []
        if !readStates.isEmpty {
            reads = readStates
            readStates = []
        }
        return (changedSoft, changedHard, mustSync, reads)
    }

    /// The application persisted, sent and applied what `ready` held.
    mutating func advance(_ ready: borrowing Ready) {
        precondition(!asyncStorageWrites, "with asyncStorageWrites, report writes with onPersistReady and applying with advanceApply")
        advance(
            committedEntries: ready.committedEntries,
            stable: ready.entries.last.map { ($0.index, $0.term) },
            snapshotIndex: ready.snapshot.map { $0.metadata.index })
    }
}

/// Asynchronous storage writes (`Config.asyncStorageWrites`): raft-rs's numbered Readies. A
/// Ready hands its entries, HardState and snapshot out at once (they are "in progress"), so the
/// next Ready carries only what came after; the application reports each one durable by its
/// number, in order.
extension RaftCore {
    /// What one handed-out Ready asked to write.
    struct WriteInProgress {
        let number: UInt64
        /// Its last entry, to mark the log stable up to.
        let lastEntry: (index: UInt64, term: UInt64)?
        let snapshotIndex: UInt64?
    }

    mutating func makeAsyncReady() -> Ready {
        let entries = Array(log.unstable.entriesNotInProgress)
        let snapshot = log.unstable.snapshotInProgress ? nil : log.unstable.snapshot
        let committed = log.nextPersistedCommittedEntries()
        let outgoing = messages
        messages = []
        let afterPersist = messagesAfterPersist
        messagesAfterPersist = []
        let (changedSoft, changedHard, mustSync, reads) = takeStateChanges(withEntries: !entries.isEmpty)
        // Hand everything out: writes are in progress, committed entries (or the snapshot) are
        // being applied.
        log.unstable.acceptInProgress()
        if let last = committed.last {
            log.applying = Swift.max(log.applying, last.index)
            reduceUncommittedSize(committed)
        }
        if let snapshot { log.applying = Swift.max(log.applying, snapshot.metadata.index) }
        let number = nextReadyNumber
        nextReadyNumber += 1
        if !entries.isEmpty || snapshot != nil {
            writesInProgress.append(WriteInProgress(
                number: number, lastEntry: entries.last.map { ($0.index, $0.term) },
                snapshotIndex: snapshot?.metadata.index))
        }
        return Ready(
            softState: changedSoft, hardState: changedHard, readStates: reads, entries: entries,
            snapshot: snapshot, committedEntries: committed, messages: outgoing, mustSync: mustSync,
            number: number, messagesAfterPersist: afterPersist)
    }

    /// The writes of every Ready up to `number` are durable: the log is stable up to them, and
    /// a leader counts its own copy (which may commit, and is then broadcast).
    mutating func persisted(through number: UInt64) {
        precondition(asyncStorageWrites, "onPersistReady is for asyncStorageWrites; call advance instead")
        precondition(number < nextReadyNumber, "onPersistReady(\(number)): no such Ready was handed out")
        var lastEntry: (index: UInt64, term: UInt64)?
        var snapshotIndex: UInt64?
        var done = 0
        for write in writesInProgress {
            guard write.number <= number else { break }
            if let entry = write.lastEntry { lastEntry = entry }
            if let index = write.snapshotIndex {
                snapshotIndex = index
                lastEntry = nil  // entries before the snapshot were replaced by it
            }
            done += 1
        }
        guard done > 0 else { return }
        writesInProgress.removeFirst(done)
        if let snapshotIndex { log.stableSnapTo(snapshotIndex) }
        if let lastEntry { log.stableTo(index: lastEntry.index, term: lastEntry.term) }
        guard state == .leader, let i = tracker.progress.index(of: id) else { return }
        if tracker.progress[position: i].maybeUpdate(Swift.min(log.persistedIndex, log.lastIndex)) && maybeCommit() {
            broadcastAppend()
        }
    }

    /// The application applied up to `index` (committed entries, or a snapshot, handed out).
    mutating func advanceApply(to index: UInt64) {
        precondition(asyncStorageWrites, "advanceApply is for asyncStorageWrites; call advance instead")
        guard index > log.applied else { return }
        precondition(index <= log.applying, "advanceApply(to: \(index)): only \(log.applying) was handed out to apply")
        appliedTo(index)
    }
}
