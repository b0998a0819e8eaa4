import Raft

extension WAL {
    /// Closes the full segment and continues in a new one, named for the next sequence and the
    /// next entry index. The old segment is truncated to its records and synced first; the new
    /// one (the prepared file) gets its header — the running CRC, the metadata, the last
    /// HardState — and is synced before it is renamed into place, so a segment that exists
    /// under a `.wal` name is always complete up to its header.
    func cut(_ old: Tail) throws(WALError) {
        try fileSystem.truncate(old.file, to: old.offset)
        try fileSystem.fdatasync(old.file)

        let name = SegmentName(sequence: old.name.sequence + 1, index: lastIndex + 1)
        let file: WALFileHandle
        if let prepared {
            file = prepared
            self.prepared = nil
        } else {
            file = try createPrepared()
        }
        buffer.removeAll(keepingCapacity: true)
        encodeCRCRecord()
        encode(.metadata, metadata)
        if !hardState.isEmpty { encode(.state, hardState.serializedBytes()) }
        do {
            try fileSystem.write(file, buffer, at: 0)
            try fileSystem.fdatasync(file)
            let path = joinPath(directory, name.description)
            try fileSystem.rename(joinPath(directory, Self.preparedName), to: path)
            try fileSystem.syncDirectory(directory)
            fileSystem.close(old.file)
            phase = .appending(Tail(
                file: WALFileHandle(descriptor: file.descriptor, path: path), name: name,
                offset: Int64(buffer.count), syncedOffset: Int64(buffer.count)))
        } catch {
            fileSystem.close(file)
            throw error
        }
        logger.debug("WAL: cut a new segment", metadata: ["segment": "\(name)"])
        try prepareNextSegment()
    }

    /// Creates and preallocates the next segment under a temporary name, so that a cut does
    /// not wait for the allocation (etcd's file pipeline does this on a goroutine; here it is
    /// done right after a cut, off the path of the save that will need it).
    func prepareNextSegment() throws(WALError) {
        if prepared == nil { prepared = try createPrepared() }
    }

    private func createPrepared() throws(WALError) -> WALFileHandle {
        let path = joinPath(directory, Self.preparedName)
        // A leftover from before a crash is replaced: it was never renamed, so never used.
        let file = try fileSystem.open(path, .createOrTruncate)
        do {
            try fileSystem.preallocate(file, size: segmentSize)
            try fileSystem.syncDirectory(directory)
        } catch {
            fileSystem.close(file)
            throw error
        }
        return file
    }

    /// Removes the oldest segments that hold nothing after `snapshotIndex`, keeping at least
    /// `keep` segments. A segment can go only if the next one starts at or before the
    /// snapshot's index (then all its entries are in the snapshot, and the WAL is still read
    /// from the next one); the segment being written never goes. Returns the removed names.
    @discardableResult
    public func purgeSegments(snapshotIndex: UInt64, keep: Int) throws(WALError) -> [SegmentName] {
        let segments = try listSegments(directory, fileSystem)
        var removed: [SegmentName] = []
        var remaining = segments.count
        for i in segments.indices.dropLast() {
            guard remaining > keep, segments[i + 1].index <= snapshotIndex else { break }
            try fileSystem.remove(joinPath(directory, segments[i].description))
            removed.append(segments[i])
            remaining -= 1
        }
        if !removed.isEmpty { try fileSystem.syncDirectory(directory) }
        return removed
    }

    /// The snapshots the WAL recorded whose index is at most the last HardState's commit:
    /// the ones a node can restart from (a snapshot file newer than these was saved but its
    /// WAL record was not, or it is beyond what this node knew to be committed). etcd's
    /// `ValidSnapshotEntries`. Reads every segment; a torn tail is tolerated, not repaired.
    public static func validSnapshots(directory: String, fileSystem: any WALFileSystem = POSIXFileSystem()) throws(WALError) -> [WALSnapshot] {
        var reader = try WALReader(directory: directory, fileSystem: fileSystem)
        var snapshots: [WALSnapshot] = []
        var state = HardState()
        while let record = try reader.next() {
            switch record.payload {
            case .snapshot(let snapshot): snapshots.append(snapshot)
            case .state(let hardState): state = hardState
            default: break
            }
        }
        return snapshots.filter { $0.index <= state.commit }
    }
}
