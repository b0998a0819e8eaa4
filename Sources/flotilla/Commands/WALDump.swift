import ArgumentParser
import FlotillaKV
import Raft
import RaftWAL

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
        let fileSystem = POSIXFileSystem()
        let walDirectory: String
        var snapDirectory: String?
        if fileSystem.exists(directory + "/wal") {
            walDirectory = directory + "/wal"
            if fileSystem.exists(directory + "/snap") { snapDirectory = directory + "/snap" }
        } else {
            walDirectory = directory
        }

        if let snapDirectory, !entriesOnly {
            let files = SnapshotFiles(directory: snapDirectory, fileSystem: fileSystem)
            let names = (try? files.names()) ?? []
            if !json { print("snapshots in \(snapDirectory): \(names.isEmpty ? "none" : "\(names.count)")") }
            for name in names.reversed() {
                switch Result(catching: { () throws(WALError) in try files.load(name) }) {
                case .success(let snapshot):
                    let m = snapshot.metadata
                    if json {
                        print(#"{"snapshotFile":\#(quoted(name)),"index":\#(m.index),"term":\#(m.term),"voters":\#(m.confState.voters),"learners":\#(m.confState.learners),"bytes":\#(snapshot.data.count)}"#)
                    } else {
                        print("  \(name) index=\(m.index) term=\(m.term) voters=\(m.confState.voters) learners=\(m.confState.learners) data=\(snapshot.data.count) bytes")
                    }
                case .failure(let error):
                    if json {
                        print(#"{"snapshotFile":\#(quoted(name)),"error":\#(quoted("\(error)"))}"#)
                    } else {
                        print("  \(name) unreadable: \(error)")
                    }
                }
            }
        }

        var reader: WALReader
        do {
            reader = try WALReader(directory: walDirectory, fileSystem: fileSystem)
        } catch {
            throw DumpError("cannot read the WAL in \(walDirectory): \(error)")
        }
        if !json { print("WAL in \(walDirectory): \(reader.segments.count) segment(s)") }
        var counts: [WALRecordType: Int] = [:]
        do {
            while let record = try reader.next() {
                counts[record.type, default: 0] += 1
                if entriesOnly, record.type != .entry { continue }
                print(json ? Self.json(record) : Self.text(record))
            }
        } catch {
            let location: String
            switch error {
            case .corrupt(let file, let offset, _), .entryGap(let file, let offset, _, _),
                .metadataConflict(let file, let offset), .unknownRecordType(let file, let offset, _):
                location = "\(file) at offset \(offset)"
            default:
                location = walDirectory
            }
            if json {
                print(#"{"error":\#(quoted("\(error)")),"at":\#(quoted(location))}"#)
            } else {
                print("DAMAGED: \(location): \(error)")
            }
            throw ExitCode(1)
        }
        guard let end = reader.end else { return }
        switch end {
        case .clean(let segment, let offset):
            if json {
                print(#"{"end":"clean","segment":\#(quoted(segment)),"offset":\#(offset)}"#)
            } else {
                print("end: clean in \(segment.isEmpty ? "(no segments)" : segment) at offset \(offset)")
            }
        case .torn(let segment, let offset, let reason):
            if json {
                print(#"{"end":"torn","segment":\#(quoted(segment)),"offset":\#(offset),"reason":\#(quoted(reason))}"#)
            } else {
                print("end: torn in \(segment) at offset \(offset): \(reason)")
            }
        }
        if !json {
            let summary = [WALRecordType.metadata, .crc, .snapshot, .state, .entry]
                .map { "\(counts[$0, default: 0]) \($0)" }.joined(separator: ", ")
            print("records: \(summary)")
        }
    }

    static func text(_ record: WALRecordInfo) -> String {
        let prefix = "\(record.segment) @\(record.offset) \(record.type)"
        switch record.payload {
        case .metadata(let bytes): return "\(prefix) \(bytes.count) bytes \(hex(bytes))"
        case .crc(let crc): return "\(prefix) crc=\(hex32(crc))"
        case .snapshot(let s): return "\(prefix) index=\(s.index) term=\(s.term)"
        case .state(let h): return "\(prefix) term=\(h.term) vote=\(h.vote) commit=\(h.commit)"
        case .entry(let e): return "\(prefix) index=\(e.index) term=\(e.term) type=\(e.type) \(describe(e))"
        }
    }

    static func json(_ record: WALRecordInfo) -> String {
        var fields = [
            #""segment":\#(quoted(record.segment))"#, #""offset":\#(record.offset)"#,
            #""type":\#(quoted("\(record.type)"))"#, #""length":\#(record.length)"#,
        ]
        switch record.payload {
        case .metadata(let bytes): fields.append(#""metadata":\#(quoted(hex(bytes, limit: .max)))"#)
        case .crc(let crc): fields.append(#""crc":\#(crc)"#)
        case .snapshot(let s): fields += [#""index":\#(s.index)"#, #""term":\#(s.term)"#]
        case .state(let h): fields += [#""term":\#(h.term)"#, #""vote":\#(h.vote)"#, #""commit":\#(h.commit)"#]
        case .entry(let e):
            fields += [
                #""index":\#(e.index)"#, #""term":\#(e.term)"#, #""entryType":\#(quoted("\(e.type)"))"#,
                #""bytes":\#(e.data.count)"#, #""data":\#(quoted(describe(e)))"#,
            ]
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// A short description of an entry's data: the KV command when it decodes (inside the
    /// runtime's proposal envelope, `[1][request id: 8][command]`), hex otherwise.
    static func describe(_ entry: Entry) -> String {
        let data = entry.data
        if data.isEmpty { return "(empty)" }
        switch entry.type {
        case .normal: break
        case .confChange:
            guard let change = try? ConfChange(serializedBytes: data) else { break }
            return "\(change.type) node=\(change.nodeID)" + memberAddress(change.context)
        case .confChangeV2:
            guard let change = try? ConfChangeV2(serializedBytes: data) else { break }
            let changes = change.changes.map { "\($0.type) node=\($0.nodeID)" }.joined(separator: ", ")
            return "[\(changes)] transition=\(change.transition)" + memberAddress(change.context)
        }
        guard entry.type == .normal else { return "\(data.count) bytes \(hex(data))" }
        if data.count >= 9, data[0] == 1,
            let command = try? KeyValueStore.Command(decoding: Array(data[9...]))
        {
            switch command {
            case .put(let key, let value): return "put key=\(printable(key)) (\(value.count) bytes)"
            case .delete(let key): return "delete key=\(printable(key))"
            }
        }
        return "\(data.count) bytes \(hex(data))"
    }
}

/// " at HOST:PORT" from the runtime's conf change context (`[1][request id: 8][host length:
/// 2][host][port: 4]`, little-endian), or "" when it does not decode or names no address.
private func memberAddress(_ context: [UInt8]) -> String {
    guard context.count >= 11, context[0] == 1 else { return "" }
    let hostLength = Int(context[9]) | Int(context[10]) << 8
    guard context.count == 11 + hostLength + 4 else { return "" }
    let host = String(decoding: context[11..<11 + hostLength], as: UTF8.self)
    var port = 0
    for (shift, byte) in context[(11 + hostLength)...].enumerated() { port |= Int(byte) << (8 * shift) }
    return port == 0 ? "" : " at \(host):\(port)"
}

private func printable(_ bytes: [UInt8]) -> String {
    let shown = bytes.prefix(64)
    let text: String
    if shown.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) {
        text = String(decoding: shown, as: UTF8.self)
    } else {
        text = "0x" + hex(Array(shown), limit: .max)
    }
    return bytes.count > shown.count ? text + "…" : text
}

private func hex(_ bytes: [UInt8], limit: Int = 16) -> String {
    let digits = "0123456789abcdef".map { $0 }
    var out = ""
    for byte in bytes.prefix(limit) {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0xf)])
    }
    return bytes.count > limit ? out + "…" : out
}

private func hex32(_ value: UInt32) -> String {
    let s = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}

/// A JSON string literal.
private func quoted(_ string: String) -> String {
    var out = "\""
    for scalar in string.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let h = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

private struct DumpError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
