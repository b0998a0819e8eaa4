import Testing
import Raft
import RaftWAL

@testable import FlotillaKV

@Suite struct KeyValueStoreTests {
    // MARK: Commands

    @Test func commandsEncodeAsDocumented() {
        let foo = Array("foo".utf8)
        #expect(KeyValueStore.Command.put(key: foo, value: Array("bar".utf8)).encoded() == [1, 1, 3, 0x66, 0x6f, 0x6f, 0x62, 0x61, 0x72])
        #expect(KeyValueStore.Command.delete(key: foo).encoded() == [1, 2, 3, 0x66, 0x6f, 0x6f])
    }

    @Test(arguments: [
        KeyValueStore.Command.put(key: [0], value: []),
        .put(key: Array("k".utf8), value: Array("v".utf8)),
        .delete(key: [0, 1, 2]),
    ])
    func commandsRoundTrip(_ command: KeyValueStore.Command) throws {
        #expect(try KeyValueStore.Command(decoding: command.encoded()) == command)
    }

    /// Lengths of two and three varint bytes.
    @Test func largeCommandsRoundTrip() throws {
        let put = KeyValueStore.Command.put(key: [UInt8](repeating: 0xff, count: 300), value: [UInt8](repeating: 7, count: 70_000))
        #expect(try KeyValueStore.Command(decoding: put.encoded()) == put)
        let delete = KeyValueStore.Command.delete(key: [UInt8](repeating: 9, count: 20_000))
        #expect(Array(delete.encoded().prefix(5)) == [1, 2, 0xa0, 0x9c, 0x01])
        #expect(try KeyValueStore.Command(decoding: delete.encoded()) == delete)
    }

    @Test func applyReportsWhatChanged() throws {
        var store = KeyValueStore()
        let k = Array("k".utf8)
        #expect(store.apply(.put(key: k, value: [1])) == .stored(replaced: false))
        #expect(store.apply(.put(key: k, value: [2])) == .stored(replaced: true))
        #expect(store.value(forKey: k) == [2])
        #expect(try store.apply(encoded: KeyValueStore.Command.delete(key: k).encoded()) == .deleted(existed: true))
        #expect(store.apply(.delete(key: k)) == .deleted(existed: false))
        #expect(store.value(forKey: k) == nil)
        #expect(store.count == 0)
    }

    @Test(arguments: [
        ([UInt8](), KeyValueStoreError.truncated(what: "command", field: "version", offset: 0)),
        ([1], .truncated(what: "command", field: "operation", offset: 1)),
        ([2, 1, 1, 0x61], .unsupportedVersion(what: "command", version: 2, supported: 1)),
        ([0, 1, 1, 0x61], .unsupportedVersion(what: "command", version: 0, supported: 1)),
        ([1, 3, 1, 0x61], .unknownOperation(3)),
        ([1, 0, 1, 0x61], .unknownOperation(0)),
        ([1, 1], .truncated(what: "command", field: "key length", offset: 2)),
        ([1, 1, 0x80], .truncated(what: "command", field: "key length", offset: 2)),
        ([1, 1, 5, 0x61], .truncated(what: "command", field: "key", offset: 2)),
        ([1, 1, 0x80, 0x01, 0x61], .truncated(what: "command", field: "key", offset: 2)),
        ([1, 1, 0], .emptyKey(what: "command", offset: 2)),
        ([1, 2, 0], .emptyKey(what: "command", offset: 2)),
        ([1, 2, 1, 0x61, 0x62], .trailingBytes(what: "delete command", count: 1)),
        ([1, 1] + [UInt8](repeating: 0x80, count: 10) + [0], .malformedVarint(what: "command", field: "key length", offset: 2)),
        ([1, 1] + [UInt8](repeating: 0xff, count: 9) + [0x02], .malformedVarint(what: "command", field: "key length", offset: 2)),
        ([1, 1] + [UInt8](repeating: 0xff, count: 9) + [0x01], .truncated(what: "command", field: "key", offset: 2)),
    ])
    func malformedCommandsThrow(_ bytes: [UInt8], _ expected: KeyValueStoreError) {
        #expect(throws: expected) { try KeyValueStore.Command(decoding: bytes) }
        var store = KeyValueStore([[1]: [1]])
        #expect(throws: expected) { try store.apply(encoded: bytes) }
        #expect(store == KeyValueStore([[1]: [1]]))
    }

    @Test func errorsSayWhatIsWrong() {
        let error = KeyValueStoreError.unsupportedVersion(what: "command", version: 2, supported: 1)
        #expect(error.description.contains("version 2"))
        #expect(KeyValueStoreError.checksumMismatch(stored: 1, computed: 2).description.contains("corrupt"))
    }

    // MARK: Snapshots

    @Test func snapshotRoundTrips() throws {
        var store = KeyValueStore()
        store.apply(.put(key: Array("alpha".utf8), value: Array("1".utf8)))
        store.apply(.put(key: [0xff, 0], value: []))
        store.apply(.put(key: [UInt8](repeating: 0x42, count: 200), value: [UInt8](repeating: 1, count: 5000)))
        store.apply(.put(key: [0], value: [0, 0, 0]))
        let bytes = store.snapshot()
        let restored = try KeyValueStore(snapshot: bytes)
        #expect(restored == store)
        #expect(restored.count == 4)

        var other = KeyValueStore([[9]: [9]])
        try other.restore(from: bytes)
        #expect(other == store)
    }

    @Test func emptySnapshotIsHeaderCountAndChecksum() throws {
        let bytes = KeyValueStore().snapshot()
        #expect(bytes.count == 4 + 1 + 1 + 4)
        #expect(Array(bytes.prefix(6)) == Array("FKVS".utf8) + [1, 0])
        #expect(try KeyValueStore(snapshot: bytes) == KeyValueStore())
    }

    @Test func snapshotsAreCanonical() {
        var a = KeyValueStore()
        var b = KeyValueStore()
        let keys: [[UInt8]] = (0..<200).map { [UInt8($0 % 256), UInt8($0 / 7)] }
        for k in keys { a.apply(.put(key: k, value: k)) }
        for k in keys.reversed() { b.apply(.put(key: k, value: k)) }
        b.apply(.put(key: [99, 99, 99], value: []))
        b.apply(.delete(key: [99, 99, 99]))
        #expect(a.snapshot() == b.snapshot())
    }

    /// Keys that share their first 8 bytes, hold zero bytes, or are prefixes of each other:
    /// the snapshot's order is still bytewise.
    @Test func snapshotOrderIsBytewise() throws {
        var generator = SystemRandomNumberGenerator()
        var keys: Set<[UInt8]> = [[0], [0, 0], [0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0], [0xff], [1, 0], [1]]
        let shared = Array("/registry/".utf8)
        while keys.count < 2_000 {
            let length = Int.random(in: 1...14, using: &generator)
            var key = (0..<length).map { _ in UInt8.random(in: 0...3, using: &generator) }
            if Bool.random(using: &generator) { key = shared + key }
            keys.insert(key)
        }
        let pairs = keys.shuffled().map { (key: $0, value: [UInt8]($0.prefix(2))) }
        let (order, _) = sortedOrder(count: pairs.count) { pairs[$0].key }
        let expected = keys.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(order.map { pairs[$0].key } == expected)
        // Restore accepts the snapshot (it refuses keys out of order) and gets every pair.
        let store = KeyValueStore(Dictionary(uniqueKeysWithValues: pairs.map { ($0.key, $0.value) }))
        let restored = try KeyValueStore(snapshot: store.snapshot())
        #expect(restored == store && restored.count == 2_000)
    }

    /// The body of a snapshot with a correct checksum appended.
    private func sealed(_ body: [UInt8]) -> [UInt8] {
        let crc = CRC32C.checksum(body)
        return body + [UInt8(crc & 0xff), UInt8(crc >> 8 & 0xff), UInt8(crc >> 16 & 0xff), UInt8(crc >> 24)]
    }

    private let header = Array("FKVS".utf8) + [1]

    @Test func malformedSnapshotsThrow() throws {
        let good = KeyValueStore([[1]: [2], [3]: [4]]).snapshot()

        #expect(throws: KeyValueStoreError.truncated(what: "snapshot", field: "header", offset: 0)) {
            try KeyValueStore(snapshot: [])
        }
        #expect(throws: KeyValueStoreError.truncated(what: "snapshot", field: "header", offset: 0)) {
            try KeyValueStore(snapshot: Array(good.prefix(9)))
        }
        var badMagic = good
        badMagic[0] = UInt8(ascii: "X")
        #expect(throws: KeyValueStoreError.badMagic(found: Array("XKVS".utf8))) { try KeyValueStore(snapshot: badMagic) }

        var newer = good
        newer[4] = 2
        #expect(throws: KeyValueStoreError.unsupportedVersion(what: "snapshot", version: 2, supported: 1)) {
            try KeyValueStore(snapshot: newer)
        }

        // Every single bit flip after the header is caught by the checksum.
        for i in 5..<good.count {
            for bit in 0..<8 {
                var flipped = good
                flipped[i] ^= 1 << bit
                #expect(throws: KeyValueStoreError.self) { try KeyValueStore(snapshot: flipped) }
            }
        }
        var truncated = good
        truncated.removeLast()
        #expect(throws: KeyValueStoreError.self) { try KeyValueStore(snapshot: truncated) }

        // Structurally wrong, correctly checksummed.
        #expect(throws: KeyValueStoreError.implausibleCount(1000, remainingBytes: 4)) {
            try KeyValueStore(snapshot: sealed(header + [0xe8, 0x07, 1, 1, 1, 1]))
        }
        #expect(throws: KeyValueStoreError.truncated(what: "snapshot", field: "value", offset: 8)) {
            try KeyValueStore(snapshot: sealed(header + [1, 1, 0x61, 5, 1, 1]))
        }
        #expect(throws: KeyValueStoreError.emptyKey(what: "snapshot", offset: 6)) {
            try KeyValueStore(snapshot: sealed(header + [1, 0, 1, 1, 1]))
        }
        #expect(throws: KeyValueStoreError.keysOutOfOrder(pairIndex: 1)) {
            try KeyValueStore(snapshot: sealed(header + [2, 1, 0x62, 0, 1, 0x61, 0]))
        }
        #expect(throws: KeyValueStoreError.keysOutOfOrder(pairIndex: 1)) {
            try KeyValueStore(snapshot: sealed(header + [2, 1, 0x61, 0, 1, 0x61, 0]))
        }
        #expect(throws: KeyValueStoreError.trailingBytes(what: "snapshot", count: 3)) {
            try KeyValueStore(snapshot: sealed(header + [1, 1, 0x61, 0, 9, 9, 9]))
        }
        #expect(throws: KeyValueStoreError.malformedVarint(what: "snapshot", field: "pair count", offset: 5)) {
            try KeyValueStore(snapshot: sealed(header + [UInt8](repeating: 0xff, count: 11)))
        }
    }

    @Test func failedRestoreLeavesTheStoreAlone() {
        var store = KeyValueStore([[1]: [1]])
        var snapshot = KeyValueStore([[2]: [2]]).snapshot()
        snapshot[snapshot.count - 1] ^= 0xff
        #expect(throws: KeyValueStoreError.self) { try store.restore(from: snapshot) }
        #expect(store == KeyValueStore([[1]: [1]]))
    }

    /// Random input, and random input behind a valid header and checksum (so that it reaches the
    /// parser), never traps: it decodes or it throws.
    @Test func randomBytesNeverTrap() {
        var rng = SplitMix64(seed: 0x5eed)
        var decodedCommands = 0
        for round in 0..<20_000 {
            let length = Int(rng.next() % 64)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if round % 2 == 0, !bytes.isEmpty {
                bytes[0] = 1  // a valid version, to get past the first check
                if bytes.count > 1 { bytes[1] = UInt8(1 + rng.next() % 2) }
            }
            if (try? KeyValueStore.Command(decoding: bytes)) != nil { decodedCommands += 1 }
            _ = try? KeyValueStore(snapshot: bytes)
            _ = try? KeyValueStore(snapshot: sealed(header + bytes))
        }
        #expect(decodedCommands > 0)
    }
}

