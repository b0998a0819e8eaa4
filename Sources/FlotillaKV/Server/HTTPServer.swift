import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import ServiceLifecycle
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// MARK: - The application

/// The `flotilla serve` HTTP application: the API's routes on `address`, with `services` (the
/// `FlotillaNode`) run beside the HTTP server and shut down after it. Each connection answers
/// the key routes through `KeyRouteHandler` and everything else through the router; with
/// `tls`, inside TLS.
public func makeApplication<Replica: KeyValueReplica>(
    api: HTTPAPI<Replica>, services: [any Service], address: BindAddress, tls: APITLS? = nil,
    limits: ClientConnectionLimits = ClientConnectionLimits(), logger: Logger
) -> some ApplicationProtocol {
    let serverName = "flotilla"
    return Application(
        router: api.makeRouter(),
        server: HTTPServerBuilder { responder in
            KeyValueHTTP1Channel(base: HTTP1Channel(responder: responder), tls: tls, limits: limits, logger: logger) {
                KeyRouteHandler(api: api, serverName: serverName, logger: logger)
            }
        },
        configuration: ApplicationConfiguration(
            address: address, serverName: serverName,
            // At the limit the listener stops accepting: connections wait in the backlog, holding
            // none of the node's descriptors, which stay free for its WAL and snapshots.
            availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections, logger: logger)),
        services: services,
        logger: logger)
}

/// Hummingbird's HTTP/1 connection with `KeyRouteHandler` between NIO's HTTP/1 codec and
/// Hummingbird's (`HTTP1ToHTTPServerCodec`): it reads the decoder's parts and writes through
/// the encoder, and Hummingbird's codec sees only the requests it hands on.
struct KeyValueHTTP1Channel<Replica: KeyValueReplica>: ServerChildChannel, HTTPChannelHandler {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let tls: APITLS?
    let limits: ClientConnectionLimits
    let logger: Logger
    let makeKeyRouteHandler: @Sendable () -> KeyRouteHandler<Replica>

    init(
        base: HTTP1Channel, tls: APITLS?, limits: ClientConnectionLimits, logger: Logger,
        makeKeyRouteHandler: @escaping @Sendable () -> KeyRouteHandler<Replica>
    ) {
        self.base = base
        self.tls = tls
        self.limits = limits
        self.logger = logger
        self.makeKeyRouteHandler = makeKeyRouteHandler
    }

    var responder: Responder { base.responder }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            // Right after NIO's decoder, that is before Hummingbird's codec.
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(makeKeyRouteHandler(), position: .after(decoder))
            // The deadlines see every plaintext byte, whoever answers it.
            try pipeline.addHandler(ClientConnectionDeadlines(limits: limits, logger: logger), position: .first)
            // TLS ahead of everything: the decoder reads plaintext.
            if let tls { try pipeline.addHandler(tls.handler(), position: .first) }
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

// MARK: - The Date header

/// The `Date` header's value (IMF-fixdate, RFC 9110), formatted once a second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))

    static var now: String {
        let second = Int(Date().timeIntervalSince1970)
        return cache.withLock { cached in
            if cached.second != second {
                cached = (second, format(epochSecond: second))
            }
            return cached.text
        }
    }

    private static let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `epochSecond` (seconds since 1970-01-01T00:00:00Z, a Thursday) as an IMF-fixdate.
    static func format(epochSecond: Int) -> String {
        let days = epochSecond >= 0 ? epochSecond / 86_400 : (epochSecond - 86_399) / 86_400
        let secondOfDay = epochSecond - days * 86_400
        // Civil date from a day count (H. Hinnant's algorithm), in 400-year eras from 0000-03-01.
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153  // 0 = March
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = weekdays[((days % 7) + 7) % 7]
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekday), \(two(day)) \(months[month - 1]) \(year) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) GMT"
    }
}
