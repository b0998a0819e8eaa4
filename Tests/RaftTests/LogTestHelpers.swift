@testable import Raft

// Helpers shared by the log tests (MemoryStorage, UnstableLog, RaftLog).

/// An entry with just an index and a term, as etcd's tests write `{Index: i, Term: t}`.
func ent(_ index: UInt64, _ term: UInt64) -> Entry {
    Entry(term: term, index: index)
}

/// A snapshot with just metadata.
func snap(_ index: UInt64, _ term: UInt64 = 0, confState: ConfState = ConfState(), data: [UInt8] = []) -> Snapshot {
    Snapshot(data: data, metadata: SnapshotMetadata(confState: confState, index: index, term: term))
}

/// The result of a throwing call, for table tests that expect either a value or an error.
func outcome<T>(_ body: () throws(RaftError) -> T) -> Result<T, RaftError> {
    do throws(RaftError) { return .success(try body()) } catch { return .failure(error) }
}

extension MemoryStorage {
    /// The raw entry array, dummy included.
    var rawEntries: [Entry] {
        // Term, entries and lastIndex through the public API: the dummy, then every entry.
        let first = try! firstIndex()
        let last = try! lastIndex()
        let dummy = Entry(term: try! term(first - 1), index: first - 1)
        return [dummy] + (last >= first ? try! entries(first, last + 1, maxSize: .max) : [])
    }
}

extension Result {
    /// The error, or nil on success.
    var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
