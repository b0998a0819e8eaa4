import ArgumentParser
import Flotilla
import FlotillaKV

/// `flotilla wal`: inspection of a node's data directory.
struct WALCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal", abstract: "Inspect a node's write-ahead log.", subcommands: [WALDump.self])
}

/// `flotilla wal dump DIR`: every record of a WAL, like etcd-dump-logs.
struct WALDump: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print the snapshot files and every WAL record of a data directory (or of a WAL directory).",
        discussion: """
            DIR is a node's --data-dir (its WAL in DIR/wal, snapshots in DIR/snap) or a WAL directory. \
            Exits 1 when a record is damaged (a CRC mismatch or a malformed record), naming the file \
            and offset; a torn tail (what a crash leaves) is reported but is not an error.
            """)

    @Argument(help: "A data directory (with wal/ and snap/) or a WAL directory.")
    var directory: String

    @Flag(help: "Print only the entry records.")
    var entriesOnly = false

    @Flag(help: "One JSON object per line instead of text.")
    var json = false

    func run() throws {
        let dump = DataDirectoryDump(
            directory: directory, entriesOnly: entriesOnly, json: json,
            describeCommand: KeyValueStore.Command.dumpDescription(ofEncoded:))
        switch try dump.run(print: { print($0) }) {
        case .intact: return
        case .damaged: throw ExitCode(1)
        }
    }
}
