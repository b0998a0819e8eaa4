import Histogram

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What `flotilla bench` prints at the end: counts, throughput and latency percentiles.
///
/// Latencies are of the requests that succeeded, in microseconds, read from an HDR histogram
/// (three significant digits, so a percentile is within 0.1 % of the recorded value).
public struct BenchSummary: Codable, Sendable, Equatable {
    public var requests: Int
    public var errors: Int
    public var reads: Int
    public var writes: Int
    public var elapsedSeconds: Double
    public var throughput: Double
    public var latencyMicroseconds: Latency

    public struct Latency: Codable, Sendable, Equatable {
        public var mean: Double
        public var p50: UInt64
        public var p90: UInt64
        public var p99: UInt64
        public var p999: UInt64
        public var max: UInt64

        public init(mean: Double, p50: UInt64, p90: UInt64, p99: UInt64, p999: UInt64, max: UInt64) {
            self.mean = mean
            self.p50 = p50
            self.p90 = p90
            self.p99 = p99
            self.p999 = p999
            self.max = max
        }

        /// The percentiles of `histogram` (all zero when it is empty).
        public init(_ histogram: Histogram<UInt64>) {
            guard histogram.totalCount > 0 else {
                self.init(mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
                return
            }
            self.init(
                mean: histogram.mean,
                p50: histogram.valueAtPercentile(50), p90: histogram.valueAtPercentile(90),
                p99: histogram.valueAtPercentile(99), p999: histogram.valueAtPercentile(99.9),
                max: histogram.max)
        }
    }

    /// `requests` counts every request sent, `errors` those that failed; throughput is
    /// `requests / elapsedSeconds`.
    public init(requests: Int, errors: Int, reads: Int, writes: Int, elapsedSeconds: Double, latency: Latency) {
        self.requests = requests
        self.errors = errors
        self.reads = reads
        self.writes = writes
        self.elapsedSeconds = elapsedSeconds
        self.throughput = elapsedSeconds > 0 ? Double(requests) / elapsedSeconds : 0
        self.latencyMicroseconds = latency
    }

    /// The histogram `flotilla bench` records into: 1 µs to 10 minutes, three significant digits.
    public static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    }

    /// The human-readable report.
    public var text: String {
        func ms(_ micros: UInt64) -> String { formatFixed(Double(micros) / 1000, digits: 3) + " ms" }
        let l = latencyMicroseconds
        return """
            Summary:
              Requests:    \(requests) (\(reads) reads, \(writes) writes)
              Errors:      \(errors)
              Elapsed:     \(formatFixed(elapsedSeconds, digits: 3)) s
              Throughput:  \(formatFixed(throughput, digits: 1)) req/s

            Latency of successful requests:
              mean   \(formatFixed(l.mean / 1000, digits: 3)) ms
              p50    \(ms(l.p50))
              p90    \(ms(l.p90))
              p99    \(ms(l.p99))
              p99.9  \(ms(l.p999))
              max    \(ms(l.max))
            """
    }

    /// The machine-readable report: one JSON object, keys sorted.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain numbers cannot fail.
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}

/// `value` with exactly `digits` digits after the point (no Foundation formatting, which
/// FoundationEssentials lacks).
public func formatFixed(_ value: Double, digits: Int) -> String {
    guard value.isFinite else { return String(value) }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let negative = value < 0
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e18 else { return String(value) }
    let n = UInt64(scaled)
    let whole = n / UInt64(scale)
    var fraction = String(n % UInt64(scale))
    fraction = String(repeating: "0", count: max(0, digits - fraction.count)) + fraction
    return (negative && n != 0 ? "-" : "") + String(whole) + (digits > 0 ? "." + fraction : "")
}
