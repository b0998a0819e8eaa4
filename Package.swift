// swift-tools-version: 6.1
import PackageDescription

#if os(Linux)
import Glibc
#endif

/// How the release `flotilla` executable is linked on Linux: with lld and packed relative
/// relocations (DT_RELR), which shrink the relocation table the loader reads whole at every
/// start, and so each node's resident memory (measured in Benchmarks/README.md, "Memory").
/// Packed relocations need glibc 2.36 at run time, so they are used only where the glibc
/// building the binary has them. `FLOTILLA_DYNAMIC_LINK=1` links the ordinary way (gold, plain
/// relocations).
///
/// Not statically (`-static-stdlib`), although that saves more memory: Swift's concurrency
/// runtime finds libdispatch's job entry point (`dispatch_async_swift_job`) by name at run
/// time, which a static binary does not export, and falls back to plain `dispatch_async`, which
/// costs the leader more context switches per write and one-client puts much of their speed
/// (Benchmarks/README.md).
let serverLinkerSettings: [LinkerSetting] = {
    #if os(Linux)
    if Context.environment["FLOTILLA_DYNAMIC_LINK"] == "1" || !glibcHasPackedRelocations() { return [] }
    return [
        .unsafeFlags(
            ["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"],
            .when(platforms: [.linux], configuration: .release))
    ]
    #else
    return []
    #endif
}()

#if os(Linux)
/// True if this machine's glibc (which the binary built here runs with) is 2.36 or later, the
/// first to load DT_RELR.
func glibcHasPackedRelocations() -> Bool {
    var buffer = [CChar](repeating: 0, count: 64)
    guard confstr(CInt(_CS_GNU_LIBC_VERSION), &buffer, buffer.count) > 0 else { return false }
    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let version = text.split(separator: " ").last ?? ""  // "glibc 2.36"
    let parts = version.split(separator: ".").compactMap { Int($0) }
    guard parts.count >= 2 else { return false }
    return (parts[0], parts[1]) >= (2, 36)
}
#endif

// Layers (Docs/DESIGN.md): flotilla ─▶ FlotillaKV ─▶ Flotilla ─▶ RaftWAL/RaftNIO ─▶ Raft. Each
// target depends on the layer below only; `ImportLayeringTests` reads the imports and checks it.
// `Raft` depends on nothing but swift-log.
let package = Package(
    name: "Flotilla",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Raft", targets: ["Raft"]),
        .library(name: "RaftTestKit", targets: ["RaftTestKit"]),
        .library(name: "RaftWAL", targets: ["RaftWAL"]),
        .library(name: "RaftNIO", targets: ["RaftNIO"]),
        .library(name: "Flotilla", targets: ["Flotilla"]),
        .library(name: "FlotillaKV", targets: ["FlotillaKV"]),
        .executable(name: "flotilla", targets: ["flotilla"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        // No traits: we need neither swift-configuration support nor full Foundation, and
        // leaving them out saves building swift-configuration.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        // Already in the graph through Hummingbird; the executable names NIOCore's IOError.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        // `GET /metrics`: the runtime's swift-metrics in the Prometheus text format.
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        // The client subcommands and `flotilla bench` (FlotillaCLI): HTTP client, latency histogram.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.1.0"),
        // TLS: mutual TLS between peers (RaftNIO), HTTPS for the client API, and the clients.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        // `flotilla certs`: a development CA and certificates, without openssl.
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        .target(
            name: "Raft",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        // The cluster simulator (RawNodes) needs only Raft; the whole-node simulator runs the
        // runtime's `NodeInstance` over `DiskStorage` on a simulated file system.
        .target(
            name: "RaftTestKit",
            dependencies: [
                "Raft", "RaftWAL", "Flotilla", "RaftNIO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            exclude: ["README.md"]),
        // The write-ahead log and snapshot files in etcd's format, and DiskStorage. POSIX calls
        // only (behind WALFileSystem), no Foundation.
        .target(
            name: "RaftWAL",
            dependencies: ["Raft", "CRC32CHardware", .product(name: "Logging", package: "swift-log")]
        ),
        // CRC-32C with the CPU's instructions (SSE 4.2, ARMv8 CRC), for RaftWAL's checksums;
        // RaftWAL falls back to its own tables where they are missing.
        .target(name: "CRC32CHardware"),
        // The peer transport (Docs/TRANSPORT.md): SwiftNIO sockets, no Foundation.
        .target(
            name: "RaftNIO",
            dependencies: [
                "Raft",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // Reading a peer certificate's names, for peer identity.
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The runtime users build on (Docs/DESIGN.md): a replicated StateMachine over RawNode,
        // DiskStorage and RaftTransport, with metrics and a ServiceLifecycle Service.
        .target(
            name: "Flotilla",
            dependencies: [
                "Raft",
                "RaftWAL",
                "RaftNIO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // What the HTTP API's server and clients share: endpoint URLs, keys in paths.
        .target(name: "FlotillaHTTP"),
        .target(
            name: "FlotillaKV",
            dependencies: [
                "Flotilla",
                "FlotillaHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The client subcommands (put, get, del, member, status) and the load generator (bench):
        // an HTTP client over --endpoints, the bench engine, its summary and progress bar. A
        // library so that FlotillaCLITests can test them; only the executable uses it.
        .target(
            name: "FlotillaCLI",
            dependencies: [
                "FlotillaHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        .executableTarget(
            name: "flotilla",
            dependencies: [
                "FlotillaCLI",
                "FlotillaKV",
                "Flotilla",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            linkerSettings: serverLinkerSettings
        ),
        .testTarget(name: "RaftTests", dependencies: ["Raft", "RaftTestKit"], exclude: ["Vectors", "Testdata"]),
        .testTarget(name: "RaftWALTests", dependencies: ["RaftWAL", "Raft", "RaftTestKit"], exclude: ["Vectors"]),
        .testTarget(
            name: "RaftNIOTests",
            dependencies: [
                "RaftNIO",
                "Raft",
                // DevelopmentCertificates, for the TLS tests.
                "FlotillaCLI",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "FlotillaTests",
            dependencies: [
                "Flotilla",
                "Raft",
                "RaftNIO",
                "RaftTestKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FlotillaKVTests",
            dependencies: [
                "FlotillaKV",
                "Flotilla",
                "Raft",
                "RaftNIO",
                "RaftWAL",
                "RaftTestKit",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Starts real `flotilla` processes (the executable next to the test bundle) and talks
        // to them with curl.
        // Peer attacks speak the wire format with Raft's raftpb codec.
        .testTarget(name: "FlotillaEndToEndTests", dependencies: ["Raft"]),
        // Reads the sources' imports and checks the layering (Docs/DESIGN.md).
        .testTarget(name: "LayeringTests"),
        .testTarget(
            name: "FlotillaCLITests",
            dependencies: [
                "FlotillaCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
