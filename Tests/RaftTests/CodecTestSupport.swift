import Foundation
import Testing
@testable import Raft
import RaftTestKit

// The codec tests' helpers: hex and varint builders, etcd's vectors and their JSON fields.

// MARK: - Helpers

/// The public protobuf API every raftpb type offers, so that tests can be written once.
protocol RaftProtobuf: Hashable {
    init(serializedBytes bytes: [UInt8]) throws(ProtobufDecodingError)
    func serializedBytes() -> [UInt8]
    var serializedSize: Int { get }
    func appendSerializedBytes(to buffer: inout [UInt8])
}

extension Entry: RaftProtobuf {}
extension Message: RaftProtobuf {}
extension HardState: RaftProtobuf {}
extension ConfState: RaftProtobuf {}
extension SnapshotMetadata: RaftProtobuf {}
extension Snapshot: RaftProtobuf {}
extension ConfChange: RaftProtobuf {}
extension ConfChangeSingle: RaftProtobuf {}
extension ConfChangeV2: RaftProtobuf {}

/// Fuzzing draws from the library's deterministic SplitMix64, so every run tests the same inputs.
extension SplitMix64 {
    /// Uniform enough in `0..<bound` for tests.
    mutating func int(below bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func element<T>(of values: [T]) -> T { values[int(below: values.count)] }

    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }

    /// A u64 of random magnitude: small values and UInt64.max both come up often.
    mutating func u64() -> UInt64 {
        switch int(below: 8) {
        case 0: return 0
        case 1: return UInt64.max
        default: return next() >> UInt64(int(below: 64))
        }
    }
}

func hexBytes(_ hex: String) -> [UInt8] {
    var result: [UInt8] = []
    var high: UInt8?
    for char in hex.utf8 {
        let nibble: UInt8
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = char - UInt8(ascii: "A") + 10
        default: continue
        }
        if let h = high {
            result.append(h << 4 | nibble)
            high = nil
        } else {
            high = nibble
        }
    }
    return result
}

/// A protobuf varint, written independently of the codec under test.
func varint(_ value: Int) -> [UInt8] {
    var rest = UInt64(value)
    var result: [UInt8] = []
    while rest >= 0x80 {
        result.append(UInt8(rest & 0x7f) | 0x80)
        rest >>= 7
    }
    return result + [UInt8(rest)]
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

/// The error `body` throws, or nil (and a recorded issue) when it decodes.
func decodingError(
    _ body: () throws(ProtobufDecodingError) -> Void, sourceLocation: SourceLocation = #_sourceLocation
) -> ProtobufDecodingError? {
    do {
        try body()
        Issue.record("decoding succeeded but should have thrown", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

// MARK: - Vectors from etcd v3.4

enum VectorError: Error { case malformed(String) }

struct Vector {
    var name: String
    var kind: String
    var value: [String: Any]
    var bytes: [UInt8]
}

func loadVectors() throws -> [Vector] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Vectors").appendingPathComponent("raftpb.json")
    let data = try Data(contentsOf: url)
    guard let list = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
        throw VectorError.malformed("raftpb.json is not a list of objects")
    }
    return try list.map { object in
        guard let name = object["name"] as? String, let kind = object["kind"] as? String,
            let hex = object["hex"] as? String
        else { throw VectorError.malformed("vector without name, kind or hex: \(object)") }
        return Vector(name: name, kind: kind, value: object["value"] as? [String: Any] ?? [:], bytes: hexBytes(hex))
    }
}

/// Reads JSON values the way Go's encoding/json wrote them (missing or null means zero/empty).
struct JSONFields {
    var fields: [String: Any]

    func u64(_ key: String) throws -> UInt64 {
        switch fields[key] {
        case nil, is NSNull: return 0
        case let number as NSNumber: return number.uint64Value
        case let value: throw VectorError.malformed("\(key) is not a number: \(String(describing: value))")
        }
    }

    func bool(_ key: String) throws -> Bool {
        switch fields[key] {
        case nil, is NSNull: return false
        case let number as NSNumber: return number.boolValue
        case let value: throw VectorError.malformed("\(key) is not a bool: \(String(describing: value))")
        }
    }

    func bytes(_ key: String) throws -> [UInt8] {
        switch fields[key] {
        case nil, is NSNull: return []
        case let string as String:
            guard let data = Data(base64Encoded: string) else { throw VectorError.malformed("\(key) is not base64") }
            return [UInt8](data)
        case let value: throw VectorError.malformed("\(key) is not a string: \(String(describing: value))")
        }
    }

    func ids(_ key: String) throws -> [UInt64] {
        switch fields[key] {
        case nil, is NSNull: return []
        case let list as [Any]:
            return try list.map { element in
                guard let number = element as? NSNumber else { throw VectorError.malformed("\(key) holds \(element)") }
                return number.uint64Value
            }
        case let value: throw VectorError.malformed("\(key) is not a list: \(String(describing: value))")
        }
    }

    func objects(_ key: String) throws -> [JSONFields] {
        switch fields[key] {
        case nil, is NSNull: return []
        case let list as [[String: Any]]: return list.map(JSONFields.init)
        case let value: throw VectorError.malformed("\(key) is not a list of objects: \(String(describing: value))")
        }
    }

    func object(_ key: String) throws -> JSONFields? {
        switch fields[key] {
        case nil, is NSNull: return nil
        case let object as [String: Any]: return JSONFields(fields: object)
        case let value: throw VectorError.malformed("\(key) is not an object: \(String(describing: value))")
        }
    }

    func enumeration<E: RawRepresentable>(_ key: String, _ type: E.Type) throws -> E where E.RawValue == UInt8 {
        let raw = try u64(key)
        guard let narrow = UInt8(exactly: raw), let value = E(rawValue: narrow) else {
            throw VectorError.malformed("\(key) = \(raw) is not a \(E.self)")
        }
        return value
    }

    func entry() throws -> Entry {
        Entry(term: try u64("Term"), index: try u64("Index"), type: try enumeration("Type", EntryType.self),
              data: try bytes("Data"))
    }

    func hardState() throws -> HardState {
        HardState(term: try u64("term"), vote: try u64("vote"), commit: try u64("commit"))
    }

    func confState() throws -> ConfState {
        ConfState(voters: try ids("voters"), learners: try ids("learners"), votersOutgoing: try ids("voters_outgoing"),
                  learnersNext: try ids("learners_next"), autoLeave: try bool("auto_leave"))
    }

    func snapshotMetadata() throws -> SnapshotMetadata {
        SnapshotMetadata(confState: try object("conf_state")?.confState() ?? ConfState(), index: try u64("index"),
                         term: try u64("term"))
    }

    func snapshot() throws -> Snapshot {
        Snapshot(data: try bytes("data"), metadata: try object("metadata")?.snapshotMetadata() ?? SnapshotMetadata())
    }

    func message() throws -> Message {
        var snapshot = try object("snapshot")?.snapshot()
        // etcd v3.4 always carries a snapshot; an empty one is our nil.
        if let snap = snapshot, snap.metadata.index == 0, snap.data.isEmpty { snapshot = nil }
        return Message(
            type: try enumeration("type", MessageType.self), to: try u64("to"), from: try u64("from"),
            term: try u64("term"), logTerm: try u64("logTerm"), index: try u64("index"),
            entries: try objects("entries").map { try $0.entry() }, commit: try u64("commit"),
            snapshot: snapshot, reject: try bool("reject"), rejectHint: try u64("rejectHint"),
            context: try bytes("context"))
    }

    func confChange() throws -> ConfChange {
        ConfChange(id: try u64("id"), type: try enumeration("type", ConfChangeType.self), nodeID: try u64("node_id"),
                   context: try bytes("context"))
    }

    func confChangeSingle() throws -> ConfChangeSingle {
        ConfChangeSingle(type: try enumeration("type", ConfChangeType.self), nodeID: try u64("node_id"))
    }

    func confChangeV2() throws -> ConfChangeV2 {
        ConfChangeV2(transition: try enumeration("transition", ConfChangeTransition.self),
                     changes: try objects("changes").map { try $0.confChangeSingle() }, context: try bytes("context"))
    }
}

/// Decodes `bytes` as the raftpb message `kind` names; nil for a kind these tests do not know.
func decoder(for kind: String) -> (([UInt8]) throws(ProtobufDecodingError) -> Void)? {
    switch kind {
    case "Entry": return { bytes throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: bytes) }
    case "Message": return { bytes throws(ProtobufDecodingError) in _ = try Message(serializedBytes: bytes) }
    case "HardState": return { bytes throws(ProtobufDecodingError) in _ = try HardState(serializedBytes: bytes) }
    case "ConfState": return { bytes throws(ProtobufDecodingError) in _ = try ConfState(serializedBytes: bytes) }
    case "SnapshotMetadata":
        return { bytes throws(ProtobufDecodingError) in _ = try SnapshotMetadata(serializedBytes: bytes) }
    case "Snapshot": return { bytes throws(ProtobufDecodingError) in _ = try Snapshot(serializedBytes: bytes) }
    case "ConfChange": return { bytes throws(ProtobufDecodingError) in _ = try ConfChange(serializedBytes: bytes) }
    case "ConfChangeSingle":
        return { bytes throws(ProtobufDecodingError) in _ = try ConfChangeSingle(serializedBytes: bytes) }
    case "ConfChangeV2": return { bytes throws(ProtobufDecodingError) in _ = try ConfChangeV2(serializedBytes: bytes) }
    default: return nil
    }
}
