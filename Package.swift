// swift-tools-version: 6.0
import PackageDescription

// Layers (DESIGN.md): flotilla ─▶ FlotillaKV ─▶ Flotilla ─▶ RaftWAL/RaftNIO ─▶ Raft.
// Targets are added as their layer lands; `Raft` depends on nothing but swift-log.
let package = Package(
    name: "Flotilla",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Raft", targets: ["Raft"]),
        .library(name: "RaftTestKit", targets: ["RaftTestKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
    ],
    targets: [
        .target(
            name: "Raft",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        .target(name: "RaftTestKit", dependencies: ["Raft"], exclude: ["README.md"]),
        .testTarget(name: "RaftTests", dependencies: ["Raft", "RaftTestKit"], exclude: ["Vectors"]),
    ],
    swiftLanguageModes: [.v6]
)
