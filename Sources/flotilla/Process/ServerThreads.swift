import NIOCore
import NIOPosix

/// How `flotilla serve` uses threads: `--io-threads` NIO event loops (1 by default) carry the
/// HTTP API, the peer transport and — installed as Swift concurrency's global executor — the
/// node's actor and the request tasks; the WAL's fdatasync and snapshot encoding have a thread
/// each of their own.
///
/// A request then goes from its socket through Hummingbird, the node's Ready loop and back
/// without waking a thread of another pool: on a small machine such a hop is most of what a
/// request costs at low concurrency (measured: see Benchmarks/README.md). Raft serializes a
/// node's work in its loop anyway; more event loops help a node that serves many connections
/// of reads on a big machine (`--io-threads 4`).
///
/// Both must be decided before any task runs, so `main` reads the option here, before the
/// argument parser (which validates it again with the rest).
enum ServerThreads {
    static let option = "--io-threads"
    static let defaultCount = 1

    /// Sets up the threads when `arguments` run `serve` (the default subcommand).
    static func configure(arguments: [String]) {
        let rest = Array(arguments.dropFirst())
        let isServe = rest.first.map { $0 == "serve" || $0.hasPrefix("-") } ?? true
        guard isServe, !rest.contains("--help"), !rest.contains("-h") else { return }
        NIOSingletons.groupLoopCountSuggestion = count(in: rest) ?? defaultCount
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    /// The value of `--io-threads N` or `--io-threads=N`; nil when absent or not a count
    /// (then the parser reports it).
    static func count(in arguments: [String]) -> Int? {
        for (index, argument) in arguments.enumerated() {
            let value: Substring?
            if argument == option {
                value = index + 1 < arguments.count ? arguments[index + 1][...] : nil
            } else if argument.hasPrefix(option + "=") {
                value = argument.dropFirst(option.count + 1)
            } else {
                continue
            }
            guard let value, let count = Int(value), count >= 1 else { return nil }
            return count
        }
        return nil
    }
}
