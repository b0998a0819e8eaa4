import ArgumentParser
import FlotillaCLI

@main
enum Main {
    static func main() async {
        ServerThreads.configure(arguments: CommandLine.arguments)
        await Flotilla.main()
    }
}

/// `flotilla`: the replicated key-value server (Docs/SERVER.md). Plain `flotilla` is `flotilla serve`.
struct Flotilla: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flotilla",
        abstract: "A replicated key-value server on Raft.",
        discussion: """
            Plain `flotilla` is `flotilla serve`: a one-node cluster on 127.0.0.1 (HTTP on port \
            12380, peers on 12379), its data in ./flotilla-1.
            """,
        subcommands: [
            Serve.self,
            WALCommand.self,
            LocalCluster.self,
            Certs.self,
        ] + ClientCommands.all,
        defaultSubcommand: Serve.self
    )
}
