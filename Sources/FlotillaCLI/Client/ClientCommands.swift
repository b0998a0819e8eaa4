import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The client subcommands of `flotilla` (Docs/SERVER.md, "Client subcommands"), for the root
/// command's `subcommands`.
public enum ClientCommands {
    public static var all: [any ParsableCommand.Type] {
        [Put.self, Get.self, Del.self, Member.self, Status.self, Bench.self]
    }
}

/// `--endpoints`, shared by the client subcommands.
public struct EndpointOptions: ParsableArguments {
    @Option(help: "Client URLs of the cluster (http://HOST:PORT or https://), comma-separated; each request tries the next one when one cannot be reached.")
    public var endpoints: String = "http://127.0.0.1:12380"

    @OptionGroup public var tls: ClientTLSOptions

    public init() {}

    public func validate() throws {
        do {
            _ = try parseEndpoints(endpoints)
        } catch {
            throw ValidationError("--endpoints: \(error)")
        }
    }

    /// Runs `body` with a client for the endpoints, shut down afterwards.
    func withClient<T>(_ body: (FlotillaHTTPClient) async throws -> T) async throws -> T {
        let client = FlotillaHTTPClient(endpoints: try parseEndpoints(endpoints), connections: 1, tls: try tls.configuration())
        do {
            let result = try await body(client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

/// Writes `text` to stderr (no buffering, so progress lines appear at once).
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { return }
        offset += n
    }
}

public struct Put: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Set a key's value (PUT /v1/kv/KEY).")

    @OptionGroup public var options: EndpointOptions
    @Argument(help: "The key.") public var key: String
    @Argument(help: "The value.") public var value: String

    public init() {}

    public func run() async throws {
        try await options.withClient { try await $0.put(key: key, value: Array(value.utf8)) }
        print("OK")
    }
}

public struct Get: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Print a key's value (a linearizable read, GET /v1/kv/KEY); exit 1 when it is absent.")

    @OptionGroup public var options: EndpointOptions
    @Argument(help: "The key.") public var key: String

    public init() {}

    public func run() async throws {
        guard let value = try await options.withClient({ try await $0.get(key: key) }) else {
            writeStandardError("key not found: \(key)\n")
            throw ExitCode(1)
        }
        print(String(decoding: value, as: UTF8.self))
    }
}

public struct Del: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Delete a key (DELETE /v1/kv/KEY).")

    @OptionGroup public var options: EndpointOptions
    @Argument(help: "The key.") public var key: String

    public init() {}

    public func run() async throws {
        try await options.withClient { try await $0.delete(key: key) }
        print("OK")
    }
}

public struct Status: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Show the first reachable node's status: id, term, leader, commit, applied, state (GET /v1/status).")

    @OptionGroup public var options: EndpointOptions

    public init() {}

    public func run() async throws {
        let json = try await options.withClient { try await $0.status() }
        print(prettyStatus(json))
    }
}

public struct Member: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "List, add or remove the cluster's members (/v1/members).",
        subcommands: [List.self, Add.self, Remove.self])

    public init() {}

    public struct List: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "List the members: id, peer URL, role.")

        @OptionGroup public var options: EndpointOptions

        public init() {}

        public func run() async throws {
            let members = try await options.withClient { try await $0.members() }
            print(Member.table(members))
        }
    }

    public struct Add: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Add a member; then start it with `flotilla serve --join`.")

        @OptionGroup public var options: EndpointOptions
        @Argument(help: "The new member's id (1 or more).") public var id: UInt64
        @Argument(help: "Its peer URL (http://HOST:PORT).") public var url: String
        @Flag(help: "Add it as a learner (it gets the log but does not vote).") public var learner = false

        public init() {}

        public func validate() throws {
            guard id >= 1 else { throw ValidationError("member ids start at 1") }
        }

        public func run() async throws {
            try await options.withClient { try await $0.addMember(id: id, peerURL: url, learner: learner) }
            print("added member \(id) at \(url)\(learner ? " as a learner" : "")")
        }
    }

    public struct Remove: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Remove a member.")

        @OptionGroup public var options: EndpointOptions
        @Argument(help: "The member's id.") public var id: UInt64

        public init() {}

        public func validate() throws {
            guard id >= 1 else { throw ValidationError("member ids start at 1") }
        }

        public func run() async throws {
            try await options.withClient { try await $0.removeMember(id: id) }
            print("removed member \(id)")
        }
    }

    /// The members as an aligned table, by id.
    public static func table(_ members: [FlotillaHTTPClient.Member]) -> String {
        let rows = [["ID", "PEER URL", "ROLE"]] + members.sorted { $0.id < $1.id }.map { m in
            [String(m.id), m.peerURL, (m.learner ? "learner" : "voter") + (m.leader ? ", leader" : "")]
        }
        let widths = (0..<3).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            (0..<3).map { i in i == 2 ? row[i] : row[i] + String(repeating: " ", count: widths[i] - row[i].count) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
