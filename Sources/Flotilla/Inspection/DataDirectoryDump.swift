import Raft
import RaftWAL

/// What `flotilla wal dump` prints of a data directory (etcd-dump-logs' job): its snapshot
/// files, then every WAL record, then how the WAL ends. The runtime's own bytes inside records
/// (the storage metadata, proposal envelopes, conf change contexts) are decoded through the
/// envelope types themselves; a command is described by the state machine's
/// `describeCommand`, hex when it declines.
///
/// `package`: the dump's text is for people, and may change.
package struct DataDirectoryDump {
    package enum Outcome: Sendable, Equatable {
        /// Every record read; the WAL ends cleanly or with a torn tail (what a crash leaves).
        case intact
        /// A record is damaged (a CRC mismatch or a malformed record): printed with its file
        /// and offset.
        case damaged
    }

    let directory: String
    let entriesOnly: Bool
    let json: Bool
    let fileSystem: any WALFileSystem
    let describeCommand: ([UInt8]) -> String?

    /// - Parameters:
    ///   - directory: a node's data directory (its WAL in `wal/`, snapshots in `snap/`) or a
    ///     WAL directory.
    ///   - entriesOnly: print only the entry records.
    ///   - json: one JSON object per line instead of text.
    ///   - describeCommand: a short description of a command, nil if it does not decode.
    package init(
        directory: String, entriesOnly: Bool = false, json: Bool = false,
        fileSystem: any WALFileSystem = POSIXFileSystem(), describeCommand: @escaping ([UInt8]) -> String?
    ) {
        self.directory = directory
        self.entriesOnly = entriesOnly
        self.json = json
        self.fileSystem = fileSystem
        self.describeCommand = describeCommand
    }

    /// Prints the dump, line by line, through `print`.
    /// - Throws: `DataDirectoryDumpError` when there is no WAL to read.
    package func run(print: (String) -> Void) throws(DataDirectoryDumpError) -> Outcome {
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
            throw DataDirectoryDumpError(walDirectory: walDirectory, reason: "\(error)")
        }
        if !json { print("WAL in \(walDirectory): \(reader.segments.count) segment(s)") }
        var counts: [WALRecordType: Int] = [:]
        do {
            while let record = try reader.next() {
                counts[record.type, default: 0] += 1
                if entriesOnly, record.type != .entry { continue }
                print(json ? jsonLine(record) : textLine(record))
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
            return .damaged
        }
        guard let end = reader.end else { return .intact }
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
        return .intact
    }
    func textLine(_ record: WALRecordInfo) -> String {
        let prefix = "\(record.segment) @\(record.offset) \(record.type)"
        switch record.payload {
        case .metadata(let bytes):
            let decoded = StorageMetadata(decoding: bytes).map { " (\($0))" } ?? ""
            return "\(prefix) \(bytes.count) bytes \(hex(bytes))\(decoded)"
        case .crc(let crc): return "\(prefix) crc=\(hex32(crc))"
        case .snapshot(let s): return "\(prefix) index=\(s.index) term=\(s.term)"
        case .state(let h): return "\(prefix) term=\(h.term) vote=\(h.vote) commit=\(h.commit)"
        case .entry(let e): return "\(prefix) index=\(e.index) term=\(e.term) type=\(e.type) \(describe(e))"
        }
    }

    func jsonLine(_ record: WALRecordInfo) -> String {
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

    /// A short description of an entry's data: the command when the state machine describes
    /// it (inside the runtime's `ProposalEnvelope`), hex otherwise.
    func describe(_ entry: Entry) -> String {
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
        if let envelope = ProposalEnvelope(decoding: data), let command = describeCommand(envelope.command) {
            return command
        }
        return "\(data.count) bytes \(hex(data))"
    }
}

/// " at HOST:PORT" from the runtime's conf change context (`MemberContext`), or "" when it
/// does not decode or names no address.
private func memberAddress(_ context: [UInt8]) -> String {
    guard let address = MemberContext(decoding: context)?.address else { return "" }
    return " at \(address.host):\(address.port)"
}

/// A byte string as text when it is printable ASCII, as hex otherwise; at most 64 bytes shown.
package func printableBytes(_ bytes: [UInt8]) -> String {

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

/// No WAL could be read in the directory given.
package struct DataDirectoryDumpError: Error, CustomStringConvertible {
    package var walDirectory: String
    package var reason: String
    package var description: String {
        "cannot read the WAL in \(walDirectory): \(reason); give a node's data directory (with wal/ and snap/) or its WAL directory"
    }
}
