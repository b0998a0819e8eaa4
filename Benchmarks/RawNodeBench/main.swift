import RawNodeCluster

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The four loops of etcd's anchor (`../shared/etcd-anchors/rawnode_bench_go/main.go`) through
// Flotilla's RawNode, as a plain release executable, so that `compare-etcd.sh` can run the two
// programs in turn, the same way, under the same load: 128-byte proposals on the leader of a
// 1- or 3-voter cluster, pumped until every node has applied them, in batches of 1 or 64, one
// fresh cluster per workload whose log grows to N entries, timed as a whole.
//
// Prints "<workload> <ns per committed entry> -", the anchor's format; the third column (the
// anchor's allocations per entry) is left to package-benchmark's malloc counts
// (`RaftBenchmarks`, `RawNode/*`), which need its interposer.
//
//     swift run -c release RawNodeBench [N [WORKLOAD]]   # from Benchmarks/; N defaults to 200000
//
// WORKLOAD (say `nodes=3/batch=1`) runs that one alone, for a profiler.

let arguments = CommandLine.arguments.dropFirst()
let entries = arguments.first.flatMap { Int($0) } ?? 200_000
let only = arguments.dropFirst().first
guard entries > 0 else {
    print("usage: RawNodeBench [ENTRIES [WORKLOAD]], ENTRIES > 0 (default 200000)")
    exit(2)
}

func nanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

let payload = [UInt8](repeating: 0, count: 128)
do {
    for size in [1, 3] {
        for batch in [1, 64] where only == nil || only == "nodes=\(size)/batch=\(batch)" {
            var cluster = try Cluster(size: size)
            let start = cluster.applied[0]
            var done = 0
            let began = nanoseconds()
            while done < entries {
                for _ in 0..<batch {
                    try cluster.propose(payload)
                }
                try cluster.pump()
                done += batch
            }
            let elapsed = nanoseconds() - began
            // The same check as the anchor's: every node applied every entry proposed.
            cluster.expectApplied(start + UInt64(done))
            let perEntry = Double(elapsed) / Double(entries)
            print("nodes=\(size)/batch=\(batch) \((perEntry * 10).rounded() / 10) -")
        }
    }
} catch {
    print("RawNodeBench: \(error)")
    exit(1)
}
