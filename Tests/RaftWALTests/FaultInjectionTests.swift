import Glibc
import Raft
import RaftTestKit
import RaftWAL
import Testing

/// Crashes and damage through `SimulatedFileSystem`. The rule every case checks: the WAL
/// either recovers to a prefix of what was written that contains every synced record, or it
/// refuses to start with an error naming the file and offset. Never a silent loss.
@Suite struct FaultInjectionTests {
    static let directory = "/data/wal"

    /// A WAL with `saves` synced saves, open for appending.
    func prepared(saves: Int, segmentSize: Int64, seed: UInt64 = 9) throws -> (SimulatedFileSystem, WAL, Workload) {
        let fs = SimulatedFileSystem()
        try fs.makeDirectory("/data")
        let wal = try WAL.create(directory: Self.directory, metadata: [7], fileSystem: fs, segmentSize: segmentSize)
        var workload = Workload(seed: seed, entrySize: 100)
        for _ in 0..<saves {
            let (state, batch) = workload.next()
            try wal.save(hardState: state, entries: batch)
        }
        return (fs, wal, workload)
    }

    func recover(_ fs: SimulatedFileSystem, segmentSize: Int64) throws -> (HardState, [Entry], WAL) {
        let wal = try WAL.open(directory: Self.directory, at: WALSnapshot(), fileSystem: fs, segmentSize: segmentSize)
        let (_, state, entries) = try wal.readAll()
        return (state, entries, wal)
    }

    /// The last save's write is torn at every byte offset (its fdatasync never returned):
    /// recovery keeps every synced entry, at most a prefix of the torn batch, and appends
    /// after the repair read back.
    @Test(arguments: [
        ("mid-segment", Int64(64 * 1024), ""),
        ("the save that cuts", Int64(1024), ""),
        ("the new segment's header", Int64(1024), "segment.wal.tmp"),
    ])
    func tornLastWriteAtEveryOffset(_ label: String, _ segmentSize: Int64, _ failingFile: String) throws {
        let (base, baseWAL, baseWorkload) = try prepared(saves: 12, segmentSize: segmentSize)
        _ = baseWAL
        var probeWorkload = baseWorkload
        let (finalState, finalBatch) = probeWorkload.next()
        let synced = baseWorkload.model

        let probe = base.clone()
        let probeWAL = try WAL.open(directory: Self.directory, at: WALSnapshot(), fileSystem: probe, segmentSize: segmentSize)
        _ = try probeWAL.readAll()
        probe.failNext(.fdatasync, pathContains: failingFile)
        #expect(throws: WALError.self) { try probeWAL.save(hardState: finalState, entries: finalBatch) }
        let size = probe.lastWriteSize
        #expect(size >= 64, "\(label): the torn write is the final batch or a segment header")

        for bytes in 0...size {
            let fs = probe.clone()
            fs.crash(.tearLastWrite(bytes: bytes))
            // What DiskStorage reads first, before it opens the WAL.
            _ = try WAL.validSnapshots(directory: Self.directory, fileSystem: fs)
            let (state, entries, wal) = try recover(fs, segmentSize: segmentSize)
            // Every synced entry, then at most a prefix of the unsynced batch.
            let firstNew = Int(finalBatch[0].index) - 1
            #expect(Array(entries.prefix(firstNew)) == Array(synced.entries.prefix(firstNew)), "\(label), \(bytes) bytes")
            let rest = Array(entries.dropFirst(firstNew))
            let keptOld = rest == Array(synced.entries.dropFirst(firstNew))
            let keptPrefixOfNew = rest.count <= finalBatch.count && rest == Array(finalBatch.prefix(rest.count))
            #expect(keptOld || keptPrefixOfNew, "\(label), \(bytes) bytes: \(rest.map(\.index))")
            #expect(state == synced.hardState || state == finalState, "\(label), \(bytes) bytes")
            // The repaired WAL takes new records, and they read back.
            var model = LogModel(entries: entries, hardState: state)
            let next = [entry(UInt64(entries.count) + 1, term: finalState.term)]
            let nextState = HardState(term: finalState.term, vote: 1, commit: state.commit)
            try wal.save(hardState: nextState, entries: next)
            model.save(nextState, next)
            try wal.close()
            let (state2, entries2, _) = try recover(fs, segmentSize: segmentSize)
            #expect(entries2 == model.entries && state2 == model.hardState, "\(label), \(bytes) bytes: after the repair")
        }
    }

    /// A save torn inside its first length field by a device that does not write whole
    /// sectors: the field's padding flag, in its top byte, never reached the disk, so the field
    /// does not parse. That is a torn tail, not damage: the node restarts from what was synced.
    /// (The node simulator found a node that could not restart from it.) A length field damaged
    /// in a complete record, with the record's bytes after it, is still refused.
    @Test func tearInsideALengthField() throws {
        let (base, _, workload) = try prepared(saves: 5, segmentSize: 64 * 1024)
        var padded = 0
        for size in 1...8 {
            let fs = base.clone()
            let wal = try WAL.open(directory: Self.directory, at: WALSnapshot(), fileSystem: fs, segmentSize: 64 * 1024)
            _ = try wal.readAll()
            fs.failNext(.fdatasync)
            let next = entry(workload.model.lastIndex + 1, term: workload.term, size: size)
            #expect(throws: WALError.self) { try wal.save(hardState: HardState(), entries: [next]) }
            // Where the unsynced record starts: the first byte a power failure loses.
            let segment = Self.directory + "/" + (try fs.listDirectory(Self.directory)).filter { $0.hasSuffix(".wal") }.sorted().last!
            let (lost, kept) = (fs.clone(), fs.clone())
            lost.crash(.dropUnsynced)
            kept.crash(.keepUnsynced)
            let before = lost.contents(segment)!, after = kept.contents(segment)!
            let start = before.indices.first { before[$0] != after[$0] }! / 8 * 8
            guard after[start + 7] != 0 else { continue }  // a record without padding
            padded += 1
            for bytes in 1..<8 {
                let torn = fs.clone()
                torn.crash(.tearLastWrite(bytes: bytes))
                #expect(try WAL.validSnapshots(directory: Self.directory, fileSystem: torn) == [WALSnapshot()], "\(size), \(bytes) bytes")
                let (state, entries, _) = try recover(torn, segmentSize: 64 * 1024)
                #expect(state == workload.model.hardState && entries == workload.model.entries, "\(size), \(bytes) bytes")
            }
            kept.flipBit(segment, at: start + 7, bit: 0)
            #expect(throws: WALError.self) { _ = try recover(kept, segmentSize: 64 * 1024) }
        }
        #expect(padded >= 6)
    }

    /// A power failure right after the last sync, or a process crash (everything written is
    /// in the page cache): both recover everything synced.
    @Test func crashModes() throws {
        for mode in [SimulatedFileSystem.CrashMode.dropUnsynced, .keepUnsynced] {
            let (fs, wal, workload) = try prepared(saves: 40, segmentSize: 2048)
            var more = workload
            let (state, batch) = more.next()
            fs.failNext(.fdatasync)
            #expect(throws: WALError.self) { try wal.save(hardState: state, entries: batch) }
            fs.crash(mode)
            let (recoveredState, entries, _) = try recover(fs, segmentSize: 2048)
            let expected = { if case .keepUnsynced = mode { more.model } else { workload.model } }()
            #expect(entries == expected.entries && recoveredState == expected.hardState)
        }
    }

    /// A zeroed sector in the unsynced tail: a torn write. Recovery keeps every synced record,
    /// or — when intact records follow the zeroed sector — refuses with the file and offset.
    @Test func zeroedSectorInTheTail() throws {
        let (base, _, workload) = try prepared(saves: 10, segmentSize: 64 * 1024)
        var more = workload
        let (state, batch) = more.next()
        let segment = Self.directory + "/0000000000000000-0000000000000000.wal"
        var reader = try WALReader(directory: Self.directory, fileSystem: base)
        while try reader.next() != nil {}
        let syncedEnd = Int(reader.end!.offset)

        let unsynced = base.clone()
        let wal = try WAL.open(directory: Self.directory, at: WALSnapshot(), fileSystem: unsynced, segmentSize: 64 * 1024)
        _ = try wal.readAll()
        unsynced.failNext(.fdatasync)
        #expect(throws: WALError.self) { try wal.save(hardState: state, entries: batch + entries(batch.last!.index + 1...batch.last!.index + 8, term: state.term, size: 200)) }
        let writtenEnd = syncedEnd + unsynced.lastWriteSize
        #expect(writtenEnd - syncedEnd > 2000)
        unsynced.crash(.keepUnsynced)

        // The write's tail lost from a sector boundary on (sectors reach the disk in order):
        // a plain torn write, always recovered.
        var sector = (syncedEnd + 511) / 512 * 512
        while sector < writtenEnd {
            let fs = unsynced.clone()
            var bytes = fs.contents(segment)!
            bytes.replaceSubrange(sector..<writtenEnd, with: [UInt8](repeating: 0, count: writtenEnd - sector))
            fs.setContents(segment, bytes)
            let (_, entries, _) = try recover(fs, segmentSize: 64 * 1024)
            #expect(Array(entries.prefix(workload.model.entries.count)) == workload.model.entries)
            #expect(entries.count <= more.model.entries.count + 8)
            sector += 512
        }
        // One sector of the write lost, the rest of it on disk (out of order): recovered when
        // nothing intact follows, refused (naming the file and offset) when records do.
        var refused = 0
        var recovered = 0
        sector = (syncedEnd + 511) / 512 * 512
        while sector + 512 <= writtenEnd {
            let fs = unsynced.clone()
            var bytes = fs.contents(segment)!
            bytes.replaceSubrange(sector..<sector + 512, with: [UInt8](repeating: 0, count: 512))
            fs.setContents(segment, bytes)
            do {
                let (_, entries, _) = try recover(fs, segmentSize: 64 * 1024)
                #expect(Array(entries.prefix(workload.model.entries.count)) == workload.model.entries)
                recovered += 1
            } catch let error as WALError {
                guard case .corrupt(let file, let offset, let reason) = error else {
                    Issue.record("unexpected \(error)")
                    break
                }
                #expect(file == "0000000000000000-0000000000000000.wal" && offset >= Int64(syncedEnd))
                #expect(reason.contains("intact records follow"))
                refused += 1
            }
            sector += 512
        }
        #expect(refused >= 1)
        _ = recovered
    }

    /// Bytes of an interrupted write after a zero length field (its first sector never
    /// landed): a torn tail. The repair zeroes them, so records appended later are not
    /// followed by stale bytes — even when the stale bytes start exactly where they end.
    @Test func staleBytesAfterTheTailAreZeroed() throws {
        let (base, wal, workload) = try prepared(saves: 6, segmentSize: 64 * 1024)
        try wal.close()
        var reader = try WALReader(directory: Self.directory, fileSystem: base)
        while try reader.next() != nil {}
        let end = Int(reader.end!.offset)
        var more = workload
        let (state, batch) = more.next()
        // How long the next save's write is, so the stale bytes can sit right behind it.
        let probe = base.clone()
        let probeWAL = try WAL.open(directory: Self.directory, at: WALSnapshot(), fileSystem: probe, segmentSize: 64 * 1024)
        _ = try probeWAL.readAll()
        try probeWAL.save(hardState: state, entries: batch)
        let length = probe.lastWriteSize

        let segment = Self.directory + "/0000000000000000-0000000000000000.wal"
        var bytes = base.contents(segment)!
        // A plausible-looking length field and garbage: what half of an old write leaves.
        let stale: [UInt8] = [0x20, 0, 0, 0, 0, 0, 0, 0x80] + [UInt8](repeating: 0xEE, count: 40)
        bytes.replaceSubrange(end + length..<end + length + stale.count, with: stale)
        base.setContents(segment, bytes)

        let (recoveredState, entries, reopened) = try recover(base, segmentSize: 64 * 1024)
        #expect(entries == workload.model.entries && recoveredState == workload.model.hardState)
        try reopened.save(hardState: state, entries: batch)
        try reopened.close()
        let (finalState, finalEntries, _) = try recover(base, segmentSize: 64 * 1024)
        #expect(finalEntries == more.model.entries && finalState == more.model.hardState)
    }

    /// One bit flipped in every record of every segment, at several places in each (length
    /// field, type, CRC field, payload, padding): the open refuses, naming the file and offset.
    @Test func bitFlipInEveryRecordIsRefused() throws {
        let fs = SimulatedFileSystem()
        try fs.makeDirectory("/data")
        let wal = try WAL.create(directory: Self.directory, metadata: Array("meta".utf8), fileSystem: fs, segmentSize: 1024)
        var workload = Workload(seed: 5, entrySize: 30)
        for _ in 0..<45 {
            let (state, batch) = workload.next()
            try wal.save(hardState: state, entries: batch)
        }
        // The last record: a HardState whose commit's last byte has several bits set.
        try wal.save(hardState: HardState(term: workload.term, vote: 1, commit: 0x77), entries: [])
        try wal.close()

        var reader = try WALReader(directory: Self.directory, fileSystem: fs)
        var records: [WALRecordInfo] = []
        while let record = try reader.next() { records.append(record) }
        #expect(Set(records.map(\.segment)).count >= 4)

        var cases = 0
        for record in records {
            let offset = Int(record.offset)
            var places = [offset, offset + 3, offset + 7, offset + 9, offset + 11, offset + 8 + record.length - 1]
            if record.length > 14 { places.append(offset + 8 + record.length / 2) }
            if record.padding > 0 { places.append(offset + 8 + record.length) }
            for place in places {
                for bit in [0, 3, 6] {
                    let damaged = fs.clone()
                    damaged.flipBit(Self.directory + "/" + record.segment, at: place, bit: bit)
                    cases += 1
                    do {
                        let (state, entries, _) = try recover(damaged, segmentSize: 1024)
                        Issue.record("accepted a bit flip at \(record.segment):\(place) bit \(bit) (\(record.type) record at \(offset)): \(entries.count) entries, \(state)")
                    } catch let error as WALError {
                        let text = error.description
                        #expect(text.contains(record.segment) || text.contains("snapshot record"), "\(text)")
                    }
                }
            }
        }
        #expect(cases > 1000)
    }

    /// A failed fdatasync makes the WAL unusable: no retry, every later call says why.
    @Test func failedSyncIsFatal() throws {
        let (fs, wal, workload) = try prepared(saves: 5, segmentSize: 64 * 1024)
        var more = workload
        let (state, batch) = more.next()
        fs.failNext(.fdatasync, errno: EIO)
        #expect(throws: WALError.io(operation: "fdatasync", path: Self.directory + "/0000000000000000-0000000000000000.wal", errno: EIO)) {
            try wal.save(hardState: state, entries: batch)
        }
        let syncsBefore = fs.count(.fdatasync)
        do {
            try wal.save(hardState: state, entries: batch)
            Issue.record("a save after a failed sync succeeded")
        } catch {
            guard case .unusable(let cause) = error, case .io(let operation, _, EIO) = cause else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(operation == "fdatasync")
            #expect(error.description.contains("EIO") && error.description.contains("restart"))
        }
        #expect(throws: WALError.self) { try wal.saveSnapshot(WALSnapshot(index: 1, term: 1)) }
        #expect(fs.count(.fdatasync) == syncsBefore, "no sync is retried")
        fs.crash(.dropUnsynced)
        let (recoveredState, entries, _) = try recover(fs, segmentSize: 64 * 1024)
        #expect(entries == workload.model.entries && recoveredState == workload.model.hardState)
    }

    /// A failed fdatasync, then a restart of the process (not of the machine): the page cache
    /// still holds the batch the sync did not confirm, so the restart reads it. What a restart
    /// reads it acts on (a follower acknowledges entries it finds in its log without writing
    /// them again), so it must be durable once the WAL is open: a power loss at once keeps it.
    /// Before the WAL synced the tail it opened, the node simulator's seed 1575 lost entries a
    /// follower had acknowledged so, with the commit index that covered them, and the follower
    /// never caught up again.
    @Test func whatARestartReadsAfterAFailedSyncIsDurable() throws {
        let segmentSize: Int64 = 64 * 1024
        let (fs, wal, workload) = try prepared(saves: 3, segmentSize: segmentSize)
        var more = workload
        let (failedState, failedBatch) = more.next()
        fs.failNext(.fdatasync)
        #expect(throws: WALError.self) { try wal.save(hardState: failedState, entries: failedBatch) }
        // The process stops and starts again: what was written is still in the files, and
        // still not durable (a crash of the simulated disk would make it so).
        try? wal.close()
        let (readState, readEntries, reopened) = try recover(fs, segmentSize: segmentSize)
        #expect(readState == more.model.hardState && readEntries == more.model.entries)
        // Power lost at once: what the restart read is kept.
        let atOnce = fs.clone()
        atOnce.crash(.dropUnsynced)
        let (stateAtOnce, entriesAtOnce, _) = try recover(atOnce, segmentSize: segmentSize)
        #expect(stateAtOnce == readState && entriesAtOnce == readEntries, "power lost at once")
        // The restarted node goes on: one more batch, written and synced, then power lost.
        let (state, batch) = more.next()
        try reopened.save(hardState: state, entries: batch)
        fs.crash(.dropUnsynced)
        let (afterPowerLoss, entries, _) = try recover(fs, segmentSize: segmentSize)
        #expect(afterPowerLoss == more.model.hardState && entries == more.model.entries)
    }

    /// A failed rename or directory fsync while cutting a segment: the save fails, the WAL is
    /// unusable, and after a crash everything synced is there.
    @Test(arguments: [SimulatedFileSystem.Operation.rename, .syncDirectory, .truncate, .preallocate, .write])
    func failureDuringCut(_ operation: SimulatedFileSystem.Operation) throws {
        let segmentSize: Int64 = 1024
        let (fs, wal, workload) = try prepared(saves: 2, segmentSize: segmentSize)
        var model = workload
        // Save until the next save cuts, then fail that cut.
        var saves = 0
        var failedAt: (HardState, [Entry])?
        while failedAt == nil && saves < 100 {
            let segmentsBefore = try wal.segmentNames().count
            let (state, batch) = model.next()
            if try willCut(fs) {
                fs.failNext(operation, skip: operation == .write ? 1 : 0)  // write: the new header, not the batch
                #expect(throws: WALError.self) { try wal.save(hardState: state, entries: batch) }
                failedAt = (state, batch)
            } else {
                try wal.save(hardState: state, entries: batch)
                #expect(try wal.segmentNames().count == segmentsBefore)
            }
            saves += 1
        }
        #expect(failedAt != nil)
        #expect(throws: WALError.self) { try wal.save(hardState: HardState(term: 9), entries: []) }
        fs.crash(.dropUnsynced)
        let (state, entries, reopened) = try recover(fs, segmentSize: segmentSize)
        // The failed save may or may not be there (it was synced into the old segment before
        // the cut failed); everything before it is.
        let acknowledged = Array(model.model.entries.prefix(Int(failedAt!.1[0].index) - 1))
        #expect(Array(entries.prefix(acknowledged.count)) == acknowledged)
        #expect(entries.count == acknowledged.count || entries == model.model.entries)
        // And the reopened WAL goes on, cutting segments.
        model.model = LogModel(entries: entries, hardState: state)
        let segmentsBefore = try reopened.segmentNames().count
        for _ in 0..<20 {
            let (s, b) = model.next()
            try reopened.save(hardState: s, entries: b)
        }
        #expect(try reopened.segmentNames().count > segmentsBefore)
        try reopened.close()
        let (_, finalEntries, _) = try recover(fs, segmentSize: segmentSize)
        #expect(finalEntries == model.model.entries)
    }

    /// Whether the next save cuts: the tail's synced size has reached the segment size.
    func willCut(_ fs: SimulatedFileSystem) throws -> Bool {
        var reader = try WALReader(directory: Self.directory, fileSystem: fs.clone())
        while try reader.next() != nil {}
        return reader.end!.offset >= 1024
    }

    /// A crash in the middle of `create` leaves no WAL (or a whole one); a second create works.
    @Test func interruptedCreate() throws {
        for operation in [SimulatedFileSystem.Operation.rename, .fdatasync, .syncDirectory, .write] {
            let fs = SimulatedFileSystem()
            try fs.makeDirectory("/data")
            fs.failNext(operation)
            #expect(throws: WALError.self) { try WAL.create(directory: Self.directory, metadata: [1], fileSystem: fs) }
            fs.crash(.dropUnsynced)
            #expect(!WAL.exists(directory: Self.directory, fileSystem: fs) || operation == .syncDirectory)
            if !WAL.exists(directory: Self.directory, fileSystem: fs) {
                let wal = try WAL.create(directory: Self.directory, metadata: [1], fileSystem: fs, segmentSize: 4096)
                try wal.save(hardState: HardState(term: 1), entries: [entry(1)])
                try wal.close()
            }
            let (_, entries, _) = try recover(fs, segmentSize: 4096)
            #expect(entries.count <= 1)
        }
    }
}
