/// The Ready/advance handshake with the application (etcd's rawnode.go). It lives on the value
/// type so that a driver touches its state with one access per call.
extension RaftCore {
    /// Whether there is anything to persist, send or apply. A `mutating get` only so that a
    /// driver holding the core in a class property reads it in place instead of copying it.
    var hasReady: Bool {
        mutating get {
        if !messages.isEmpty { return true }
        if !log.unstable.entries.isEmpty || log.hasNextCommittedEntries { return true }
        if softState != reportedSoftState { return true }
        let hs = hardState
        if !hs.isEmpty && hs != reportedHardState { return true }
        if log.hasPendingSnapshot { return true }
        return !readStates.isEmpty
        }
    }

    /// Collects what the application must do next and takes it off the node's hands.
    mutating func makeReady() -> Ready {
        // Built from locals in one initializer: mutating a `Ready` variable field by field made
        // the compiler copy the whole struct around.
        let entries = log.unstableEntries
        let committed = log.nextCommittedEntries(reusing: entries)
        // Hand the buffer over: the Ready owns it now (keeping capacity would copy it).
        let outgoing = messages
        messages = []
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
        let mustSync = !entries.isEmpty || hard.term != reportedHardState.term || hard.vote != reportedHardState.vote
        if changedHard != nil { reportedHardState = hard }
        var reads: [ReadState] = []
        if !readStates.isEmpty {
            reads = readStates
            readStates = []
        }
        return Ready(
            softState: changedSoft, hardState: changedHard, readStates: reads, entries: entries,
            snapshot: log.unstable.snapshot, committedEntries: committed, messages: outgoing, mustSync: mustSync)
    }

    /// The application persisted, sent and applied what `ready` held.
    mutating func advance(_ ready: borrowing Ready) {
        advance(
            committedEntries: ready.committedEntries,
            stable: ready.entries.last.map { ($0.index, $0.term) },
            snapshotIndex: ready.snapshot.map { $0.metadata.index })
    }
}
