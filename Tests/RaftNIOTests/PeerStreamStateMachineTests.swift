import NIOCore
import NIOEmbedded
import Raft
import Testing

@testable import RaftNIO

/// The outbound stream's rules, driven directly: queueing, coalescing, failure, backoff.
@Suite("Peer stream state machine")
struct PeerStreamStateMachineTests {
    let address = TransportAddress(host: "127.0.0.1", port: 1)

    func makeMachine(capacity: Int = 100) -> PeerStreamStateMachine {
        PeerStreamStateMachine(
            address: address, capacity: capacity,
            backoff: Backoff(minimum: .milliseconds(100), maximum: .milliseconds(1000), jitter: .fixed(1)))
    }

    func heartbeats(_ range: Range<Int>) -> [Message] {
        range.map { Message(type: .heartbeat, to: 2, from: 1, commit: UInt64($0)) }
    }

    @Test(.timeLimit(.minutes(1)))
    func messagesQueuedDuringAWriteLeaveTogether() throws {
        var machine = makeMachine()
        let (_, dial) = machine.enqueue(heartbeats(0..<3))
        guard case .connect(let generation, _) = dial else { throw TestFailure("expected a dial, got \(dial)") }
        #expect(machine.enqueue(heartbeats(3..<5)).action.isNone)  // still dialling: queued
        let channel = EmbeddedChannel()
        guard case .write(_, _, let first) = machine.connected(channel, generation: generation) else {
            throw TestFailure("expected a write")
        }
        #expect(first.map(\.commit) == Array(0..<5))
        // While that write is in flight, three sends queue up ...
        for range in [5..<6, 6..<8, 8..<10] { #expect(machine.enqueue(heartbeats(range)).action.isNone) }
        // ... and leave as one write when it completes.
        guard case .write(_, _, let second) = machine.writeCompleted(generation: generation) else {
            throw TestFailure("expected a coalesced write")
        }
        #expect(second.map(\.commit) == Array(5..<10))
        #expect(machine.writeCompleted(generation: generation).isNone)
    }

    @Test(.timeLimit(.minutes(1)))
    func fullQueueDropsAndFailureBacksOffExponentially() throws {
        var machine = makeMachine(capacity: 4)
        let (dropped, dial) = machine.enqueue(heartbeats(0..<10))
        #expect(dropped == 6)
        guard case .connect(var generation, _) = dial else { throw TestFailure("expected a dial") }
        var delays: [Int64] = []
        for _ in 0..<5 {
            guard case .failed(let lost, let delay, _) = machine.connectionFailed(generation: generation) else {
                throw TestFailure("expected a failure")
            }
            #expect(lost == 4 || lost == 1)
            delays.append(delay.nanoseconds / 1_000_000)
            #expect(machine.enqueue(heartbeats(0..<1)).action.isNone)  // queued during the backoff
            guard case .connect(let next, _) = machine.backoffElapsed(generation: generation) else {
                throw TestFailure("expected a redial")
            }
            generation = next
        }
        #expect(delays == [100, 200, 400, 800, 1000])
        // A stale callback from an older dial changes nothing.
        #expect(machine.connectionFailed(generation: generation - 1).isNone)
    }

    @Test(.timeLimit(.minutes(1)))
    func jitterScalesIntoTheUpperHalf() {
        var backoff = Backoff(minimum: .milliseconds(100), maximum: .seconds(10), jitter: .fixed(0))
        #expect(backoff.nextDelay() == .milliseconds(50))
        #expect(backoff.nextDelay() == .milliseconds(100))
        backoff.reset()
        #expect(backoff.nextDelay() == .milliseconds(50))
    }
}

extension PeerStreamStateMachine.Action {
    var isNone: Bool {
        if case .none = self { return true }
        return false
    }
}
