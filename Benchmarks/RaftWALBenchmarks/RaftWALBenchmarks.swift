import Benchmark
import Glibc
import Raft
import RaftWAL

/// The WAL on this machine's disk: one `save` per scaled iteration — a batch of B entries of
/// S bytes and a HardState, encoded into one write, then one fdatasync (group commit) — with
/// 64 MiB preallocated segments, cuts included. The `throughput` figure is batches per second;
/// entries/s = batches/s × B, MB/s = entries/s × S.
///
/// `Disk/fdatasync/8B` is the reference: write 8 bytes into a preallocated file, fdatasync, in
/// a loop. No WAL can commit batches faster than that.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 10,
        scalingFactor: .one,
        maxDuration: .seconds(4),
        maxIterations: 20_000
    )

    Benchmark("Disk/fdatasync/8B") { benchmark in
        let directory = temporaryDirectory()
        defer { removeTree(directory) }
        let fs = POSIXFileSystem()
        let file = try fs.open(directory + "/sync-probe", .createNew)
        defer { fs.close(file) }
        try fs.preallocate(file, size: 64 * 1024 * 1024)
        try fs.fsync(file)
        let bytes = [UInt8](repeating: 0xAB, count: 8)
        var offset: Int64 = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try fs.write(file, bytes, at: offset)
            try fs.fdatasync(file)
            offset = (offset + 8) % (64 * 1024 * 1024)
        }
        benchmark.stopMeasurement()
    }

    for size in [128, 4096] {
        for batchSize in [1, 16, 256] {
            Benchmark("WAL/save/batch=\(batchSize)/entry=\(size)B") { benchmark in
                let directory = temporaryDirectory()
                defer { removeTree(directory) }
                let wal = try WAL.create(directory: directory + "/wal", metadata: Array("bench".utf8))
                let payload = [UInt8](repeating: 0x5A, count: size)
                var batch = (1...batchSize).map { Entry(term: 1, index: UInt64($0), data: payload) }
                var next = UInt64(batchSize) + 1
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    try wal.save(hardState: HardState(term: 1, vote: 1, commit: next - 1), entries: batch)
                    for i in batch.indices {
                        batch[i].index = next
                        next += 1
                    }
                }
                benchmark.stopMeasurement()
                try wal.close()
            }
        }
    }
}

/// A fresh directory under $TMPDIR (or /tmp), on the machine's disk.
func temporaryDirectory() -> String {
    let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var template = Array("\(base)/flotilla-walbench-XXXXXX".utf8CString)
    guard let result = mkdtemp(&template) else { fatalError("mkdtemp failed: \(errno)") }
    return String(cString: result)
}

/// rm -r of a benchmark's directory (two levels at most).
func removeTree(_ path: String) {
    let fs = POSIXFileSystem()
    for name in (try? fs.listDirectory(path)) ?? [] {
        let child = path + "/" + name
        if let inner = try? fs.listDirectory(child) {
            for leaf in inner { try? fs.remove(child + "/" + leaf) }
            try? fs.removeDirectory(child)
        } else {
            try? fs.remove(child)
        }
    }
    try? fs.removeDirectory(path)
}
