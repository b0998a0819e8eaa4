import Benchmark
import FlotillaKV

/// The key-value store's snapshots at the size the server benchmark reaches: 100,000 keys
/// `k0`…`k99999` (wrk's `put_kv.lua`) with 64-byte values, about 7.5 MB encoded. One snapshot
/// (or restore) per iteration. `KVStore/apply/put` is one put into that store.
/// `KVStore/snapshot/100k-keys` encodes the whole store, as the first snapshot of a node does;
/// the ones after it are spliced from the one before (`spliced-10k-of-100k`).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .milliseconds,
        warmupIterations: 2,
        scalingFactor: .one,
        maxDuration: .seconds(5),
        maxIterations: 200
    )

    let value = [UInt8](repeating: UInt8(ascii: "v"), count: 64)
    func store(keys: Int) -> KeyValueStore {
        var store = KeyValueStore()
        for n in 0..<keys { store.apply(.put(key: Array("k\(n)".utf8), value: value)) }
        return store
    }

    Benchmark("KVStore/snapshot/100k-keys") { benchmark in
        let full = store(keys: 100_000)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(full.snapshot()) }
        benchmark.stopMeasurement()
    }

    // What a node does every 10,000 entries under wrk's load: the snapshot spliced from the
    // previous one. Each iteration puts 10,000 of the keys (prepared beforehand) and encodes the
    // capture; `KVStore/apply/10k-puts` is the same puts alone, to subtract (no capture there:
    // one left unencoded would make the next capture take the whole dictionary, and the next put
    // copy it).
    let keys = (0..<100_000).map { Array("k\($0)".utf8) }
    func putTenThousand(into store: inout KeyValueStore, from n: inout Int) {
        for _ in 0..<10_000 {
            store.apply(.put(key: keys[n % 100_000], value: value))
            n += 7
        }
    }

    Benchmark("KVStore/snapshot/spliced-10k-of-100k") { benchmark in
        var full = store(keys: 100_000)
        _ = try full.captureSnapshot()()
        var n = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            putTenThousand(into: &full, from: &n)
            blackHole(try full.captureSnapshot()())
        }
        benchmark.stopMeasurement()
    }

    Benchmark("KVStore/apply/10k-puts") { benchmark in
        var full = store(keys: 100_000)
        var n = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { putTenThousand(into: &full, from: &n) }
        benchmark.stopMeasurement()
        blackHole(full)
    }

    Benchmark("KVStore/restore/100k-keys") { benchmark in
        let bytes = store(keys: 100_000).snapshot()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try KeyValueStore(snapshot: bytes)) }
        benchmark.stopMeasurement()
    }

    Benchmark(
        "KVStore/apply/put",
        configuration: .init(timeUnits: .nanoseconds, scalingFactor: .kilo, maxIterations: 1_000_000)
    ) { benchmark in
        var full = store(keys: 100_000)
        var n = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            full.apply(.put(key: Array("k\(n % 100_000)".utf8), value: value))
            n += 1
        }
        benchmark.stopMeasurement()
        blackHole(full)
    }
}
