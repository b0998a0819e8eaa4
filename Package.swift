// swift-tools-version: 6.1
import PackageDescription

// Layers (DESIGN.md): flotilla ─▶ FlotillaKV ─▶ Flotilla ─▶ RaftWAL/RaftNIO ─▶ Raft.
// Targets are added as their layer lands; `Raft` depends on nothing but swift-log.
// For now FlotillaKV drives a one-node `Raft.Node` itself (SingleNodeReplica); the `Flotilla`
// runtime, the WAL and the transport slot in between later.
let package = Package(
    name: "Flotilla",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Raft", targets: ["Raft"]),
        .library(name: "RaftTestKit", targets: ["RaftTestKit"]),
        .library(name: "RaftWAL", targets: ["RaftWAL"]),
        .library(name: "RaftNIO", targets: ["RaftNIO"]),
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
    ],
    targets: [
        .target(
            name: "Raft",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        .target(name: "RaftTestKit", dependencies: ["Raft"], exclude: ["README.md"]),
        // The write-ahead log and snapshot files in etcd's format, and DiskStorage. POSIX calls
        // only (behind WALFileSystem), no Foundation.
        .target(
            name: "RaftWAL",
            dependencies: ["Raft", .product(name: "Logging", package: "swift-log")]
        ),
        // The peer transport (Docs/TRANSPORT.md): SwiftNIO sockets, no Foundation.
        .target(
            name: "RaftNIO",
            dependencies: [
                "Raft",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "FlotillaKV",
            dependencies: [
                "Raft",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "flotilla",
            dependencies: [
                "FlotillaKV",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "RaftTests", dependencies: ["Raft", "RaftTestKit"], exclude: ["Vectors"]),
        .testTarget(name: "RaftWALTests", dependencies: ["RaftWAL", "Raft"], exclude: ["Vectors"]),
        .testTarget(
            name: "RaftNIOTests",
            dependencies: [
                "RaftNIO",
                "Raft",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "FlotillaKVTests",
            dependencies: [
                "FlotillaKV",
                "Raft",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
