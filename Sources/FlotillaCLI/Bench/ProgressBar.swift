/// The line `flotilla bench` redraws on stderr while it runs.
public enum ProgressBar {
    /// One line, without a carriage return or newline, like
    /// ` 42% [########            ] 4200/10000 1234 req/s 0 errors 3.4s`.
    ///
    /// - Parameters:
    ///   - fraction: how far the run is, 0…1 (of `--total` requests or of `--duration`).
    ///   - completed: requests done so far; `total` is shown after it when the run is by count.
    ///   - elapsed: seconds since the start.
    ///   - width: the bar's width in characters, brackets excluded.
    public static func render(fraction: Double, completed: Int, total: Int?, errors: Int, elapsed: Double, width: Int = 30) -> String {
        let clamped = fraction.isFinite ? min(max(fraction, 0), 1) : 0
        let filled = Int((clamped * Double(width)).rounded(.down))
        let percent = Int((clamped * 100).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        let percentText = String(repeating: " ", count: 3 - String(percent).count) + "\(percent)%"
        let count = total.map { "\(completed)/\($0)" } ?? "\(completed)"
        let rate = elapsed > 0 ? Int((Double(completed) / elapsed).rounded()) : 0
        return "\(percentText) [\(bar)] \(count) \(rate) req/s \(errors) errors \(formatFixed(elapsed, digits: 1))s"
    }
}
