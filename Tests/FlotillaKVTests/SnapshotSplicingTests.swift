import Flotilla
import Foundation
import Testing
import RaftWAL

@testable import FlotillaKV

/// A snapshot spliced from the previous one must be, byte for byte, the store encoded whole:
/// replicas compare snapshots, and restore refuses anything out of order.
@Suite struct SnapshotSplicingTests {
    /// Keys that collide in their first 8 bytes, hold zero bytes, are prefixes of each other.
    private static func randomKey(_ rng: inout some RandomNumberGenerator) -> [UInt8] {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return Array("k\(Int.random(in: 0..<300, using: &rng))".utf8)
        case 1: return Array("/registry/".utf8) + (0..<Int.random(in: 0...3, using: &rng)).map { _ in UInt8.random(in: 0...2, using: &rng) }
        case 2: return (0..<Int.random(in: 1...9, using: &rng)).map { _ in UInt8.random(in: 0...1, using: &rng) }
        default: return [UInt8.random(in: 0...255, using: &rng)]
        }
    }

    private static func randomValue(_ rng: inout some RandomNumberGenerator) -> [UInt8] {
        // Empty values, and values long enough for a two-byte length varint.
        let length = [0, 1, 7, 64, 200][Int.random(in: 0..<5, using: &rng)]
        return (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// Rounds of random puts and deletes, a capture after each: every snapshot equals the store
    /// encoded whole at the capture, and all but the first were spliced.
    @Test(arguments: [1, 2, 3, 4])
    func splicedSnapshotsEqualWholeOnes(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var store = KeyValueStore()
        for _ in 0..<400 { store.apply(.put(key: Self.randomKey(&rng), value: Self.randomValue(&rng))) }
        for round in 0..<30 {
            let changes = [0, 1, 5, 50, 300][round % 5]
            for _ in 0..<changes {
                let key = Self.randomKey(&rng)
                if Int.random(in: 0..<3, using: &rng) == 0 {
                    store.apply(.delete(key: key))
                } else {
                    store.apply(.put(key: key, value: Self.randomValue(&rng)))
                }
            }
            let expected = store.snapshot()
            let capture = store.captureForSnapshot()
            #expect(capture.isSplice == (round > 0))
            let bytes = capture.encode()
            #expect(bytes == expected, "round \(round), \(changes) changes")
            #expect(try KeyValueStore(snapshot: bytes) == store)
        }
    }

    /// Captures a store, encodes the capture, and says whether it was spliced.
    private func snapshot(_ store: inout KeyValueStore) -> (bytes: [UInt8], spliced: Bool) {
        let capture = store.captureForSnapshot()
        return (capture.encode(), capture.isSplice)
    }

    /// Deleting every key, then filling the store again, through spliced snapshots.
    @Test func emptiedAndRefilled() throws {
        var store = KeyValueStore(Dictionary(uniqueKeysWithValues: (0..<50).map { ([UInt8($0)], [UInt8(1)]) }))
        #expect(snapshot(&store) == (store.snapshot(), false))
        for k in 0..<50 { store.apply(.delete(key: [UInt8(k)])) }
        store.apply(.delete(key: [200]))  // absent: changes nothing
        #expect(snapshot(&store) == (KeyValueStore().snapshot(), true))
        for k in 0..<60 { store.apply(.put(key: [UInt8(k), 0], value: [])) }
        #expect(snapshot(&store) == (store.snapshot(), true))
    }

    /// Copies of a store that go on separately each splice from the snapshot of the capture
    /// they share, which neither changes.
    @Test func copiesSpliceFromTheSameSnapshot() {
        var a = KeyValueStore([[1]: [1], [2]: [2]])
        _ = snapshot(&a)
        var b = a
        a.apply(.put(key: [3], value: [3]))
        b.apply(.put(key: [4], value: [4]))
        b.apply(.delete(key: [1]))
        #expect(snapshot(&a) == (a.snapshot(), true))
        #expect(snapshot(&b) == (b.snapshot(), true))
        #expect(a.snapshot() != b.snapshot())
    }

    /// A capture not encoded yet (or never: the node stopped, a newer snapshot came from the
    /// leader) leaves nothing to splice from: the next one is encoded whole.
    @Test func aCaptureNotEncodedBreaksTheChain() {
        var store = KeyValueStore([[1]: [1]])
        _ = snapshot(&store)
        store.apply(.put(key: [2], value: [2]))
        let pending = store.captureForSnapshot()
        store.apply(.delete(key: [1]))
        #expect(snapshot(&store) == (store.snapshot(), false))
        // Encoded late, the pending capture is still the store as it was then.
        #expect(pending.encode() == KeyValueStore([[1]: [1], [2]: [2]]).snapshot())
    }

    /// A restored store splices its first snapshot from the snapshot it was restored from.
    @Test func restoredStoresSpliceFromTheirSnapshot() throws {
        let original = KeyValueStore(Dictionary(uniqueKeysWithValues: (0..<100).map { (Array("key\($0)".utf8), [UInt8(7)]) }))
        var store = try KeyValueStore(snapshot: original.snapshot())
        store.apply(.put(key: Array("key5".utf8), value: [8]))
        store.apply(.put(key: Array("new".utf8), value: []))
        store.apply(.delete(key: Array("key77".utf8)))
        #expect(snapshot(&store) == (store.snapshot(), true))
    }

    /// A snapshot with a longer varint than needed restores, but is not spliced from: the next
    /// snapshot is encoded whole, in the shortest form.
    @Test func nonCanonicalSnapshotsAreNotSplicedFrom() throws {
        // One pair, key "a" with its length as a two-byte varint (0x81 0x00), value "b".
        var body: [UInt8] = Array("FKVS".utf8) + [1, 1, 0x81, 0x00, 0x61, 1, 0x62]
        let crc = CRC32C.checksum(body)
        body += [UInt8(crc & 0xff), UInt8(crc >> 8 & 0xff), UInt8(crc >> 16 & 0xff), UInt8(crc >> 24)]
        var store = try KeyValueStore(snapshot: body)
        #expect(store.value(forKey: Array("a".utf8)) == Array("b".utf8))
        store.apply(.put(key: [0x7a], value: []))
        let (bytes, spliced) = snapshot(&store)
        #expect(bytes == store.snapshot() && bytes != body && !spliced)
    }

    /// Past its limit the change log is dropped (it would keep values the store no longer
    /// has) and the next snapshot is encoded whole; the one after splices again.
    @Test func aLongChangeLogIsDropped() {
        var store = KeyValueStore([[1]: [1]])
        _ = snapshot(&store)
        for n in 0..<5_000 { store.apply(.put(key: [UInt8(n % 256), UInt8(n / 256)], value: [UInt8(n % 7)])) }
        #expect(snapshot(&store) == (store.snapshot(), false))
        store.apply(.delete(key: [1]))
        #expect(snapshot(&store) == (store.snapshot(), true))
    }
}

/// Spliced snapshots through a real node: every 5 entries, its WAL compacted behind them, then
/// restarted from its data directory — from the last spliced snapshot and the entries after it.
@Suite struct SplicedSnapshotsOnANodeTests {
    @Test(.timeLimit(.minutes(1))) func aRestartedNodeFindsEveryWrite() async throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var rng = SplitMix64(seed: 9)
        var expected: [[UInt8]: [UInt8]] = [:]
        let node = try HTTPAPITests.makeNode(directory: directory)
        try await node.start()
        try await node.waitForLeader(timeout: .seconds(10))
        for n in 0..<80 {
            let key = Array("k\(Int.random(in: 0..<20, using: &rng))".utf8)
            let command: KeyValueStore.Command
            if n % 4 == 3 {
                command = .delete(key: key)
                expected[key] = nil
            } else {
                let value = Array("v\(n)".utf8)
                command = .put(key: key, value: value)
                expected[key] = value
            }
            _ = try await node.apply(command.encoded()).get()
        }
        let store = KeyValueStore(expected)
        #expect(try await node.readLocal { $0 == store })
        let lastApplied = await node.status.appliedIndex
        await node.shutdown()

        let restarted = try HTTPAPITests.makeNode(directory: directory)
        try await restarted.start()
        #expect(await restarted.status.snapshotIndex > 0, "restored from a snapshot")
        try await restarted.waitUntilApplied(lastApplied, timeout: .seconds(10))
        #expect(try await restarted.readLocal { $0 == store })
        await restarted.shutdown()
    }
}

/// A small, seedable generator: the same seed gives the same workload.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
