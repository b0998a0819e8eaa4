import Benchmark
import Raft

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(3)
    )

    // Sanity check of the malloc counter: one fresh 128-byte payload per entry must read as
    // exactly 1 malloc per scaled iteration.
    Benchmark("Entry/fresh128") { benchmark in
        for i in benchmark.scaledIterations {
            blackHole(Entry(term: 1, index: UInt64(i), data: [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 128)))
        }
    }

    rawNodeBenchmarks()
}
