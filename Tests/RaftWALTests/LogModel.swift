import Raft
import RaftWAL

/// What a WAL read from the beginning must return: the entries as raft would hold them after
/// every save, and the last HardState.
struct LogModel {
    var entries: [Entry] = []
    var hardState = HardState()

    var lastIndex: UInt64 { entries.last?.index ?? 0 }
    var lastTerm: UInt64 { entries.last?.term ?? 0 }

    mutating func save(_ state: HardState, _ batch: [Entry]) {
        if let first = batch.first {
            entries.removeSubrange(Int(first.index - 1)...)
            entries.append(contentsOf: batch)
        }
        if !state.isEmpty { hardState = state }
    }

    func after(_ index: UInt64) -> [Entry] { Array(entries.dropFirst(Int(index))) }
}

/// A deterministic workload: batches of appends, now and then a new term overwriting the tail,
/// and the HardState that goes with them.
struct Workload {
    var random: SplitMix64
    var model = LogModel()
    var term: UInt64 = 1
    var entrySize: Int

    init(seed: UInt64, entrySize: Int = 40) {
        random = SplitMix64(seed: seed)
        self.entrySize = entrySize
    }

    /// The next save: (hardState, entries), also applied to the model.
    mutating func next() -> (HardState, [Entry]) {
        var first = model.lastIndex + 1
        if model.lastIndex > 3 && random.next() % 8 == 0 {
            // A new leader overwrites the last few entries.
            term += 1
            first = model.lastIndex - random.next() % 3
        }
        let count = Int(random.next() % 4) + 1
        let batch = (0..<UInt64(count)).map { entry(first + $0, term: term, size: entrySize) }
        let last = first + UInt64(count) - 1
        let state = HardState(term: term, vote: 1, commit: max(model.hardState.commit, last > 2 ? last - 2 : 0))
        model.save(state, batch)
        return (state, batch)
    }
}
