import Logging
import Synchronization

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A mutex-protected value for test bookkeeping across tasks and event loops.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

extension Logger {
    /// Refusals are logged at warning by design; the tests assert on behaviour, not log lines.
    static var quiet: Logger {
        var logger = Logger(label: "raftnio.test", factory: { _ in SwiftLogNoOpLogHandler() })
        logger.logLevel = .critical
        return logger
    }
}

/// Collects what a transport delivers (`add` is its delivery callback) so tests can wait for
/// what they expect, with a deadline, instead of sleeping and hoping.
final class Collector<Element: Sendable>: Sendable {
    let items = Locked<[Element]>([])

    @Sendable func add(_ item: Element) { items.withLock { $0.append(item) } }

    var snapshot: [Element] { items.withLock { $0 } }

    /// Waits until `predicate` holds for what has arrived so far; throws after `timeout`.
    @discardableResult
    func wait(
        timeout: Duration = .seconds(20), _ what: String = "the expected items",
        until predicate: ([Element]) -> Bool
    ) async throws -> [Element] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let current = snapshot
            if predicate(current) { return current }
            guard ContinuousClock.now < deadline else {
                throw TestFailure("timed out waiting for \(what); have \(current.count) items")
            }
            try await Task.sleep(for: .milliseconds(5))  // a poll interval, not a correctness assumption
        }
    }
}

/// Keeps every log line, to check that refusals say why.
struct CapturingLogHandler: LogHandler {
    let lines: Locked<[(Logger.Level, String)]>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.withLock { $0.append((event.level, "\(event.message)")) }
    }
}
