import Logging
import NIOCore
import NIOEmbedded
import Raft
import Testing

@testable import RaftNIO

/// The frame decoder and the inbound rules, without sockets (EmbeddedChannel).
@Suite("Wire decoder")
struct WireDecoderTests {
    let preamble = Preamble(kind: .messages, clusterID: 7, from: 2, to: 1)

    func makeDecoderChannel(maxFrameSize: Int = 1024, expectsPreamble: Bool = true) throws -> EmbeddedChannel {
        EmbeddedChannel(handler: ByteToMessageHandler(WireDecoder(maxFrameSize: maxFrameSize, expectsPreamble: expectsPreamble)))
    }

    func encoded(_ frames: [OutboundFrame]) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { try FrameEncoder().encode(data: frame, out: &buffer) }
        return buffer
    }

    func message(_ index: UInt64) -> Message {
        Message(type: .append, to: 1, from: 2, term: 3, logTerm: 3, index: index,
                entries: [Entry(term: 3, index: index + 1, data: Array(repeating: UInt8(index & 0xff), count: 20))],
                commit: index)
    }

    func readAll(_ channel: EmbeddedChannel) throws -> [WireEvent] {
        var events: [WireEvent] = []
        while let event = try channel.readInbound(as: WireEvent.self) { events.append(event) }
        return events
    }

    @Test(.timeLimit(.minutes(1)))
    func partialFramesAcrossReadsAreReassembled() throws {
        let channel = try makeDecoderChannel()
        let messages = (0..<3).map { message(UInt64($0)) }
        var bytes = try encoded([.preamble(preamble), .messages(messages)])
        // One byte at a time: every split point of the preamble and of each frame.
        var events: [WireEvent] = []
        while let byte = bytes.readSlice(length: 1) {
            try channel.writeInbound(byte)
            events += try readAll(channel)
        }
        #expect(events.count == 4)
        #expect(events.first == .preamble(preamble))
        let decoded = try events.dropFirst().map { event -> Message in
            guard case .frame(let frame) = event, frame.kind == .message else { throw TestFailure("not a message frame") }
            return try Message(serializedBytes: Array(frame.payload.readableBytesView))
        }
        #expect(decoded == messages)
        #expect(try channel.finish().isClean)
    }

    @Test(.timeLimit(.minutes(1)))
    func severalFramesInOneReadAllComeOut() throws {
        let channel = try makeDecoderChannel(expectsPreamble: false)
        try channel.writeInbound(try encoded([.messages((0..<10).map { message(UInt64($0)) }), .snapshotEnd, .snapshotAck]))
        let events = try readAll(channel)
        #expect(events.count == 12)
        guard case .frame(let last) = events.last else { throw TestFailure("no frame") }
        #expect(last.kind == .snapshotAck && last.payload.readableBytes == 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func oversizedLengthIsRejectedBeforeThePayloadArrives() throws {
        let channel = try makeDecoderChannel(maxFrameSize: 1024, expectsPreamble: false)
        var header = ByteBuffer()
        header.writeInteger(UInt32(1025))  // only the length field: no payload has been sent
        #expect(throws: TransportProtocolError(.frameTooLarge(length: 1025, limit: 1024))) {
            try channel.writeInbound(header)
        }
        // A frame of exactly the limit is fine.
        let ok = try makeDecoderChannel(maxFrameSize: 1024, expectsPreamble: false)
        try ok.writeInbound(try encoded([.snapshotChunk(ArraySlice(repeating: 9, count: 1023))]))
        #expect(try readAll(ok).count == 1)
    }

    @Test(.timeLimit(.minutes(1)))
    func structuralGarbageIsRejected() throws {
        var wrongMagic = try encoded([.preamble(preamble)])
        wrongMagic.setInteger(UInt32(0x4745_5420), at: 0)  // "GET "
        #expect(throws: TransportProtocolError(.badMagic(0x4745_5420))) {
            try makeDecoderChannel().writeInbound(wrongMagic.getSlice(at: 0, length: 4)!)  // refused on 4 bytes
        }
        var wrongVersion = try encoded([.preamble(preamble)])
        wrongVersion.setInteger(UInt8(2), at: 4)
        #expect(throws: TransportProtocolError(.unsupportedVersion(2))) { try makeDecoderChannel().writeInbound(wrongVersion) }
        var wrongKind = try encoded([.preamble(preamble)])
        wrongKind.setInteger(UInt8(9), at: 5)
        #expect(throws: TransportProtocolError(.unknownStreamKind(9))) { try makeDecoderChannel().writeInbound(wrongKind) }
        var emptyFrame = ByteBuffer()
        emptyFrame.writeInteger(UInt32(0))
        #expect(throws: TransportProtocolError(.emptyFrame)) {
            try makeDecoderChannel(expectsPreamble: false).writeInbound(emptyFrame)
        }
        var unknownKind = ByteBuffer()
        unknownKind.writeInteger(UInt32(100))
        unknownKind.writeInteger(UInt8(42))
        #expect(throws: TransportProtocolError(.unknownFrameKind(42))) {
            try makeDecoderChannel(expectsPreamble: false).writeInbound(unknownKind)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func connectionEndingMidFrameIsReportedAsTruncated() throws {
        let channel = try makeDecoderChannel(expectsPreamble: false)
        var bytes = try encoded([.messages([message(1)])])
        try channel.writeInbound(bytes.readSlice(length: bytes.readableBytes - 1)!)
        #expect(try readAll(channel).isEmpty)
        #expect(throws: TransportProtocolError(.truncated)) { try channel.finish() }
    }
}

/// The decoder and the inbound handler together: what a listener does with what arrives.
@Suite("Inbound stream handler")
struct InboundStreamHandlerTests {
    final class Delivered: Sendable {
        let messages = Locked<[Message]>([])
        let refused = Locked<[PeerInputRefusal]>([])
    }

    /// A listener of node 1 in cluster 7 whose members are `members` (2 and 3 by default), with
    /// a 30 s idle period.
    func makeChannel(
        delivered: Delivered, maxSnapshotSize: Int = 1 << 20, logger: Logger = .quiet,
        directory: PeerDirectory? = nil
    ) throws -> EmbeddedChannel {
        let directory = directory ?? Self.directory([2, 3])
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(WireDecoder(maxFrameSize: 1024, expectsPreamble: true)),
            MessageToByteHandler(FrameEncoder()),
            InboundStreamHandler(
                clusterID: 7, localID: 1, maxSnapshotSize: maxSnapshotSize, handshakeTimeout: .seconds(10),
                idleTimeout: .seconds(30), directory: directory, logger: logger,
                deliver: { message in delivered.messages.withLock { $0.append(message) } },
                refused: { refusal in delivered.refused.withLock { $0.append(refusal) } }),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    static func directory(_ members: [UInt64]) -> PeerDirectory {
        let directory = PeerDirectory()
        for id in members { directory.add(id, address: TransportAddress(host: "127.0.0.1", port: 1)) }
        return directory
    }

    func bytes(_ frames: [OutboundFrame]) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { try FrameEncoder().encode(data: frame, out: &buffer) }
        return buffer
    }

    @Test(.timeLimit(.minutes(1)))
    func goodMessagesAreDeliveredInOrder() throws {
        let delivered = Delivered()
        let channel = try makeChannel(delivered: delivered)
        let messages = [Message(type: .heartbeat, to: 1, from: 2, term: 4, commit: 9),
                        Message(type: .vote, to: 1, from: 2, term: 5, logTerm: 4, index: 10)]
        try channel.writeInbound(bytes([.preamble(Preamble(kind: .messages, clusterID: 7, from: 2, to: 1)), .messages(messages)]))
        #expect(delivered.messages.withLock { $0 } == messages)
        #expect(channel.isActive)
    }

    /// A follower forwards proposals, read requests and transfer requests to its leader as raft
    /// made them (and a former leader to the new one): `from` is the node that asked, which must
    /// be a member, not the node whose stream carries it.
    @Test(.timeLimit(.minutes(1)))
    func forwardedRequestsOfMembersAreDelivered() throws {
        let delivered = Delivered()
        let channel = try makeChannel(delivered: delivered)
        let forwarded = [Message(type: .transferLeader, to: 1, from: 3, term: 2),
                         Message(type: .readIndex, to: 1, from: 3, entries: [Entry(data: [1])]),
                         Message(type: .proposal, to: 1, from: 3, entries: [Entry(data: [2])]),
                         Message(type: .proposal, to: 1, from: 1, entries: [Entry(data: [3])])]
        try channel.writeInbound(bytes([.preamble(Preamble(kind: .messages, clusterID: 7, from: 2, to: 1)), .messages(forwarded)]))
        #expect(delivered.messages.withLock { $0 } == forwarded)
        #expect(delivered.refused.withLock { $0 }.isEmpty)
        #expect(channel.isActive)
    }

    /// A message the stream must not carry is dropped, reported and logged; the messages around
    /// it are delivered, and the stream stays open (a readIndex forwarded after a leader change
    /// used to close the whole stream, dropping what was queued behind it).
    @Test(.timeLimit(.minutes(1)), arguments: [
        ("sender mismatch", PeerInputRefusal.Reason.senderMismatch),
        ("forwarded for a stranger", .notAMember),
        ("wrong receiver", .wrongReceiver),
        ("local type", .wrongKind),
        ("snapshot on message stream", .wrongKind),
    ])
    func badMessagesAreDroppedAndTheStreamGoesOn(_ case: String, _ reason: PeerInputRefusal.Reason) throws {
        let delivered = Delivered()
        let lines = Locked<[(Logger.Level, String)]>([])
        let logger = Logger(label: "test", factory: { _ in CapturingLogHandler(lines: lines) })
        let channel = try makeChannel(delivered: delivered, logger: logger)
        let bad: Message
        switch `case` {
        case "sender mismatch": bad = Message(type: .heartbeat, to: 1, from: 3, term: 2)
        case "forwarded for a stranger": bad = Message(type: .proposal, to: 1, from: 77, entries: [Entry(data: [1])])
        case "wrong receiver": bad = Message(type: .heartbeat, to: 3, from: 2, term: 2)
        case "local type": bad = Message(type: .hup, to: 1, from: 2)
        default:
            bad = Message(type: .snapshot, to: 1, from: 2, term: 2,
                          snapshot: Snapshot(data: [1, 2, 3], metadata: SnapshotMetadata(index: 5, term: 1)))
        }
        let before = Message(type: .heartbeat, to: 1, from: 2, term: 2, commit: 1)
        let after = Message(type: .heartbeat, to: 1, from: 2, term: 2, commit: 2)
        try channel.writeInbound(bytes([.preamble(Preamble(kind: .messages, clusterID: 7, from: 2, to: 1)),
                                        .messages([before, bad, after])]))
        #expect(delivered.messages.withLock { $0 } == [before, after])
        #expect(delivered.refused.withLock { $0 } == [
            PeerInputRefusal(peer: 2, reason: reason, type: bad.type, from: bad.from, to: bad.to),
        ])
        #expect(channel.isActive)
        let warnings = lines.withLock { $0 }.filter { $0.0 == .warning }.map(\.1)
        #expect(warnings.count == 1 && warnings[0].hasPrefix("dropped a peer message: "))
    }

    /// A flood of bad messages is counted in full but logged only now and then.
    @Test(.timeLimit(.minutes(1)))
    func aFloodOfBadMessagesDoesNotFloodTheLog() throws {
        let delivered = Delivered()
        let lines = Locked<[(Logger.Level, String)]>([])
        let logger = Logger(label: "test", factory: { _ in CapturingLogHandler(lines: lines) })
        let channel = try makeChannel(delivered: delivered, logger: logger)
        try channel.writeInbound(bytes([.preamble(Preamble(kind: .messages, clusterID: 7, from: 2, to: 1))]))
        for _ in 0..<20 {
            try channel.writeInbound(bytes([.messages(Array(repeating: Message(type: .heartbeat, to: 1, from: 3, term: 2), count: 100))]))
        }
        #expect(delivered.refused.withLock { $0.count } == 2000)
        #expect(lines.withLock { $0 }.filter { $0.0 == .warning }.count == 12)  // 10, then the 1000th and 2000th
        #expect(channel.isActive)
    }

    /// Removing a member takes effect on its open stream: what it sends from then on is dropped.
    @Test(.timeLimit(.minutes(1)))
    func aRemovedPeersStreamDeliversNothingMore() throws {
        let delivered = Delivered()
        let directory = Self.directory([2, 3])
        let channel = try makeChannel(delivered: delivered, directory: directory)
        let m = Message(type: .heartbeat, to: 1, from: 2, term: 2)
        try channel.writeInbound(bytes([.preamble(Preamble(kind: .messages, clusterID: 7, from: 2, to: 1)), .messages([m])]))
        directory.remove(2)
        try channel.writeInbound(bytes([.messages([m])]))
        #expect(delivered.messages.withLock { $0 } == [m])
        #expect(delivered.refused.withLock { $0.map(\.reason) } == [.peerRemoved])
    }

    /// Each of these closes the connection and delivers nothing.
    @Test(.timeLimit(.minutes(1)), arguments: [
        "other cluster", "other receiver", "zero sender", "stranger", "malformed raftpb",
    ])
    func badStreamsAreClosedWithoutDelivering(_ case: String) throws {
        let delivered = Delivered()
        let lines = Locked<[(Logger.Level, String)]>([])
        let logger = Logger(label: "test", factory: { _ in CapturingLogHandler(lines: lines) })
        let channel = try makeChannel(delivered: delivered, logger: logger)
        var preamble = Preamble(kind: .messages, clusterID: 7, from: 2, to: 1)
        var payload = ByteBuffer()
        switch `case` {
        case "other cluster": preamble.clusterID = 8
        case "other receiver": preamble.to = 3
        case "zero sender": preamble.from = 0
        case "stranger": preamble.from = 77
        default:
            payload.writeFrameHeader(kind: .message, payloadSize: 3)
            payload.writeBytes([0x08, 0xff, 0xff])  // a truncated varint
        }
        var all = try bytes([.preamble(preamble)])
        all.writeImmutableBuffer(payload)
        // Valid messages after the offending bytes must not be delivered either.
        all.writeImmutableBuffer(try bytes([.messages([Message(type: .heartbeat, to: 1, from: preamble.from)])]))
        _ = try? channel.writeInbound(all)
        #expect(delivered.messages.withLock { $0 }.isEmpty)
        #expect(!channel.isActive)
        // One warning, saying why.
        let warnings = lines.withLock { $0 }.filter { $0.0 == .warning }.map(\.1)
        #expect(warnings.count == 1)
        #expect(warnings.first?.hasPrefix("refusing peer connection: ") == true)
        if `case` == "other cluster" { #expect(warnings.first?.contains("another cluster") == true) }
        if `case` == "stranger" { #expect(warnings.first?.contains("not a member") == true) }
    }

    @Test(.timeLimit(.minutes(1)))
    func silentConnectionIsRefusedAfterTheHandshakeTimeout() throws {
        let channel = try makeChannel(delivered: Delivered())
        var partial = ByteBuffer()
        Preamble(kind: .messages, clusterID: 7, from: 2, to: 1).write(to: &partial)
        try channel.writeInbound(partial.readSlice(length: 20)!)  // a stalled preamble
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
    }

    /// A stream that said who it is may stay quiet up to the idle timeout; then its peer is
    /// taken for dead and the stream closed (the peer redials when it has something to say).
    @Test(.timeLimit(.minutes(1)))
    func quietStreamIsClosedAfterTheIdleTimeout() throws {
        let delivered = Delivered()
        let quiet = try makeChannel(delivered: delivered)
        try quiet.writeInbound(bytes([.preamble(Preamble(kind: .messages, clusterID: 7, from: 2, to: 1))]))
        quiet.embeddedEventLoop.advanceTime(by: .seconds(20))
        try quiet.writeInbound(bytes([.messages([Message(type: .heartbeat, to: 1, from: 2, term: 1)])]))
        // The check at 30 s saw the frame; the one at 60 s sees nothing since.
        quiet.embeddedEventLoop.advanceTime(by: .seconds(39))
        #expect(quiet.isActive)
        quiet.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!quiet.isActive)
        #expect(delivered.messages.withLock { $0.count } == 1)
    }

    /// One inbound snapshot stream per peer: a second one while the first is open is refused
    /// (it would hold a second snapshot's memory); once the first closes, the next is accepted.
    @Test(.timeLimit(.minutes(1)))
    func oneSnapshotStreamPerPeer() throws {
        let directory = Self.directory([2, 3])
        let preamble = try bytes([.preamble(Preamble(kind: .snapshot, clusterID: 7, from: 2, to: 1))])
        let first = try makeChannel(delivered: Delivered(), directory: directory)
        try first.writeInbound(preamble)
        let second = try makeChannel(delivered: Delivered(), directory: directory)
        _ = try? second.writeInbound(preamble)
        #expect(first.isActive && !second.isActive)
        // Another peer's snapshot stream is not affected.
        let other = try makeChannel(delivered: Delivered(), directory: directory)
        try other.writeInbound(try bytes([.preamble(Preamble(kind: .snapshot, clusterID: 7, from: 3, to: 1))]))
        #expect(other.isActive)
        _ = try? first.close().wait()
        let third = try makeChannel(delivered: Delivered(), directory: directory)
        try third.writeInbound(preamble)
        #expect(third.isActive)
    }

    @Test(.timeLimit(.minutes(1)))
    func snapshotIsReassembledAcknowledgedAndSizeChecked() throws {
        let data = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var header = Message(type: .snapshot, to: 1, from: 2, term: 3,
                             snapshot: Snapshot(metadata: SnapshotMetadata(confState: ConfState(voters: [1, 2]), index: 50, term: 3)))
        let delivered = Delivered()
        let channel = try makeChannel(delivered: delivered)
        var frames: [OutboundFrame] = [.preamble(Preamble(kind: .snapshot, clusterID: 7, from: 2, to: 1)),
                                       .snapshotHeader(header, dataSize: UInt64(data.count))]
        for start in stride(from: 0, to: data.count, by: 1023) {
            frames.append(.snapshotChunk(data[start..<min(start + 1023, data.count)]))
        }
        frames.append(.snapshotEnd)
        try channel.writeInbound(bytes(frames))
        header.snapshot!.data = data
        #expect(delivered.messages.withLock { $0 } == [header])
        var ack = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(ack.readInteger(as: UInt32.self) == 1 && ack.readInteger(as: UInt8.self) == FrameKind.snapshotAck.rawValue)

        // Announced beyond the limit: refused at the header, before any data.
        let small = Delivered()
        let refusing = try makeChannel(delivered: small, maxSnapshotSize: 100)
        _ = try? refusing.writeInbound(bytes(Array(frames.prefix(2))))
        #expect(!refusing.isActive)
        #expect(small.messages.withLock { $0 }.isEmpty)

        // More chunk bytes than announced.
        let lying = Delivered()
        let lyingChannel = try makeChannel(delivered: lying)
        header.snapshot!.data = []
        _ = try? lyingChannel.writeInbound(bytes([frames[0], .snapshotHeader(header, dataSize: 10), .snapshotChunk(data[0..<11])]))
        #expect(!lyingChannel.isActive)
        #expect(lying.messages.withLock { $0 }.isEmpty)
    }
}
