import Raft
import RaftTestKit
import RaftWAL
import Testing

@Suite struct DiskStorageTests {
    static let options = DiskStorageOptions(segmentSize: 4096, snapshotsToKeep: 2, segmentsToKeep: 1)

    func open(_ fs: SimulatedFileSystem) throws -> DiskStorage {
        try DiskStorage(directory: "/node", metadata: Array("node-1".utf8), options: Self.options, fileSystem: fs)
    }

    @Test func restartRecoversEverything() throws {
        let fs = SimulatedFileSystem()
        let storage = try open(fs)
        #expect(storage.isNew)
        try storage.append(hardState: HardState(term: 1, vote: 1, commit: 0), entries: entries(1...10))
        try storage.append(hardState: HardState(term: 1, vote: 1, commit: 8), entries: [])
        let confState = ConfState(voters: [1, 2, 3], learners: [4])
        let snapshot = try storage.createSnapshot(index: 8, confState: confState, data: Array("state@8".utf8))
        try storage.compact(8)
        try storage.append(hardState: HardState(term: 2, vote: 2, commit: 10), entries: entries(11...12, term: 2))
        // Not closed: a power failure right after the last sync.
        fs.crash(.dropUnsynced)

        let recovered = try open(fs)
        #expect(!recovered.isNew)
        #expect(recovered.metadata == Array("node-1".utf8))
        let (hardState, recoveredConf) = try recovered.initialState()
        #expect(hardState == HardState(term: 2, vote: 2, commit: 10))
        #expect(recoveredConf == confState)
        #expect(try recovered.snapshot() == snapshot)
        #expect(try recovered.firstIndex() == 9 && recovered.lastIndex() == 12)
        #expect(try recovered.term(8) == 1 && recovered.term(12) == 2)
        #expect(try recovered.entries(9, 13, maxSize: .max) == entries(9...10) + entries(11...12, term: 2))
        #expect(throws: RaftError.compacted) { try recovered.entries(8, 10, maxSize: .max) }
    }

    @Test func snapshotsCompactionAndPurge() throws {
        let fs = SimulatedFileSystem()
        let storage = try open(fs)
        var last: UInt64 = 0
        var snapshots: [Snapshot] = []
        for round in 1...12 {
            let batch = entries(last + 1...last + 20, size: 60)
            last += 20
            try storage.append(hardState: HardState(term: 1, vote: 1, commit: last), entries: batch)
            if round % 3 == 0 {
                snapshots.append(try storage.createSnapshot(index: last - 5, confState: ConfState(voters: [1]), data: [UInt8(round)]))
                try storage.compact(last - 10)
            }
        }
        let snapFiles = fs.names(in: "/node/snap")
        #expect(snapFiles.count == 2, "\(snapFiles)")
        #expect(snapFiles == snapshots.suffix(2).map { SnapshotFiles.fileName(term: $0.metadata.term, index: $0.metadata.index) }.sorted())
        // Segments the oldest kept snapshot does not need are gone.
        let segments = fs.names(in: "/node/wal").compactMap(SegmentName.init)
        #expect(segments.first!.sequence > 0)
        #expect(segments.first!.index <= snapshots[snapshots.count - 2].metadata.index)

        try storage.close()
        let recovered = try open(fs)
        #expect(try recovered.snapshot() == snapshots.last!)
        #expect(try recovered.lastIndex() == last)
        #expect(try recovered.entries(recovered.firstIndex(), last + 1, maxSize: .max).first?.index == snapshots.last!.metadata.index + 1)

        // The newest snapshot file damaged: renamed .broken, the older one and its entries used.
        try recovered.close()
        let newest = "/node/snap/" + snapFiles.last!
        fs.flipBit(newest, at: 12, bit: 2)
        let fallback = try open(fs)
        #expect(try fallback.snapshot() == snapshots[snapshots.count - 2])
        #expect(try fallback.lastIndex() == last)
        #expect(fs.names(in: "/node/snap").contains(snapFiles.last! + ".broken"))
    }

    /// The two-step snapshot (`writeSnapshotFile` beside WAL writes, then `recordSnapshot`):
    /// recovered like `createSnapshot`'s; a file whose record was never written is ignored.
    @Test func twoStepSnapshot() throws {
        let fs = SimulatedFileSystem()
        let storage = try open(fs)
        try storage.append(hardState: HardState(term: 1, vote: 1, commit: 10), entries: entries(1...10))
        let file = try #require(try storage.writeSnapshotFile(index: 6, confState: ConfState(voters: [1]), data: [6]))
        #expect(file.metadata.index == 6 && file.metadata.term == 1)
        // WAL writes go on between the two steps.
        try storage.append(hardState: HardState(term: 1, vote: 1, commit: 12), entries: entries(11...12))
        #expect(try storage.snapshot().isEmpty, "not the storage's snapshot before its record")
        #expect(try storage.recordSnapshot(file))
        try storage.compact(6)
        #expect(try storage.snapshot() == file)

        // A second file written, then a crash before its record: recovery uses the first.
        let unrecorded = try #require(try storage.writeSnapshotFile(index: 10, confState: ConfState(voters: [1]), data: [10]))
        #expect(fs.names(in: "/node/snap").contains(SnapshotFiles.fileName(term: 1, index: 10)))
        fs.crash(.dropUnsynced)
        let recovered = try open(fs)
        #expect(try recovered.snapshot() == file)
        #expect(try recovered.entries(7, 13, maxSize: .max) == entries(7...12))
        // Recording it late still works: the file is there.
        #expect(try recovered.recordSnapshot(unrecorded))
        #expect(try recovered.snapshot() == unrecorded)
    }

    /// A snapshot of our own made stale by the leader's, saved while it was being written:
    /// nothing is written or recorded, and the leader's stays.
    @Test func twoStepSnapshotOvertakenByTheLeaders() throws {
        let fs = SimulatedFileSystem()
        let storage = try open(fs)
        try storage.append(hardState: HardState(term: 1, vote: 1, commit: 8), entries: entries(1...8))
        let ours = try #require(try storage.writeSnapshotFile(index: 8, confState: ConfState(voters: [1, 2]), data: [8]))
        let leaders = Snapshot(data: [50], metadata: SnapshotMetadata(confState: ConfState(voters: [1, 2]), index: 50, term: 2))
        try storage.save(Ready(hardState: HardState(term: 2, vote: 0, commit: 50), snapshot: leaders, mustSync: true))
        #expect(try storage.recordSnapshot(ours) == false)
        #expect(try storage.snapshot() == leaders)
        #expect(try storage.writeSnapshotFile(index: 30, confState: ConfState(voters: [1, 2]), data: [30]) == nil)
        fs.crash(.dropUnsynced)
        #expect(try open(fs).snapshot() == leaders)
    }

    /// A follower far behind receives the leader's snapshot in a Ready, with entries after it.
    @Test func followerReceivesSnapshot() throws {
        let fs = SimulatedFileSystem()
        let storage = try open(fs)
        try storage.append(hardState: HardState(term: 1, vote: 1, commit: 3), entries: entries(1...5))
        let snapshot = Snapshot(data: Array("leader state".utf8),
                                metadata: SnapshotMetadata(confState: ConfState(voters: [1, 2, 3]), index: 50, term: 3))
        try storage.save(Ready(hardState: HardState(term: 3, vote: 0, commit: 50), entries: entries(51...52, term: 3),
                               snapshot: snapshot, mustSync: true))
        #expect(try storage.firstIndex() == 51 && storage.lastIndex() == 52)
        #expect(throws: RaftError.snapshotOutOfDate) { try storage.saveSnapshot(snapshot) }
        fs.crash(.dropUnsynced)
        let recovered = try open(fs)
        #expect(try recovered.snapshot() == snapshot)
        #expect(try recovered.initialState().0 == HardState(term: 3, vote: 0, commit: 50))
        #expect(try recovered.entries(51, 53, maxSize: .max) == entries(51...52, term: 3))
    }

    /// etcd issue #10219: a follower installs a leader's snapshot in the term it already knew,
    /// so the Ready's HardState (commit = the snapshot's index) needs no fdatasync by etcd's
    /// MustSync rule. The save must still sync it before it returns (before the snapshot's index
    /// is acknowledged) and before older snapshots and segments are purged: recovery only
    /// trusts snapshot records at or below the recovered commit, so after a power loss that
    /// dropped the HardState the node would fall back to a snapshot the purge had removed.
    @Test func leadersSnapshotInTheSameTermSurvivesPowerLoss() throws {
        let fs = SimulatedFileSystem()
        let options = DiskStorageOptions(segmentSize: 2048, snapshotsToKeep: 1, segmentsToKeep: 1)
        func open() throws -> DiskStorage {
            try DiskStorage(directory: "/node", metadata: [1], options: options, fileSystem: fs)
        }
        let storage = try open()
        var last: UInt64 = 0
        for _ in 1...6 {
            try storage.append(hardState: HardState(term: 2, vote: 1, commit: last + 20), entries: entries(last + 1...last + 20, term: 2, size: 60))
            last += 20
            try storage.createSnapshot(index: last - 5, confState: ConfState(voters: [1, 2, 3]), data: [UInt8(last)])
            try storage.compact(last - 10)
        }
        let leaders = Snapshot(data: Array("leader state".utf8),
                               metadata: SnapshotMetadata(confState: ConfState(voters: [1, 2, 3]), index: 500, term: 2))
        try storage.save(Ready(hardState: HardState(term: 2, vote: 1, commit: 500), snapshot: leaders))
        // save returned: the snapshot may be acknowledged now. Then the power goes.
        fs.crash(.dropUnsynced)
        let recovered = try open()
        #expect(try recovered.snapshot() == leaders)
        #expect(try recovered.initialState().0 == HardState(term: 2, vote: 1, commit: 500))
        #expect(try recovered.firstIndex() == 501 && recovered.lastIndex() == 500)
    }

    /// A one-node RawNode driven through DiskStorage in the documented order; after a crash,
    /// a new RawNode on the recovered storage has every acknowledged proposal.
    @Test func rawNodeRestartsFromDisk() throws {
        let fs = SimulatedFileSystem()
        var applied: [[UInt8]] = []
        var confState = ConfState()

        /// One Ready through the documented order; returns the normal entries applied.
        func handle(_ node: RawNode, _ storage: DiskStorage) throws -> [[UInt8]] {
            let ready = node.ready()
            try storage.save(ready)
            var data: [[UInt8]] = []
            for entry in ready.committedEntries {
                switch entry.type {
                case .confChange: confState = node.applyConfChange(try ConfChange(serializedBytes: entry.data))
                case .normal where !entry.data.isEmpty: data.append(entry.data)
                default: break
                }
            }
            node.advance(ready)
            return data
        }

        do {
            let storage = try open(fs)
            let node = try RawNode(config: Config(id: 1, storage: storage))
            try node.bootstrap([Peer(id: 1)])
            while node.hasReady { applied += try handle(node, storage) }
            try node.campaign()
            while node.hasReady { applied += try handle(node, storage) }
            #expect(node.status.raftState == .leader)
            for i in 0..<55 {
                try node.propose(Array("p\(i)".utf8))
                while node.hasReady { applied += try handle(node, storage) }
                if i % 10 == 9 {
                    let index = node.status.applied
                    try storage.createSnapshot(index: index, confState: confState, data: Array("\(applied.count)".utf8))
                    try storage.compact(index - 2)
                }
            }
            #expect(applied.count == 55)
        }
        fs.crash(.dropUnsynced)

        let storage = try open(fs)
        let (hardState, recoveredConf) = try storage.initialState()
        #expect(recoveredConf.voters == [1])
        #expect(hardState.commit == (try storage.lastIndex()))
        let snapshot = try storage.snapshot()
        let restored = try #require(Int(String(decoding: snapshot.data, as: UTF8.self)))
        var config = Config(id: 1, storage: storage)
        config.applied = snapshot.metadata.index
        let node = try RawNode(config: config)
        // The entries after the snapshot come back as committed: the state machine catches up.
        var replayed: [[UInt8]] = []
        while node.hasReady { replayed += try handle(node, storage) }
        #expect(restored == 50 && replayed.count == 5)
        #expect(Array(applied.dropFirst(restored)) == replayed)
        try node.campaign()
        while node.hasReady { _ = try handle(node, storage) }
        #expect(node.status.raftState == .leader)
        try node.propose(Array("after restart".utf8))
        var more: [[UInt8]] = []
        while node.hasReady { more += try handle(node, storage) }
        #expect(more == [Array("after restart".utf8)])
    }
}
