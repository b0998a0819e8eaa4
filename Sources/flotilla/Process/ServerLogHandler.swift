import Logging

/// `StreamLogHandler` to standard error, except that the logger's own metadata is kept as a
/// dictionary and rendered only when a line is written. `StreamLogHandler` renders its
/// metadata every time it is set, and Hummingbird sets a request id on every request's logger:
/// a string built per request that is almost never printed (measured: see
/// Benchmarks/README.md).
struct ServerLogHandler: LogHandler {
    private var inner: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(label: String, level: Logger.Level) {
        inner = StreamLogHandler.standardError(label: label)
        inner.logLevel = level
    }

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        if !metadata.isEmpty {
            // The line's own metadata wins over the logger's, as in StreamLogHandler.
            event.metadata = metadata.merging(event.metadata ?? [:]) { _, line in line }
        }
        inner.log(event: event)
    }
}
