#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Histogram
import NIOCore
import NIOPosix
import Synchronization

/// One HTTP/1.1 connection of `flotilla bench` and the request loops of the clients that share
/// it, run in its channel handler on the connection's event loop: no task, no continuation, no
/// buffer copies per request, as in wrk. An HTTP client library's async machinery costs CPU per
/// request (measured: see Benchmarks/README.md), and on a machine shared with the servers under
/// test that CPU comes out of their throughput.
///
/// A connection sends one request at a time (no pipelining). Each client has at most one
/// request queued or in flight; its latency is measured from when it was queued, so clients
/// that outnumber connections see the wait for a free connection, as they would in a pool.
final class BenchConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    struct Pending {
        let began: NIODeadline
        let isRead: Bool
    }

    /// What a connection did, and the clients it leaves to the next connection.
    struct Outcome {
        var result = BenchEngine.LoopResult()
        /// Clients not done when the connection closed.
        var clients = 0
        /// Of their next requests, those already claimed from the limit.
        var claimed = 0
    }

    private let plan: BenchPlan
    private let host: String
    /// Clients not done yet: each has a request queued or in flight, or is between two.
    private var clients: Int
    /// Requests claimed by an earlier connection and not sent: queued first.
    private let claimed: Int
    private var queue = CircularBuffer<Pending>()
    private var inFlight: Pending?
    private var responses = BenchResponseParser()
    private var rng = SystemRandomNumberGenerator()
    private let done: BenchOutcomeBox
    private var result = BenchEngine.LoopResult()
    private var completed = false

    init(plan: BenchPlan, host: String, clients: Int, claimed: Int, done: BenchOutcomeBox) {
        self.plan = plan
        self.host = host
        self.clients = clients
        self.claimed = claimed
        self.done = done
    }

    func channelActive(context: ChannelHandlerContext) {
        for client in 0..<clients {
            if client < claimed { enqueue(isRead: plan.drawIsRead(using: &rng)) } else { enqueueNext() }
        }
        sendNext(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        let answered: [BenchResponseParser.Response]
        do {
            answered = try responses.feed(&bytes)
        } catch {
            if let request = inFlight {
                inFlight = nil
                record(request, failure: "a malformed response from \(host): \(error)")
                // Its client's next request goes to the next connection with the queue.
                enqueueNext()
            }
            context.close(promise: nil)
            return
        }
        for response in answered {
            guard let request = inFlight else { continue }
            inFlight = nil
            // A GET of a key not written yet is a 404, not a failure.
            let ok = (200..<300).contains(response.status) || (request.isRead && response.status == 404)
            record(request, failure: ok ? nil : "\(response.status) \(FlotillaHTTPClient.errorMessage(response.errorBody))")
            enqueueNext()
            sendNext(context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Nothing read for the idle handler's timeout: give up on the connection.
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    /// The connection is gone: the request in flight failed; the clients not done, and the
    /// requests queued for them, go to the next connection.
    func channelInactive(context: ChannelHandlerContext) {
        var claimedForNext = queue.count
        if let request = inFlight {
            inFlight = nil
            record(request, failure: "the connection to \(host) closed before the answer")
            if plan.claim() { claimedForNext += 1 } else { clients -= 1 }
        }
        complete(claimedForNext: claimedForNext)
    }

    /// Removed without going inactive (never became active): hand everything over.
    func handlerRemoved(context: ChannelHandlerContext) {
        complete(claimedForNext: queue.count)
    }

    private func complete(claimedForNext: Int) {
        guard !completed else { return }
        completed = true
        done.set(Outcome(result: result, clients: clients, claimed: claimedForNext))
    }

    private func record(_ request: Pending, failure: String?) {
        let micros = (NIODeadline.now() - request.began).nanoseconds / 1000
        result.requests += 1
        if request.isRead { result.reads += 1 } else { result.writes += 1 }
        if let failure {
            result.errors += 1
            plan.reportFailure(failure)
        } else {
            _ = result.histogram.record(UInt64(max(1, micros)))
        }
        plan.progress.completed.add(1, ordering: .relaxed)
    }

    /// Queues the next request of the client whose request just ended (or is starting), unless
    /// the run's limit is reached: then that client is done.
    private func enqueueNext() {
        guard plan.claim() else {
            clients -= 1
            return
        }
        enqueue(isRead: plan.drawIsRead(using: &rng))
    }

    private func enqueue(isRead: Bool) {
        queue.append(Pending(began: .now(), isRead: isRead))
    }

    private func sendNext(context: ChannelHandlerContext) {
        guard inFlight == nil else { return }
        guard let request = queue.popFirst() else {
            if clients == 0 { context.close(promise: nil) }  // every client is done
            return
        }
        inFlight = request
        let key = Int.random(in: 0..<plan.keySpace, using: &rng)
        context.writeAndFlush(wrapOutboundOut(plan.request(key: key, isRead: request.isRead, host: host, allocator: context.channel.allocator)), promise: nil)
    }
}

/// What every connection of a run shares: the request mix, the limit, the counters.
final class BenchPlan: Sendable {
    let progress: BenchProgress
    let readRatio: Double
    let keySpace: Int
    let api: BenchAPI
    let value: ByteBuffer
    let valueLength: String
    /// The keys as the API writes them: percent-encoded path segments, or base64 for etcd.
    private let keys: [String]
    /// The value in base64, for etcd.
    private let base64Value: String
    private let total: Int?
    private let deadline: NIODeadline?
    private let firstError: (@Sendable (String) -> Void)?

    init(configuration: BenchConfiguration, progress: BenchProgress, start: NIODeadline, firstError: (@Sendable (String) -> Void)?) {
        self.progress = progress
        readRatio = configuration.readRatio
        keySpace = configuration.keySpace
        value = ByteBuffer(repeating: UInt8(ascii: "v"), count: configuration.valueSize)
        valueLength = "\(configuration.valueSize)"
        api = configuration.api
        // Encoded once: the request loop only picks one.
        switch configuration.api {
        case .flotilla:
            keys = (0..<configuration.keySpace).map { percentEncodePathSegment(configuration.key($0).utf8) }
            base64Value = ""
        case .etcd:
            keys = (0..<configuration.keySpace).map { Data(configuration.key($0).utf8).base64EncodedString() }
            base64Value = Data(repeating: UInt8(ascii: "v"), count: configuration.valueSize).base64EncodedString()
        }
        switch configuration.limit {
        case .total(let n):
            total = n
            deadline = nil
        case .duration(let seconds):
            total = nil
            deadline = start + .nanoseconds(Int64(seconds * 1e9))
        }
        self.firstError = firstError
    }

    /// The bytes of a request for key `n`: `PUT`/`GET /v1/kv/KEY`, or for etcd `POST
    /// /v3/kv/put {"key","value"}` / `POST /v3/kv/range {"key"}`.
    func request(key n: Int, isRead: Bool, host: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 96 + keys[n].utf8.count + host.utf8.count + value.readableBytes + base64Value.utf8.count)
        switch api {
        case .flotilla:
            buffer.writeStaticString(isRead ? "GET /v1/kv/" : "PUT /v1/kv/")
            buffer.writeString(keys[n])
            buffer.writeStaticString(" HTTP/1.1\r\nHost: ")
            buffer.writeString(host)
            if isRead {
                buffer.writeStaticString("\r\n\r\n")
            } else {
                buffer.writeStaticString("\r\nContent-Length: ")
                buffer.writeString(valueLength)
                buffer.writeStaticString("\r\n\r\n")
                buffer.writeImmutableBuffer(value)
            }
        case .etcd:
            // {"key":"…"} or {"key":"…","value":"…"}
            let framing = #"{"key":""#.utf8.count + #""}"#.utf8.count
            let valueField = #"","value":""#.utf8.count + base64Value.utf8.count
            let bodyLength = framing + keys[n].utf8.count + (isRead ? 0 : valueField)
            buffer.writeStaticString(isRead ? "POST /v3/kv/range" : "POST /v3/kv/put")
            buffer.writeStaticString(" HTTP/1.1\r\nHost: ")
            buffer.writeString(host)
            buffer.writeStaticString("\r\nContent-Type: application/json\r\nContent-Length: ")
            buffer.writeString(String(bodyLength))
            buffer.writeStaticString("\r\n\r\n{\"key\":\"")
            buffer.writeString(keys[n])
            if !isRead {
                buffer.writeStaticString("\",\"value\":\"")
                buffer.writeString(base64Value)
            }
            buffer.writeStaticString("\"}")
        }
        return buffer
    }

    /// Whether the next request is a read, by the run's read ratio.
    func drawIsRead(using rng: inout some RandomNumberGenerator) -> Bool {
        readRatio > 0 && Double.random(in: 0..<1, using: &rng) < readRatio
    }

    /// Claims the right to send one more request: false once `--total` were claimed or
    /// `--duration` is over.
    func claim() -> Bool {
        if let total { return progress.started.add(1, ordering: .relaxed).newValue <= total }
        if let deadline { return NIODeadline.now() < deadline }
        return false
    }

    func reportFailure(_ message: String) {
        progress.errors.add(1, ordering: .relaxed)
        if !progress.reportedError.exchange(true, ordering: .relaxed) { firstError?(message) }
    }
}

/// Where a connection's handler leaves its `Outcome` (set on the event loop before the
/// channel's close future completes; read after).
final class BenchOutcomeBox: Sendable {
    private let value = Mutex<BenchConnectionHandler.Outcome?>(nil)

    func set(_ outcome: BenchConnectionHandler.Outcome) {
        value.withLock { $0 = outcome }
    }

    var outcome: BenchConnectionHandler.Outcome? { value.withLock { $0 } }
}

extension BenchConnectionHandler.Outcome: Sendable {}
