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
    }

    func makeChannel(
        delivered: Delivered, maxSnapshotSize: Int = 1 << 20, logger: Logger = .quiet
    ) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(WireDecoder(maxFrameSize: 1024, expectsPreamble: true)),
            MessageToByteHandler(FrameEncoder()),
            InboundStreamHandler(
                clusterID: 7, localID: 1, maxSnapshotSize: maxSnapshotSize, handshakeTimeout: .seconds(10),
                logger: logger,
                deliver: { message in delivered.messages.withLock { $0.append(message) } }),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
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

    /// A follower forwards a transfer request to the leader as raft made it: `from` is the
    /// transferee, not the follower that sends it.
    @Test(.timeLimit(.minutes(1)))
    func forwardedTransferRequestIsDelivered() throws {
        let delivered = Delivered()
        let channel = try makeChannel(delivered: delivered)
        let forwarded = Message(type: .transferLeader, to: 1, from: 3)
        try channel.writeInbound(bytes([.preamble(Preamble(kind: .messages, clusterID: 7, from: 2, to: 1)), .messages([forwarded])]))
        #expect(delivered.messages.withLock { $0 } == [forwarded])
        #expect(channel.isActive)
    }

    /// Each of these closes the connection and delivers nothing.
    @Test(.timeLimit(.minutes(1)), arguments: [
        "other cluster", "other receiver", "zero sender", "malformed raftpb", "misaddressed", "local type",
        "snapshot on message stream",
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
        case "malformed raftpb":
            payload.writeFrameHeader(kind: .message, payloadSize: 3)
            payload.writeBytes([0x08, 0xff, 0xff])  // a truncated varint
        case "misaddressed":
            payload = try bytes([.messages([Message(type: .heartbeat, to: 1, from: 3)])])
        case "local type":
            payload = try bytes([.messages([Message(type: .hup, to: 1, from: 2)])])
        default:
            let snapshot = Snapshot(data: [1, 2, 3], metadata: SnapshotMetadata(index: 5, term: 1))
            payload = try bytes([.messages([Message(type: .snapshot, to: 1, from: 2, snapshot: snapshot)])])
        }
        var all = try bytes([.preamble(preamble)])
        all.writeImmutableBuffer(payload)
        // Valid messages after the offending bytes must not be delivered either.
        all.writeImmutableBuffer(try bytes([.messages([Message(type: .heartbeat, to: 1, from: 2)])]))
        _ = try? channel.writeInbound(all)
        #expect(delivered.messages.withLock { $0 }.isEmpty)
        #expect(!channel.isActive)
        // One warning, saying why.
        let warnings = lines.withLock { $0 }.filter { $0.0 == .warning }.map(\.1)
        #expect(warnings.count == 1)
        #expect(warnings.first?.hasPrefix("refusing peer connection: ") == true)
        if `case` == "other cluster" { #expect(warnings.first?.contains("another cluster") == true) }
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

        // A connection that did say who it is may stay quiet for as long as it likes.
        let quiet = try makeChannel(delivered: Delivered())
        var preamble = ByteBuffer()
        Preamble(kind: .messages, clusterID: 7, from: 2, to: 1).write(to: &preamble)
        try quiet.writeInbound(preamble)
        quiet.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(quiet.isActive)
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
