import Benchmark
import Raft

/// The raftpb codec on the message that dominates a busy cluster: a leader's append (`MsgApp`)
/// carrying 1 or 64 entries of 128 bytes, as in the RawNode workloads. One scaled iteration is
/// one message, and `scalingFactor: .kilo` runs 1000 of them per measured iteration, so the `*`
/// figures are per message.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(3)
    )

    for count in [1, 64] {
        let message = appendMessage(entries: count)
        let bytes = message.serializedBytes()

        Benchmark("Message/encode/append \(count)x128B") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(message.serializedBytes())
            }
        }

        // The framing path of a transport: several messages into one reused buffer.
        Benchmark("Message/appendSerializedBytes/append \(count)x128B") { benchmark in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(bytes.count)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                buffer.removeAll(keepingCapacity: true)
                message.appendSerializedBytes(to: &buffer)
                blackHole(buffer.count)
            }
        }

        Benchmark("Message/decode/append \(count)x128B") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try Message(serializedBytes: bytes))
            }
        }
    }
}

/// What a leader at term 2 sends a follower that has everything up to index 100.
func appendMessage(entries count: Int) -> Message {
    let payload = [UInt8](repeating: 0x5A, count: 128)
    let entries = (0..<count).map { Entry(term: 2, index: UInt64(101 + $0), data: payload) }
    return Message(
        type: .append, to: 2, from: 1, term: 2, logTerm: 2, index: 100,
        entries: entries, commit: 100
    )
}
