import Foundation
import Testing

/// The layering of Docs/DESIGN.md, read off the sources: each target imports only the layer
/// below it (and the packages its layer may use), so that the key-value server builds on the
/// runtime alone, a user of the runtime writes `import Flotilla` and nothing else, and the core
/// stays free of I/O. A new import that skips a layer fails here, naming the file and line.
@Suite struct ImportLayeringTests {
    /// The system modules any target may import.
    static let system: Set<String> = ["Glibc", "Musl", "Darwin", "Android", "Synchronization", "Dispatch"]

    /// What each target may import, besides `system`.
    static let allowed: [String: Set<String>] = [
        // The core: swift-log, nothing else; no Foundation, no I/O.
        "Raft": ["Logging"],
        "RaftWAL": ["Raft", "CRC32CHardware", "Logging"],
        "RaftNIO": ["Raft", "Logging", "NIOCore", "NIOPosix", "NIOSSL", "X509"],
        "Flotilla": ["Raft", "RaftWAL", "RaftNIO", "Logging", "Metrics", "ServiceLifecycle", "NIOCore", "NIOPosix"],
        // The server builds on the runtime only.
        // Shared by the API's server and clients; it needs nothing.
        "FlotillaHTTP": [],
        "FlotillaKV": [
            "Flotilla", "FlotillaHTTP", "Logging", "Hummingbird", "HummingbirdCore", "HTTPTypes", "NIOCore", "NIOHTTP1",
            "NIOHTTPTypes", "NIOSSL", "Prometheus", "ServiceLifecycle", "FoundationEssentials", "Foundation",
        ],
        // The clients speak HTTP to a cluster; they know none of its insides.
        "FlotillaCLI": [
            "FlotillaHTTP", "ArgumentParser", "AsyncHTTPClient", "Histogram", "NIOCore", "NIOHTTP1", "NIOPosix", "NIOSSL",
            "X509", "Crypto", "SwiftASN1", "FoundationEssentials", "Foundation",
        ],
        // The executable wires the server, the runtime and the clients together.
        "flotilla": [
            "Flotilla", "FlotillaKV", "FlotillaCLI", "ArgumentParser", "Hummingbird", "Logging", "Metrics",
            "Prometheus", "NIOCore", "NIOPosix", "FoundationEssentials", "Foundation",
        ],
    ]

    /// Files that show a user of a library what to write: they import that library only.
    static let userExamples: [(file: String, forbidden: Set<String>)] = [
        ("Tests/FlotillaTests/ReadmeExampleTests.swift", ["Raft", "RaftWAL", "RaftNIO"]),
    ]

    static let root: String = {
        // …/Tests/LayeringTests/ImportLayeringTests.swift → the package root.
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    @Test("every target imports only what its layer allows", arguments: allowed.keys.sorted())
    func targetImportsFollowTheLayers(target: String) throws {
        let files = try swiftFiles(under: Self.root + "/Sources/" + target)
        #expect(!files.isEmpty, "no Swift files found for \(target) under \(Self.root)/Sources")
        let permitted = Self.allowed[target, default: []].union(Self.system)
        for file in files {
            for found in imports(in: try contents(of: file)) where !permitted.contains(found.module) {
                Issue.record("\(file):\(found.line): \(target) imports \(found.module), which its layer may not (Docs/DESIGN.md)")
            }
        }
    }

    @Test("the README's example needs only `import Flotilla`")
    func userExamplesImportOnlyTheLibrary() throws {
        for (file, forbidden) in Self.userExamples {
            let found = imports(in: try contents(of: Self.root + "/" + file))
            #expect(found.contains { $0.module == "Flotilla" }, "\(file) no longer imports Flotilla")
            for violation in found where forbidden.contains(violation.module) {
                Issue.record("\(file):\(violation.line): imports \(violation.module); a user of Flotilla must not need to")
            }
        }
    }

    @Test("the import reader sees every form of import, and nothing else")
    func importReader() {
        let source = """
            import Raft
            @testable import Flotilla
            public import NIOCore
            package import RaftWAL
            @_spi(Testing) import Logging
            import struct RaftNIO.TransportAddress
            #if canImport(Glibc)
                import Glibc
            #endif
            // import Commented
            /// import Documented
            let important = "import Quoted"
            """
        #expect(imports(in: source).map(\.module) == ["Raft", "Flotilla", "NIOCore", "RaftWAL", "Logging", "RaftNIO", "Glibc"])
        #expect(imports(in: source).map(\.line) == [1, 2, 3, 4, 5, 6, 8])
    }
}

/// The modules `source` imports, with their line numbers: `import M`, with any attributes
/// (`@testable`, `@_spi(…)`), an access level, or a kind (`import struct M.T`).
func imports(in source: String) -> [(module: String, line: Int)] {
    let modifiers: Set<Substring> = ["public", "package", "internal", "fileprivate", "private"]
    let kinds: Set<Substring> = ["struct", "class", "enum", "protocol", "typealias", "func", "let", "var"]
    var found: [(String, Int)] = []
    for (index, line) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        var words = line.split(separator: " ", omittingEmptySubsequences: true)[...]
        while let first = words.first, first.hasPrefix("@") || modifiers.contains(first) { words.removeFirst() }
        guard words.first == "import", words.count >= 2 else { continue }
        words.removeFirst()
        if let kind = words.first, kinds.contains(kind) { words.removeFirst() }
        guard let path = words.first, let module = path.split(separator: ".").first else { continue }
        found.append((String(module), index + 1))
    }
    return found
}

/// Every `.swift` file under `directory`, sorted.
func swiftFiles(under directory: String) throws -> [String] {
    let names = try FileManager.default.subpathsOfDirectory(atPath: directory)
    return names.filter { $0.hasSuffix(".swift") }.sorted().map { directory + "/" + $0 }
}

func contents(of path: String) throws -> String {
    try String(contentsOfFile: path, encoding: .utf8)
}
