import Foundation
import Testing
@testable import Raft
import RaftTestKit

@Suite struct CodecTests {
    // MARK: Vectors

    /// Decodes `bytes`, compares with `expected`, and re-encodes to exactly `bytes`.
    func check<T: RaftProtobuf>(_ vector: Vector, _ expected: T) throws {
        let decoded = try T(serializedBytes: vector.bytes)
        #expect(decoded == expected, "vector \(vector.name): decoded \(decoded), expected \(expected)")
        #expect(hexString(decoded.serializedBytes()) == hexString(vector.bytes), "vector \(vector.name) re-encoded")
        #expect(hexString(expected.serializedBytes()) == hexString(vector.bytes), "vector \(vector.name) encoded")
        #expect(expected.serializedSize == vector.bytes.count, "vector \(vector.name) size")
    }

    @Test func everyEtcdVectorDecodesAndReencodesByteForByte() throws {
        let vectors = try loadVectors()
        #expect(!vectors.isEmpty)
        var tested = 0
        for vector in vectors {
            let value = JSONFields(fields: vector.value)
            switch vector.kind {
            case "Entry": try check(vector, try value.entry())
            case "Message": try check(vector, try value.message())
            case "HardState": try check(vector, try value.hardState())
            case "ConfState": try check(vector, try value.confState())
            case "SnapshotMetadata": try check(vector, try value.snapshotMetadata())
            case "Snapshot": try check(vector, try value.snapshot())
            case "ConfChange": try check(vector, try value.confChange())
            case "ConfChangeSingle": try check(vector, try value.confChangeSingle())
            case "ConfChangeV2": try check(vector, try value.confChangeV2())
            default:
                Issue.record("vector \(vector.name) has kind \(vector.kind), which this test does not handle")
                continue
            }
            tested += 1
        }
        #expect(tested == vectors.count)
    }

    /// Every prefix of every vector: a prefix that ends between two top-level fields is a valid
    /// (shorter) message; any other cut lands inside a varint or a length-delimited payload and
    /// must throw `.truncated`.
    @Test func everyTruncationOfEveryVectorThrowsTruncatedOrDecodes() throws {
        let vectors = try loadVectors()
        var prefixes = 0
        for vector in vectors {
            guard let decode = decoder(for: vector.kind) else {
                Issue.record("vector \(vector.name) has kind \(vector.kind), which this test does not handle")
                continue
            }
            // Where each top-level field ends.
            var boundaries: Set<Int> = [0]
            var reader = ProtobufReader(vector.bytes, messageType: "test")
            while let tag = try reader.nextTag() {
                try reader.skip(tag)
                boundaries.insert(reader.offset)
            }
            #expect(boundaries.contains(vector.bytes.count))
            for length in 0...vector.bytes.count {
                prefixes += 1
                let prefix = Array(vector.bytes.prefix(length))
                if boundaries.contains(length) {
                    #expect(throws: Never.self, "vector \(vector.name) cut at \(length)") { try decode(prefix) }
                } else if let error = decodingError({ () throws(ProtobufDecodingError) in try decode(prefix) }) {
                    #expect(error.kind == .truncated, "vector \(vector.name) cut at \(length): \(error)")
                    #expect(error.offset <= length)
                }
            }
        }
        #expect(prefixes > 500)
    }

    // MARK: Round trips

    func roundTrip<T: RaftProtobuf>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let bytes = value.serializedBytes()
        #expect(bytes.count == value.serializedSize, sourceLocation: sourceLocation)
        #expect(try T(serializedBytes: bytes) == value, sourceLocation: sourceLocation)
        var framed: [UInt8] = [0xAA, 0xBB]
        value.appendSerializedBytes(to: &framed)
        #expect(framed == [0xAA, 0xBB] + bytes, sourceLocation: sourceLocation)
    }

    static let big = UInt64.max
    static let someBytes: [UInt8] = Array(0...255)
    static let fullConfState = ConfState(
        voters: [1, big, 300], learners: [4, 1 << 63], votersOutgoing: [1, 2, 5], learnersNext: [big], autoLeave: true)

    @Test func entriesRoundTrip() throws {
        for type in EntryType.allCases {
            try roundTrip(Entry(term: 0, index: 0, type: type))
            try roundTrip(Entry(term: Self.big, index: Self.big, type: type, data: Self.someBytes))
            try roundTrip(Entry(term: 1 << 35, index: 127, type: type, data: [0]))
        }
        try roundTrip(Entry(data: [UInt8](repeating: 7, count: 70_000)))
        // The size the flow control charges is the encoded size.
        let entry = Entry(term: Self.big, index: 300, data: Self.someBytes)
        #expect(Int(entry.byteSize) == entry.serializedBytes().count)
    }

    @Test func messagesRoundTrip() throws {
        let snapshot = Snapshot(data: [1, 2, 3], metadata: SnapshotMetadata(confState: Self.fullConfState, index: Self.big, term: 9))
        for type in MessageType.allCases {
            try roundTrip(Message(type: type))
            try roundTrip(Message(
                type: type, to: Self.big, from: Self.big, term: Self.big, logTerm: Self.big, index: Self.big,
                entries: [Entry(), Entry(term: Self.big, index: Self.big, type: .confChangeV2, data: Self.someBytes)],
                commit: Self.big, snapshot: snapshot, reject: true, rejectHint: Self.big, context: Self.someBytes))
        }
        // A snapshot at index 0 that still carries something is kept.
        try roundTrip(Message(type: .snapshot, snapshot: Snapshot(data: [9])))
        try roundTrip(Message(type: .snapshot, snapshot: Snapshot(metadata: SnapshotMetadata(term: 2))))
        for confState in [ConfState(voters: [1]), ConfState(learners: [2]), ConfState(votersOutgoing: [3]),
                          ConfState(learnersNext: [4]), ConfState(autoLeave: true)] {
            try roundTrip(Message(type: .snapshot, snapshot: Snapshot(metadata: SnapshotMetadata(confState: confState))))
        }
        // An empty snapshot is what etcd writes for "none": it decodes to nil.
        let none = Message(type: .append, to: 2, snapshot: Snapshot())
        #expect(none.serializedBytes() == Message(type: .append, to: 2).serializedBytes())
        #expect(try Message(serializedBytes: none.serializedBytes()).snapshot == nil)
    }

    @Test func statesRoundTrip() throws {
        try roundTrip(HardState())
        try roundTrip(HardState(term: Self.big, vote: Self.big, commit: Self.big))
        try roundTrip(ConfState())
        try roundTrip(Self.fullConfState)
        try roundTrip(ConfState(voters: Array(1...200), autoLeave: false))
        try roundTrip(SnapshotMetadata())
        try roundTrip(SnapshotMetadata(confState: Self.fullConfState, index: Self.big, term: Self.big))
        try roundTrip(Snapshot())
        try roundTrip(Snapshot(data: Self.someBytes, metadata: SnapshotMetadata(confState: Self.fullConfState, index: 1, term: 1)))
        try roundTrip(Snapshot(data: [UInt8](repeating: 0xEE, count: 1 << 17)))
    }

    @Test func confChangesRoundTrip() throws {
        for type in ConfChangeType.allCases {
            try roundTrip(ConfChange(type: type))
            try roundTrip(ConfChange(id: Self.big, type: type, nodeID: Self.big, context: Self.someBytes))
            try roundTrip(ConfChangeSingle(type: type, nodeID: 0))
            try roundTrip(ConfChangeSingle(type: type, nodeID: Self.big))
        }
        for transition in ConfChangeTransition.allCases {
            try roundTrip(ConfChangeV2(transition: transition))
            try roundTrip(ConfChangeV2(
                transition: transition,
                changes: ConfChangeType.allCases.map { ConfChangeSingle(type: $0, nodeID: Self.big) }
                    + [ConfChangeSingle(type: .addNode, nodeID: 0)],
                context: Self.someBytes))
        }
        // A conf change travels inside an entry's data.
        let change = ConfChangeV2(transition: .jointExplicit, changes: [ConfChangeSingle(type: .addLearnerNode, nodeID: 4)])
        let entry = Entry(term: 2, index: 3, type: .confChangeV2, data: change.serializedBytes())
        let decoded = try Entry(serializedBytes: entry.serializedBytes())
        #expect(try ConfChangeV2(serializedBytes: decoded.data) == change)
    }

    @Test func encodingMatchesEtcdFieldRules() {
        // Zero scalars are written; empty bytes are not.
        #expect(hexString(Entry().serializedBytes()) == "080010001800")
        #expect(hexString(ConfChange().serializedBytes()) == "080010001800")
        #expect(hexString(ConfChangeSingle(type: .addNode, nodeID: 0).serializedBytes()) == "08001000")
        #expect(hexString(ConfChangeV2().serializedBytes()) == "0800")
        #expect(hexString(ConfState().serializedBytes()) == "2800")
        #expect(hexString(SnapshotMetadata().serializedBytes()) == "0a02280010001800")
        #expect(hexString(Snapshot().serializedBytes()) == "12080a02280010001800")
        #expect(hexString(HardState(term: Self.big).serializedBytes()) == "08ffffffffffffffffff0110001800")
        // The snapshot (field 9) is always written, as an empty Snapshot when there is none.
        #expect(hexString(Message(type: .hup).serializedBytes())
            == "0800100018002000280030004000" + "4a0a12080a02280010001800" + "50005800")
    }

    // MARK: Lenient decoding

    @Test func absentFieldsDecodeToDefaults() throws {
        #expect(try Entry(serializedBytes: []) == Entry())
        #expect(try Message(serializedBytes: []) == Message(type: .hup))
        #expect(try HardState(serializedBytes: []) == HardState())
        #expect(try ConfState(serializedBytes: []) == ConfState())
        #expect(try SnapshotMetadata(serializedBytes: []) == SnapshotMetadata())
        #expect(try Snapshot(serializedBytes: []) == Snapshot())
        #expect(try ConfChange(serializedBytes: []) == ConfChange())
        #expect(try ConfChangeSingle(serializedBytes: []) == ConfChangeSingle(type: .addNode, nodeID: 0))
        #expect(try ConfChangeV2(serializedBytes: []) == ConfChangeV2())
        // Only some fields present.
        #expect(try Entry(serializedBytes: hexBytes("1805")) == Entry(index: 5))
        #expect(try Message(serializedBytes: hexBytes("0803 1002")) == Message(type: .append, to: 2))
    }

    @Test func fieldsMayComeInAnyOrder() throws {
        #expect(try Entry(serializedBytes: hexBytes("22026869 1805 1003 0801"))
            == Entry(term: 3, index: 5, type: .confChange, data: Array("hi".utf8)))
        #expect(try ConfChange(serializedBytes: hexBytes("2201ff 1804 1002 0807"))
            == ConfChange(id: 7, type: .updateNode, nodeID: 4, context: [0xff]))
        // Snapshot before entries, context first, type last.
        let message = try Message(serializedBytes: hexBytes(
            "620178 4a06 12040a022801 3a021805 5801 5001 0807"))
        #expect(message == Message(
            type: .snapshot, entries: [Entry(index: 5)],
            snapshot: Snapshot(metadata: SnapshotMetadata(confState: ConfState(autoLeave: true))),
            reject: true, rejectHint: 1, context: [0x78]))
        #expect(try SnapshotMetadata(serializedBytes: hexBytes("1803 1002 0a020801"))
            == SnapshotMetadata(confState: ConfState(voters: [1]), index: 2, term: 3))
    }

    @Test func repeatedIdsMayBePackedOrUnpacked() throws {
        // Packed voters (with a two-byte varint), unpacked learners, then more packed voters.
        let state = try ConfState(serializedBytes: hexBytes("0a0401ac0203 1004 1005 0a0107 1a00 22020809 2801"))
        #expect(state == ConfState(voters: [1, 300, 3, 7], learners: [4, 5], learnersNext: [8, 9], autoLeave: true))
        // A packed run cut inside a varint is truncated, not silently shortened.
        let error = decodingError { () throws(ProtobufDecodingError) in _ = try ConfState(serializedBytes: hexBytes("0a0201ac 2800")) }
        #expect(error?.kind == .truncated)
    }

    @Test func unknownFieldsOfEveryWireTypeAreSkipped() throws {
        let unknowns = [
            "7896 01",  // 15: varint
            "79 0102030405060708",  // 15: fixed64
            "7a 03aabbcc",  // 15: bytes
            "7d 01020304",  // 15: fixed32
            "7b 0801 8301 7a00 8401 7c",  // 15: group holding a varint and a nested group 16
            "f8ffffff0f 00",  // the highest field number, 2^29-1
            "a0 06 ffffffffffffffffff01",  // 100: a 10-byte varint
        ].map(hexBytes)
        let state = HardState(term: 5, vote: 2, commit: 42)
        let encoded = state.serializedBytes()
        for unknown in unknowns {
            #expect(try HardState(serializedBytes: unknown + encoded) == state, "\(hexString(unknown))")
            #expect(try HardState(serializedBytes: encoded + unknown) == state, "\(hexString(unknown))")
            #expect(try HardState(serializedBytes: Array(encoded[0..<2]) + unknown + Array(encoded[2...])) == state)
            #expect(try ConfChangeSingle(serializedBytes: unknown) == ConfChangeSingle(type: .addNode, nodeID: 0))
        }
        // Inside nested messages too: a Snapshot's metadata's conf state, within a Message.
        let allUnknown = unknowns.reduce([], +)
        let confState = hexBytes("0801") + allUnknown + hexBytes("2801")
        let metadata = hexBytes("0a") + varint(confState.count) + confState + allUnknown + hexBytes("1007")
        let snapshot = allUnknown + hexBytes("12") + varint(metadata.count) + metadata
        let message = hexBytes("0807") + allUnknown + hexBytes("4a") + varint(snapshot.count) + snapshot
        #expect(snapshot.count > 127)  // two-byte lengths are exercised too
        #expect(try Message(serializedBytes: message) == Message(
            type: .snapshot,
            snapshot: Snapshot(metadata: SnapshotMetadata(confState: ConfState(voters: [1], autoLeave: true), index: 7))))
    }

    @Test func repeatedScalarsLastWinsAndEmbeddedMessagesMerge() throws {
        #expect(try HardState(serializedBytes: hexBytes("0801 0802 1003 0809")) == HardState(term: 9, vote: 3))
        #expect(try Entry(serializedBytes: hexBytes("2201aa 2202bbcc")) == Entry(data: [0xbb, 0xcc]))
        // Two snapshot fields merge: data from the first, metadata from the second.
        let message = try Message(serializedBytes: hexBytes("0807 4a03 0a0101 4a08 12060a020801 1003"))
        #expect(message.snapshot == Snapshot(data: [1], metadata: SnapshotMetadata(confState: ConfState(voters: [1]), index: 3)))
        // Two conf_state fields merge their repeated ids.
        #expect(try SnapshotMetadata(serializedBytes: hexBytes("0a020801 0a040802 2801"))
            == SnapshotMetadata(confState: ConfState(voters: [1, 2], autoLeave: true)))
    }

    @Test func boolsAcceptAnyNonzeroVarint() throws {
        #expect(try ConfState(serializedBytes: hexBytes("2802")).autoLeave)
        #expect(try ConfState(serializedBytes: hexBytes("28ffffffffffffffffff01")).autoLeave)
        #expect(try !ConfState(serializedBytes: hexBytes("2801 2800")).autoLeave)
        #expect(try Message(serializedBytes: hexBytes("5080 01")).reject)
        // They re-encode canonically.
        #expect(try hexString(ConfState(serializedBytes: hexBytes("2805")).serializedBytes()) == "2801")
    }

    // MARK: Errors

    @Test func truncatedVarintThrows() {
        let error = decodingError { () throws(ProtobufDecodingError) in _ = try HardState(serializedBytes: hexBytes("0805 1096")) }
        #expect(error?.kind == .truncated)
        #expect(error?.offset == 3)
        #expect(error?.messageType == "raftpb.HardState")
        #expect(error?.description == "raftpb.HardState: truncated varint at offset 3 — the input is not a valid raftpb.HardState")
        // Ending right after a tag is also a truncated varint.
        #expect(decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("0800 10")) }?.kind == .truncated)
        // A multi-byte tag cut short.
        let tag = decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("f8ff")) }
        #expect(tag?.kind == .truncated)
        #expect(tag?.description.contains("truncated tag at offset 0") == true)
        // Fixed-width unknown fields cut short.
        #expect(decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("79 01020304")) }?.kind == .truncated)
        #expect(decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("7d 0102")) }?.kind == .truncated)
    }

    @Test func varintsLongerThanTenBytesThrow() throws {
        let eleven = decodingError { () throws(ProtobufDecodingError) in
            _ = try HardState(serializedBytes: hexBytes("08 ffffffffffffffffffff01"))
        }
        #expect(eleven?.kind == .varintOverflow)
        #expect(eleven?.offset == 1)
        #expect(decodingError { () throws(ProtobufDecodingError) in
            _ = try HardState(serializedBytes: hexBytes("08 8080808080808080808001"))
        }?.kind == .varintOverflow)
        // Ten bytes whose last one carries more than the 64th bit.
        #expect(decodingError { () throws(ProtobufDecodingError) in
            _ = try HardState(serializedBytes: hexBytes("08 ffffffffffffffffff02"))
        }?.kind == .varintOverflow)
        // An over-long tag and length.
        #expect(decodingError { () throws(ProtobufDecodingError) in
            _ = try Entry(serializedBytes: hexBytes("ffffffffffffffffffff01"))
        }?.kind == .varintOverflow)
        #expect(decodingError { () throws(ProtobufDecodingError) in
            _ = try Entry(serializedBytes: hexBytes("22 ffffffffffffffffffff01"))
        }?.kind == .varintOverflow)
        // The longest valid varint, and a padded (non-minimal) one, decode.
        #expect(try HardState(serializedBytes: hexBytes("08 ffffffffffffffffff01")).term == UInt64.max)
        #expect(try HardState(serializedBytes: hexBytes("08 8180808080808080 8000")).term == 1)
    }

    @Test func lengthsBeyondTheEndThrow() {
        // Past the end of the input: the input is truncated.
        let past = decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("0800 2205 6162")) }
        #expect(past?.kind == .truncated)
        #expect(past?.offset == 3)
        #expect(past?.description.contains("truncated length-delimited field at offset 3") == true)
        #expect(decodingError { () throws(ProtobufDecodingError) in
            _ = try Entry(serializedBytes: hexBytes("22 ffffffffffffffff7f"))
        }?.kind == .truncated)
        #expect(decodingError { () throws(ProtobufDecodingError) in
            _ = try Entry(serializedBytes: hexBytes("22 ffffffffffffffffff01 00"))
        }?.kind == .truncated)
        // Past the end of the embedded message that holds it, though within the input.
        let nested = decodingError { () throws(ProtobufDecodingError) in
            _ = try Message(serializedBytes: hexBytes("4a03 0a05 61 6263646566"))
        }
        #expect(nested?.kind == .lengthOutOfBounds(length: 5))
        #expect(nested?.offset == 3)
        #expect(nested?.messageType == "raftpb.Snapshot")
        #expect(nested?.decodedType == "raftpb.Message")
        #expect(nested?.description.contains("raftpb.Snapshot (in raftpb.Message)") == true)
        // A varint running past its embedded message is truncated.
        #expect(decodingError { () throws(ProtobufDecodingError) in
            _ = try Message(serializedBytes: hexBytes("3a02 1096 01"))
        }?.kind == .truncated)
        // A fixed-width unknown field running past its embedded message, though within the input.
        let fixed = decodingError { () throws(ProtobufDecodingError) in
            _ = try Message(serializedBytes: hexBytes("4a03 79 0102 030405060708"))
        }
        #expect(fixed?.kind == .truncated)
        #expect(fixed?.offset == 3)
        #expect(fixed?.messageType == "raftpb.Snapshot")
        // A packed run longer than the message.
        #expect(decodingError { () throws(ProtobufDecodingError) in
            _ = try SnapshotMetadata(serializedBytes: hexBytes("0a02 0a05 0102030405"))
        }?.kind == .lengthOutOfBounds(length: 5))
    }

    @Test func invalidWireTypesThrow() throws {
        for (hex, wireType) in [("0e", UInt8(6)), ("0f", 7), ("7e00", 6), ("0800 ff01", 7)] {
            let error = decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes(hex)) }
            #expect(error?.kind == .invalidWireType(wireType), "\(hex)")
            #expect(error?.description.contains("invalid wire type \(wireType)") == true)
        }
        // A known field with a wire type that cannot carry it.
        let wrong = decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("1200")) }
        #expect(wrong?.kind == .wrongWireType(field: 2, wireType: 2))
        #expect(decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("2000")) }?.kind
            == .wrongWireType(field: 4, wireType: 0))
        #expect(decodingError { () throws(ProtobufDecodingError) in _ = try Message(serializedBytes: hexBytes("4d00000000")) }?.kind
            == .wrongWireType(field: 9, wireType: 5))
        #expect(decodingError { () throws(ProtobufDecodingError) in _ = try ConfState(serializedBytes: hexBytes("0d00000000")) }?.kind
            == .wrongWireType(field: 1, wireType: 5))
        // Groups: an end without a start, a mismatched end, one never closed, and runaway nesting.
        #expect(decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("7c")) }?.kind == .nesting)
        #expect(decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("7b 74")) }?.kind == .nesting)
        #expect(decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("7b 0801")) }?.kind == .truncated)
        let deep = [UInt8](repeating: 0x7b, count: 100) + [UInt8](repeating: 0x7c, count: 100)
        #expect(decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: deep) }?.kind == .nesting)
        let shallow = [UInt8](repeating: 0x7b, count: 30) + [UInt8](repeating: 0x7c, count: 30)
        #expect(try Entry(serializedBytes: shallow) == Entry())
    }

    @Test func invalidFieldNumbersThrow() {
        for hex in ["0001", "0200", "0800 0500000000"] {
            let error = decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes(hex)) }
            #expect(error?.kind == .invalidFieldNumber(0), "\(hex)")
        }
        // 2^29 is one past the highest field number.
        let high = decodingError { () throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: hexBytes("8080808010 00")) }
        #expect(high?.kind == .invalidFieldNumber(1 << 29))
        #expect(high?.description.contains("invalid field number 536870912 at offset 0") == true)
    }

    @Test func unknownEnumValuesThrow() {
        let cases: [(String, ([UInt8]) throws(ProtobufDecodingError) -> Void, Int, Int64)] = [
            ("0807", { b throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: b) }, 1, 7),
            ("088002", { b throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: b) }, 1, 256),
            ("08ffffffffffffffffff01", { b throws(ProtobufDecodingError) in _ = try Entry(serializedBytes: b) }, 1, -1),
            ("0863", { b throws(ProtobufDecodingError) in _ = try Message(serializedBytes: b) }, 1, 99),
            ("0813", { b throws(ProtobufDecodingError) in _ = try Message(serializedBytes: b) }, 1, 19),
            ("1004", { b throws(ProtobufDecodingError) in _ = try ConfChange(serializedBytes: b) }, 2, 4),
            ("0809", { b throws(ProtobufDecodingError) in _ = try ConfChangeSingle(serializedBytes: b) }, 1, 9),
            ("0803", { b throws(ProtobufDecodingError) in _ = try ConfChangeV2(serializedBytes: b) }, 1, 3),
        ]
        for (hex, decode, field, value) in cases {
            let error = decodingError { () throws(ProtobufDecodingError) in try decode(hexBytes(hex)) }
            #expect(error?.kind == .unknownEnumValue(field: field, value: value), "\(hex)")
        }
        // Nested: an entry of unknown type inside a message.
        let nested = decodingError { () throws(ProtobufDecodingError) in
            _ = try Message(serializedBytes: hexBytes("0803 3a02 0807"))
        }
        #expect(nested?.kind == .unknownEnumValue(field: 1, value: 7))
        #expect(nested?.messageType == "raftpb.Entry")
        #expect(nested?.offset == 4)
        #expect(nested?.description
            == "raftpb.Entry (in raftpb.Message): unknown enum value 7 in field 1 at offset 4 — the input is not a valid raftpb.Message")
    }

    @Test func descriptionsNameTheTypeAndOffset() throws {
        let vectors = try loadVectors()
        let message = try #require(vectors.first { $0.kind == "Message" })
        let cut = Array(message.bytes.prefix(17))
        let error = try #require(decodingError { () throws(ProtobufDecodingError) in _ = try Message(serializedBytes: cut) })
        #expect(error.description.hasPrefix("raftpb.Message: truncated"))
        #expect(error.description.contains("at offset \(error.offset)"))
        #expect(error.description.contains("not a valid raftpb.Message"))
        let hard = decodingError { () throws(ProtobufDecodingError) in _ = try HardState(serializedBytes: hexBytes("0801 0f")) }
        #expect(hard?.description == "raftpb.HardState: invalid wire type 7 at offset 2 — the input is not a valid raftpb.HardState")
    }

    // MARK: Robustness

    /// Decodes `input` as `T`: it must either throw or give a value whose encoding decodes to the
    /// same value and re-encodes to the same bytes. Returns whether it decoded.
    @discardableResult
    static func probe<T: RaftProtobuf>(_ type: T.Type, _ input: [UInt8], failures: inout [String]) -> Bool {
        let value: T
        do {
            value = try T(serializedBytes: input)
        } catch {
            return false
        }
        let encoded = value.serializedBytes()
        if encoded.count != value.serializedSize {
            failures.append("\(T.self) \(hexString(input)): size \(value.serializedSize) but \(encoded.count) bytes")
        }
        do {
            let again = try T(serializedBytes: encoded)
            if again != value || again.serializedBytes() != encoded {
                failures.append("\(T.self) \(hexString(input)): re-decoded to a different value")
            }
        } catch {
            failures.append("\(T.self) \(hexString(input)): re-encoding does not decode: \(error)")
        }
        return true
    }

    /// Bytes that look like raftpb fields more often than uniform noise does.
    static func protobufLikeBytes(_ rng: inout SplitMix64, count: Int) -> [UInt8] {
        (0..<count).map { _ in
            switch rng.int(below: 6) {
            case 0: return rng.byte()
            case 1: return UInt8(rng.int(below: 13) + 1) << 3 | UInt8(rng.element(of: [0, 0, 2, 2, 1, 5, 3, 4]))  // tags
            case 2: return UInt8(rng.int(below: 10))  // lengths and small values
            case 3: return rng.element(of: [0x80, 0xff, 0x01, 0x7f])  // varint continuations
            default: return UInt8(rng.int(below: 4))  // enum values and bools
            }
        }
    }

    static func fuzzRandom<T: RaftProtobuf>(
        _ type: T.Type, count: Int, rng: inout SplitMix64, failures: inout [String]
    ) -> (inputs: Int, decoded: Int) {
        var decoded = 0
        for round in 0..<count {
            let length = rng.int(below: 65)
            let input = round % 2 == 0 ? rng.bytes(length) : protobufLikeBytes(&rng, count: length)
            if probe(type, input, failures: &failures) { decoded += 1 }
        }
        return (count, decoded)
    }

    static func mutate(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var result = bytes
        for _ in 0..<(1 + rng.int(below: 3)) {
            switch rng.int(below: 5) {
            case 0 where !result.isEmpty:  // flip a bit
                let position = rng.int(below: result.count)
                result[position] ^= 1 << UInt8(rng.int(below: 8))
            case 1:  // truncate
                result = Array(result.prefix(rng.int(below: result.count + 1)))
            case 2:  // insert a byte
                result.insert(rng.byte(), at: rng.int(below: result.count + 1))
            case 3 where !result.isEmpty:  // delete a byte
                result.remove(at: rng.int(below: result.count))
            default:  // overwrite a byte
                if !result.isEmpty { result[rng.int(below: result.count)] = rng.byte() }
            }
        }
        return result
    }

    static func fuzzMutations<T: RaftProtobuf>(
        _ seeds: [T], perSeed: Int, rng: inout SplitMix64, failures: inout [String]
    ) -> (inputs: Int, decoded: Int) {
        var inputs = 0
        var decoded = 0
        for seed in seeds {
            let bytes = seed.serializedBytes()
            for _ in 0..<perSeed {
                inputs += 1
                if probe(T.self, mutate(bytes, &rng), failures: &failures) { decoded += 1 }
            }
        }
        return (inputs, decoded)
    }

    static func randomEntry(_ rng: inout SplitMix64) -> Entry {
        Entry(term: rng.u64(), index: rng.u64(), type: rng.element(of: EntryType.allCases), data: rng.bytes(rng.int(below: 5)))
    }

    static func randomConfState(_ rng: inout SplitMix64) -> ConfState {
        ConfState(voters: (0..<rng.int(below: 4)).map { _ in rng.u64() }, learners: (0..<rng.int(below: 3)).map { _ in rng.u64() },
                  votersOutgoing: (0..<rng.int(below: 3)).map { _ in rng.u64() }, learnersNext: (0..<rng.int(below: 2)).map { _ in rng.u64() },
                  autoLeave: rng.int(below: 2) == 0)
    }

    static func randomSnapshot(_ rng: inout SplitMix64) -> Snapshot {
        Snapshot(data: rng.bytes(rng.int(below: 4)),
                 metadata: SnapshotMetadata(confState: randomConfState(&rng), index: rng.u64() | 1, term: rng.u64()))
    }

    static func randomMessage(_ rng: inout SplitMix64) -> Message {
        Message(type: rng.element(of: MessageType.allCases), to: rng.u64(), from: rng.u64(), term: rng.u64(), logTerm: rng.u64(),
                index: rng.u64(), entries: (0..<rng.int(below: 3)).map { _ in randomEntry(&rng) }, commit: rng.u64(),
                snapshot: rng.int(below: 3) == 0 ? randomSnapshot(&rng) : nil, reject: rng.int(below: 2) == 0,
                rejectHint: rng.u64(), context: rng.bytes(rng.int(below: 3)))
    }

    static func randomConfChangeV2(_ rng: inout SplitMix64) -> ConfChangeV2 {
        ConfChangeV2(transition: rng.element(of: ConfChangeTransition.allCases),
                     changes: (0..<rng.int(below: 4)).map { _ in ConfChangeSingle(type: rng.element(of: ConfChangeType.allCases), nodeID: rng.u64()) },
                     context: rng.bytes(rng.int(below: 3)))
    }

    @Test func randomAndMutatedInputsNeverTrap() throws {
        var rng = SplitMix64(seed: 0x5EED_F107_111A)
        var failures: [String] = []
        var random = 0
        var mutated = 0
        var decoded = 0
        func add(_ result: (inputs: Int, decoded: Int), to total: inout Int) {
            total += result.inputs
            decoded += result.decoded
        }
        let perType = 34_000
        add(Self.fuzzRandom(Entry.self, count: perType, rng: &rng, failures: &failures), to: &random)
        add(Self.fuzzRandom(Message.self, count: perType, rng: &rng, failures: &failures), to: &random)
        add(Self.fuzzRandom(HardState.self, count: perType, rng: &rng, failures: &failures), to: &random)
        add(Self.fuzzRandom(ConfState.self, count: perType, rng: &rng, failures: &failures), to: &random)
        add(Self.fuzzRandom(SnapshotMetadata.self, count: perType, rng: &rng, failures: &failures), to: &random)
        add(Self.fuzzRandom(Snapshot.self, count: perType, rng: &rng, failures: &failures), to: &random)
        add(Self.fuzzRandom(ConfChange.self, count: perType, rng: &rng, failures: &failures), to: &random)
        add(Self.fuzzRandom(ConfChangeSingle.self, count: perType, rng: &rng, failures: &failures), to: &random)
        add(Self.fuzzRandom(ConfChangeV2.self, count: perType, rng: &rng, failures: &failures), to: &random)

        // Mutations of valid encodings: the vectors' values and random values of every type.
        let seeds = 60
        let perSeed = 250
        add(Self.fuzzMutations((0..<seeds).map { _ in Self.randomEntry(&rng) }, perSeed: perSeed, rng: &rng, failures: &failures), to: &mutated)
        add(Self.fuzzMutations((0..<seeds).map { _ in Self.randomMessage(&rng) }, perSeed: perSeed, rng: &rng, failures: &failures), to: &mutated)
        add(Self.fuzzMutations((0..<seeds).map { _ in HardState(term: rng.u64(), vote: rng.u64(), commit: rng.u64()) },
                               perSeed: perSeed, rng: &rng, failures: &failures), to: &mutated)
        add(Self.fuzzMutations((0..<seeds).map { _ in Self.randomConfState(&rng) }, perSeed: perSeed, rng: &rng, failures: &failures), to: &mutated)
        add(Self.fuzzMutations((0..<seeds).map { _ in Self.randomSnapshot(&rng).metadata }, perSeed: perSeed, rng: &rng, failures: &failures), to: &mutated)
        add(Self.fuzzMutations((0..<seeds).map { _ in Self.randomSnapshot(&rng) }, perSeed: perSeed, rng: &rng, failures: &failures), to: &mutated)
        add(Self.fuzzMutations((0..<seeds).map { _ in ConfChange(id: rng.u64(), type: rng.element(of: ConfChangeType.allCases), nodeID: rng.u64(), context: rng.bytes(rng.int(below: 4))) },
                               perSeed: perSeed, rng: &rng, failures: &failures), to: &mutated)
        add(Self.fuzzMutations((0..<seeds).map { _ in ConfChangeSingle(type: rng.element(of: ConfChangeType.allCases), nodeID: rng.u64()) },
                               perSeed: perSeed, rng: &rng, failures: &failures), to: &mutated)
        add(Self.fuzzMutations((0..<seeds).map { _ in Self.randomConfChangeV2(&rng) }, perSeed: perSeed, rng: &rng, failures: &failures), to: &mutated)
        for vector in try loadVectors() {
            for _ in 0..<1_000 {
                mutated += 1
                let input = Self.mutate(vector.bytes, &rng)
                let ok: Bool
                switch vector.kind {
                case "Entry": ok = Self.probe(Entry.self, input, failures: &failures)
                case "Message": ok = Self.probe(Message.self, input, failures: &failures)
                case "HardState": ok = Self.probe(HardState.self, input, failures: &failures)
                case "ConfState": ok = Self.probe(ConfState.self, input, failures: &failures)
                case "SnapshotMetadata": ok = Self.probe(SnapshotMetadata.self, input, failures: &failures)
                case "Snapshot": ok = Self.probe(Snapshot.self, input, failures: &failures)
                case "ConfChange": ok = Self.probe(ConfChange.self, input, failures: &failures)
                case "ConfChangeSingle": ok = Self.probe(ConfChangeSingle.self, input, failures: &failures)
                case "ConfChangeV2": ok = Self.probe(ConfChangeV2.self, input, failures: &failures)
                default:
                    Issue.record("vector \(vector.name) has kind \(vector.kind), which this test does not handle")
                    ok = false
                }
                if ok { decoded += 1 }
            }
        }

        #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(5))")
        #expect(random >= 300_000)
        #expect(mutated >= 150_000)
        // The inputs must exercise both outcomes, or the fuzzing proves little.
        #expect(decoded > 10_000)
        #expect(random + mutated - decoded > 100_000)
    }
}
