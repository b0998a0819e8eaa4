import Testing
@testable import Raft

// The inflight window of one follower (etcd's tracker/inflights_test.go): a ring of
// (last index, bytes) that fills by count or by bytes and frees as acknowledgements arrive.

/// The indices in flight, oldest first, read through the ring.
private func inFlight(_ f: Inflights) -> [UInt64] {
    (0..<f.count).map { f.buffer[(f.start + $0) % f.capacity].index }
}

@Suite struct InflightsTests {
    @Test func addFillsUpToCapacity() {
        var f = Inflights(capacity: 10)
        for i in 0..<5 { f.add(index: UInt64(i), bytes: 100) }
        #expect(f.count == 5 && !f.isFull && f.bytes == 500)
        #expect(inFlight(f) == [0, 1, 2, 3, 4])
        for i in 5..<10 { f.add(index: UInt64(i), bytes: 100) }
        #expect(f.count == 10 && f.isFull)
        #expect(inFlight(f) == Array(0..<10))
    }

    @Test func theRingGrowsLazily() {
        var f = Inflights(capacity: 1000)
        for i in 0..<3 { f.add(index: UInt64(i), bytes: 1) }
        // An idle or slow follower does not cost a full window of slots.
        #expect(f.buffer.count == 3)
    }

    @Test func addWrapsAroundTheRing() {
        var f = Inflights(capacity: 10)
        for i in 0..<10 { f.add(index: UInt64(i), bytes: 1) }
        f.freeLE(4)
        #expect(f.count == 5 && f.start == 5 && !f.isFull)
        // The next five go into the freed slots at the front of the buffer.
        for i in 10..<15 { f.add(index: UInt64(i), bytes: 1) }
        #expect(f.isFull && f.buffer.count == 10)
        #expect(inFlight(f) == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
        f.freeLE(12)
        #expect(inFlight(f) == [13, 14] && f.start == 3 && f.bytes == 2)
        f.freeLE(14)
        // Empty: the ring restarts at slot 0.
        #expect(f.count == 0 && f.start == 0 && f.bytes == 0)
    }

    @Test func freeLEFreesEverythingAtOrBelow() {
        var f = Inflights(capacity: 10)
        for i in 0..<10 { f.add(index: UInt64(i), bytes: 10) }
        f.freeLE(0)
        #expect(inFlight(f) == Array(1..<10) && f.bytes == 90)
        f.freeLE(4)
        #expect(inFlight(f) == Array(5..<10) && f.bytes == 50)
        // Stale acknowledgements (below the oldest in flight) free nothing.
        f.freeLE(3)
        #expect(f.count == 5 && f.bytes == 50)
        // Beyond the newest: everything.
        f.freeLE(100)
        #expect(f.count == 0 && f.bytes == 0)
        // On an empty window it is a no-op.
        f.freeLE(200)
        #expect(f.count == 0)
    }

    @Test func freeLEBetweenIndicesFreesTheOlderOnes() {
        // Messages carry ranges: the window holds each message's last index.
        var f = Inflights(capacity: 4)
        for last in [3, 7, 12] as [UInt64] { f.add(index: last, bytes: 1) }
        f.freeLE(9)
        #expect(inFlight(f) == [12])
    }

    @Test func freeFirstOneLetsOneMoreGo() {
        var f = Inflights(capacity: 10)
        for i in 0..<10 { f.add(index: UInt64(i), bytes: 1) }
        #expect(f.isFull)
        f.freeFirstOne()
        #expect(inFlight(f) == Array(1..<10) && !f.isFull)
        f.add(index: 10, bytes: 1)
        #expect(f.isFull)
        var empty = Inflights(capacity: 2)
        empty.freeFirstOne()
        #expect(empty.count == 0)
    }

    @Test func resetForgetsEverything() {
        var f = Inflights(capacity: 3, maxBytes: 100)
        for i in 0..<3 { f.add(index: UInt64(i), bytes: 40) }
        #expect(f.isFull)
        f.reset()
        #expect(f.count == 0 && f.bytes == 0 && f.start == 0 && !f.isFull)
        f.add(index: 7, bytes: 40)
        #expect(inFlight(f) == [7])
    }

    @Test func theByteLimitFillsTheWindowBeforeTheCount() {
        var f = Inflights(capacity: 10, maxBytes: 250)
        f.add(index: 1, bytes: 100)
        f.add(index: 2, bytes: 100)
        #expect(!f.isFull && f.bytes == 200)
        // The window may overshoot by one message: it is full once the bytes reach the limit.
        f.add(index: 3, bytes: 100)
        #expect(f.isFull && f.count == 3 && f.bytes == 300)
        f.freeLE(1)
        #expect(!f.isFull && f.bytes == 200)
        f.add(index: 4, bytes: 50)
        #expect(f.isFull && f.bytes == 250)
    }

    @Test func noByteLimitWhenMaxBytesIsZero() {
        var f = Inflights(capacity: 3)
        f.add(index: 1, bytes: .max / 4)
        f.add(index: 2, bytes: .max / 4)
        #expect(!f.isFull)
        f.add(index: 3, bytes: 1)
        #expect(f.isFull)
    }

    @Test func aFullWindowPausesAReplicatingProgress() {
        var pr = Progress(id: 2, match: 5, next: 6, inflights: Inflights(capacity: 2))
        pr.becomeReplicate()
        pr.inflights.add(index: 6, bytes: 1)
        #expect(!pr.isPaused)
        pr.inflights.add(index: 7, bytes: 1)
        #expect(pr.isPaused)
        pr.inflights.freeLE(6)
        #expect(!pr.isPaused)
        // Leaving replicate empties the window.
        pr.becomeProbe()
        #expect(pr.inflights.count == 0)
    }
}
