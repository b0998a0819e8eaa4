import NIOCore

/// Where reconnection jitter comes from: a factor in [0, 1] drawn per attempt.
///
/// Random by default, so that nodes which lost a peer at the same moment do not redial it in
/// step; tests inject a fixed or scripted source to make delays exact.
public struct Jitter: Sendable {
    let draw: @Sendable () -> Double

    /// `draw` returns values in [0, 1]; values outside are clamped.
    public init(_ draw: @escaping @Sendable () -> Double) { self.draw = draw }

    /// Uniformly random (the system generator; no Foundation).
    public static let random = Jitter { Double.random(in: 0...1) }

    /// Always the same factor: `.fixed(1)` gives the full backoff delay every time.
    public static func fixed(_ value: Double) -> Jitter { Jitter { value } }
}

/// Exponential backoff with jitter: after the n-th consecutive failure the next attempt waits
/// `min(maximum, minimum · 2^(n−1))`, scaled into [50%, 100%] by the jitter (Docs/TRANSPORT.md §6).
/// Keeping half of the delay fixed bounds how hard a flapping peer can be redialled.
struct Backoff: Sendable {
    let minimum: TimeAmount
    let maximum: TimeAmount
    let jitter: Jitter
    private(set) var failures = 0

    init(minimum: TimeAmount, maximum: TimeAmount, jitter: Jitter) {
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.jitter = jitter
    }

    /// Records a failure and returns how long to wait before the next attempt.
    mutating func nextDelay() -> TimeAmount {
        failures += 1
        let exponent = min(failures - 1, 62)
        let (scaled, overflow) = minimum.nanoseconds.multipliedReportingOverflow(by: Int64(1) << exponent)
        let base = overflow ? maximum.nanoseconds : min(maximum.nanoseconds, scaled)
        let factor = 0.5 + 0.5 * min(1, max(0, jitter.draw()))
        return .nanoseconds(Int64(Double(base) * factor))
    }

    /// A connection got through: the next failure starts from the minimum again.
    mutating func reset() { failures = 0 }
}
