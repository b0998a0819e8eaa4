// swift-tools-version: 6.1
import PackageDescription

// Benchmarks for Flotilla, kept out of the root package so that `swift build` / `swift test` at
// the root never build package-benchmark. Run from this directory:
//
//     swift package --disable-sandbox benchmark
//
// package-benchmark discovers every executable target whose folder sits in a folder named
// `Benchmarks` (this package's root), so each suite lives in `Benchmarks/<Suite>/`.
let package = Package(
    name: "FlotillaBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Only the MallocInterposer trait: it gives the malloc counts. (The default traits also
        // pull in swift-runtime-interposer on Linux with Swift 6.3, which we neither need nor have.)
        .package(
            url: "https://github.com/ordo-one/package-benchmark.git",
            from: "1.38.0",
            traits: ["MallocInterposer"]
        ),
        .package(name: "Flotilla", path: ".."),
    ],
    targets: [
        // etcd's anchor cluster (three RawNodes over MemoryStorage, in memory), for both below.
        .target(
            name: "RawNodeCluster",
            dependencies: [.product(name: "Raft", package: "Flotilla")],
            path: "RawNodeCluster"
        ),
        // The anchor's four loops as a plain executable, run in turn with the Go anchor by
        // compare-etcd.sh (no package-benchmark: the same harness shape as the Go program).
        .executableTarget(
            name: "RawNodeBench",
            dependencies: ["RawNodeCluster"],
            path: "RawNodeBench"
        ),
        .executableTarget(
            name: "RaftBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Raft", package: "Flotilla"),
                "RawNodeCluster",
            ],
            path: "RaftBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "RaftCodecBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Raft", package: "Flotilla"),
            ],
            path: "RaftCodecBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "RaftWALBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Raft", package: "Flotilla"),
                .product(name: "RaftWAL", package: "Flotilla"),
            ],
            path: "RaftWALBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "FlotillaKVBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "FlotillaKV", package: "Flotilla"),
            ],
            path: "FlotillaKVBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
