import ArgumentParser

/// `flotilla`: the replicated key-value server (SERVER.md). Plain `flotilla` is `flotilla serve`.
@main
struct Flotilla: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flotilla",
        abstract: "A replicated key-value server on Raft.",
        discussion: """
            This build runs a one-node cluster that keeps its data in memory. The write-ahead \
            log, the peer transport and multi-node clusters arrive in the next releases.
            """,
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self
    )
}
