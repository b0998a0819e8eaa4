import ArgumentParser
import FlotillaCLI
import Histogram
import Testing

/// A root like the executable's, so that `parseAsRoot` resolves subcommands as `flotilla` does.
struct Root: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "flotilla", subcommands: ClientCommands.all)
}

@Suite("Client subcommand parsing")
struct ParsingTests {
    @Test func putGetDel() throws {
        let put = try #require(try Root.parseAsRoot(["put", "k", "v", "--endpoints", "http://a:1,http://b:2"]) as? Put)
        #expect(put.key == "k")
        #expect(put.value == "v")
        #expect(put.options.endpoints == "http://a:1,http://b:2")
        let get = try #require(try Root.parseAsRoot(["get", "k"]) as? Get)
        #expect(get.key == "k")
        #expect(get.options.endpoints == "http://127.0.0.1:12380")
        #expect(try Root.parseAsRoot(["del", "k"]) is Del)
        #expect(try Root.parseAsRoot(["status"]) is Status)
    }

    @Test func missingArgumentsAndBadEndpoints() {
        #expect(throws: (any Error).self) { try Root.parseAsRoot(["put", "k"]) }
        #expect(throws: (any Error).self) { try Root.parseAsRoot(["get", "k", "--endpoints", "127.0.0.1:12380"]) }
        #expect(throws: (any Error).self) { try Root.parseAsRoot(["get", "k", "--endpoints", "http://a:1/path"]) }
    }

    @Test func member() throws {
        #expect(try Root.parseAsRoot(["member", "list"]) is Member.List)
        let add = try #require(try Root.parseAsRoot(["member", "add", "4", "http://127.0.0.1:42379", "--learner"]) as? Member.Add)
        #expect(add.id == 4)
        #expect(add.url == "http://127.0.0.1:42379")
        #expect(add.learner)
        let remove = try #require(try Root.parseAsRoot(["member", "remove", "2"]) as? Member.Remove)
        #expect(remove.id == 2)
        #expect(throws: (any Error).self) { try Root.parseAsRoot(["member", "remove", "0"]) }
        #expect(throws: (any Error).self) { try Root.parseAsRoot(["member", "remove", "x"]) }
    }

    @Test func bench() throws {
        let bench = try #require(try Root.parseAsRoot([
            "bench", "--clients", "64", "--conns", "16", "--val-size", "128", "--key-size", "16",
            "--duration", "10s", "--read-ratio", "0.5", "--key-space", "1000", "--no-progress", "--json",
        ]) as? Bench)
        let config = try bench.benchConfiguration()
        #expect(config.clients == 64)
        #expect(config.connections == 16)
        #expect(config.valueSize == 128)
        #expect(config.keySize == 16)
        #expect(config.limit == .duration(10))
        #expect(config.readRatio == 0.5)
        #expect(config.keySpace == 1000)
        #expect(bench.noProgress && bench.json)

        let defaults = try #require(try Root.parseAsRoot(["bench"]) as? Bench)
        let defaultConfig = try defaults.benchConfiguration()
        #expect(defaultConfig.limit == .total(10_000))
        #expect(defaultConfig.valueSize == 64)
        #expect(defaultConfig.endpoints == ["http://127.0.0.1:12380"])

        for bad in [["--total", "5", "--duration", "1s"], ["--read-ratio", "1.5"], ["--duration", "soon"], ["--clients", "0"]] {
            #expect(throws: (any Error).self) { try Root.parseAsRoot(["bench"] + bad) }
        }
    }

    @Test func durationsAndEndpoints() throws {
        #expect(parseDuration("10s") == 10)
        #expect(parseDuration("500ms") == 0.5)
        #expect(parseDuration("2m") == 120)
        #expect(parseDuration("1h") == 3600)
        #expect(parseDuration("3") == 3)
        #expect(parseDuration("-1s") == nil)
        #expect(parseDuration("s") == nil)
        #expect(try parseEndpoints("http://a:1/, http://b:2") == ["http://a:1", "http://b:2"])
        #expect(percentEncodePathSegment("a/b c~".utf8) == "a%2Fb%20c~")
    }
}

@Suite("Bench summary and progress bar")
struct SummaryTests {
    @Test func percentilesFromTheHistogram() {
        var histogram = BenchSummary.makeHistogram()
        for micros in 1...1000 { _ = histogram.record(UInt64(micros)) }
        let latency = BenchSummary.Latency(histogram)
        #expect(latency.p50 == 500)
        #expect(latency.p90 == 900)
        #expect(latency.p99 == 990)
        #expect(latency.p999 == 999)
        #expect(latency.max == 1000)
        #expect(abs(latency.mean - 500.5) < 1)
        #expect(BenchSummary.Latency(BenchSummary.makeHistogram()) == .init(mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0))
    }

    @Test func text() {
        let summary = BenchSummary(
            requests: 2000, errors: 3, reads: 500, writes: 1500, elapsedSeconds: 4,
            latency: .init(mean: 1500, p50: 1250, p90: 2000, p99: 4500, p999: 9000, max: 12345))
        #expect(summary.throughput == 500)
        #expect(summary.text == """
            Summary:
              Requests:    2000 (500 reads, 1500 writes)
              Errors:      3
              Elapsed:     4.000 s
              Throughput:  500.0 req/s

            Latency of successful requests:
              mean   1.500 ms
              p50    1.250 ms
              p90    2.000 ms
              p99    4.500 ms
              p99.9  9.000 ms
              max    12.345 ms
            """)
        #expect(summary.json.hasPrefix(#"{"elapsedSeconds":4,"errors":3,"latencyMicroseconds":{"max":12345,"mean":1500,"#))
        #expect(summary.json.contains(#""throughput":500"#))
    }

    @Test func fixedFormatting() {
        #expect(formatFixed(1.5, digits: 3) == "1.500")
        #expect(formatFixed(0.0004, digits: 3) == "0.000")
        #expect(formatFixed(2.9996, digits: 3) == "3.000")
        #expect(formatFixed(12, digits: 0) == "12")
        #expect(formatFixed(-1.25, digits: 1) == "-1.3" || formatFixed(-1.25, digits: 1) == "-1.2")
    }

    @Test func progressBar() {
        #expect(ProgressBar.render(fraction: 0.5, completed: 5000, total: 10_000, errors: 2, elapsed: 2, width: 10)
            == " 50% [#####     ] 5000/10000 2500 req/s 2 errors 2.0s")
        #expect(ProgressBar.render(fraction: 1.7, completed: 30, total: nil, errors: 0, elapsed: 0, width: 4)
            == "100% [####] 30 0 req/s 0 errors 0.0s")
        #expect(ProgressBar.render(fraction: -1, completed: 0, total: nil, errors: 0, elapsed: 0, width: 4)
            == "  0% [    ] 0 0 req/s 0 errors 0.0s")
    }
}
