import NIOCore

/// Splits a connection's bytes into the preamble (when `expectsPreamble`) and frames.
///
/// Only structure is checked here (magic, version, stream kind, frame length and kind); what
/// the frames mean, and whether this peer may send them, is `InboundStreamStateMachine`'s
/// business. Errors are thrown, which makes `ByteToMessageHandler` fire `errorCaught` and the
/// stream handler close the connection.
///
/// The length limit is checked as soon as the four length bytes arrive, before the decoder
/// waits for the payload: a peer cannot make this node buffer more than one frame limit.
public struct WireDecoder: ByteToMessageDecoder {
    public typealias InboundOut = WireEvent

    enum State {
        case awaitingPreamble
        case frames
    }

    private var state: State
    private let maxFrameSize: Int

    /// - Parameters:
    ///   - maxFrameSize: the largest accepted frame length (kind + payload).
    ///   - expectsPreamble: true on the listening side, false for the dialler reading acks.
    public init(maxFrameSize: Int, expectsPreamble: Bool) {
        precondition(maxFrameSize >= 1 && maxFrameSize <= Int(UInt32.max), "maxFrameSize must fit a u32 length")
        self.maxFrameSize = maxFrameSize
        self.state = expectsPreamble ? .awaitingPreamble : .frames
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let event = try next(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(event))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while let event = try next(from: &buffer) {
            context.fireChannelRead(wrapInboundOut(event))
        }
        // Bytes left over are half a preamble or half a frame: say so, for the log line.
        if buffer.readableBytes > 0 { throw TransportProtocolError(.truncated) }
        return .needMoreData
    }

    /// The decoding step without a channel, so it can be unit-tested and reasoned about alone.
    mutating func next(from buffer: inout ByteBuffer) throws(TransportProtocolError) -> WireEvent? {
        switch state {
        case .awaitingPreamble:
            guard let preamble = try Preamble.read(from: &buffer) else { return nil }
            state = .frames
            return .preamble(preamble)
        case .frames:
            guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
            guard length > 0 else { throw TransportProtocolError(.emptyFrame) }
            guard Int(length) <= maxFrameSize else {
                throw TransportProtocolError(.frameTooLarge(length: length, limit: maxFrameSize))
            }
            // The kind is known as soon as it arrives: refuse an unknown one before its payload.
            guard let rawKind = buffer.getInteger(at: buffer.readerIndex + FrameLayout.lengthFieldSize, as: UInt8.self) else {
                return nil
            }
            guard let kind = FrameKind(rawValue: rawKind) else { throw TransportProtocolError(.unknownFrameKind(rawKind)) }
            guard buffer.readableBytes >= FrameLayout.lengthFieldSize + Int(length) else { return nil }
            buffer.moveReaderIndex(forwardBy: FrameLayout.lengthFieldSize + FrameLayout.kindSize)
            let payload = buffer.readSlice(length: Int(length) - FrameLayout.kindSize)!
            return .frame(Frame(kind: kind, payload: payload))
        }
    }
}
