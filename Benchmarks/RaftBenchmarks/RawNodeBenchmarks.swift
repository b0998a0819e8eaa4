import Benchmark
import Raft
import RawNodeCluster

/// The four workloads of the etcd anchor, through Flotilla's `RawNode`: 128-byte proposals on
/// the leader of a 1- or 3-voter cluster, pumped until every node has applied them, in batches
/// of 1 or 64 proposals per pump.
///
/// One scaled iteration is one batch (propose `batch` entries, then pump until quiet);
/// `scalingFactor: .kilo` makes one measured iteration 1000 batches, i.e. `1000 * batch`
/// committed entries. The `*` (scaled) figures are therefore per batch: for `batch=1` they are
/// per entry, for `batch=64` divide them by 64. `Benchmarks/README.md` has the per-entry table.
///
/// Every measured iteration starts from a freshly elected cluster (built before
/// `startMeasurement()`), so the log does not grow without bound across iterations; the Go
/// anchor's log grows to its `n` entries (200,000) in the one run it measures.
func rawNodeBenchmarks() {
    let payload = [UInt8](repeating: 0, count: 128)
    for size in [1, 3] {
        for batch in [1, 64] {
            Benchmark(
                "RawNode/nodes=\(size)/batch=\(batch)",
                configuration: .init(
                    metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
                    timeUnits: .nanoseconds,
                    scalingFactor: .kilo,
                    maxDuration: .seconds(batch == 1 ? 5 : 10),
                    maxIterations: 1000
                )
            ) { benchmark in
                var cluster = try Cluster(size: size)
                let start = cluster.applied[0]

                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    for _ in 0..<batch {
                        try cluster.propose(payload)
                    }
                    try cluster.pump()
                }
                benchmark.stopMeasurement()

                cluster.expectApplied(start + UInt64(benchmark.scaledIterations.count * batch))
                // Tear the cluster down outside the measured region.
                withExtendedLifetime(cluster) {}
            }
        }
    }
}
