import Foundation
import Glibc
import Raft
import RaftWAL
import Testing

/// Real crashes: a child process appends to a WAL on this disk and reports each batch after
/// its fdatasync returned; the parent kills it with SIGKILL at a random moment, reopens the WAL
/// (repairing a write the kill cut short) and checks that every reported entry is there. Then
/// again, from the recovered WAL.
///
/// The child is this test binary run again with a filter for `crashChildProcess` and the WAL
/// directory in `FLOTILLA_WAL_CRASH_CHILD`. Nothing waits on time: the parent reads the
/// child's reports from a pipe and kills it after a random number of them.
@Suite struct CrashTests {
    static let environmentKey = "FLOTILLA_WAL_CRASH_CHILD"
    static let segmentSize: Int64 = 256 * 1024

    /// 512 KiB of pseudo-random bytes: entry payloads are slices of it (making them is cheap,
    /// so the child spends its time writing and syncing — where a kill should land).
    static let pattern: [UInt8] = {
        var random = SplitMix64(seed: 77)
        return (0..<(512 * 1024 / 8)).flatMap { _ in withUnsafeBytes(of: random.next()) { Array($0) } }
    }()

    /// Entry `index`: its index in the first 8 bytes, then the pattern.
    static func entry(_ index: UInt64, size: Int) -> Entry {
        var data = Array(pattern[..<size])
        withUnsafeBytes(of: index.littleEndian) { data.replaceSubrange(0..<8, with: $0) }
        return Entry(term: 1, index: index, data: data)
    }

    /// The child's loop, run only in the child `killedWhileAppending` starts (skipped, not
    /// passed, elsewhere).
    @Test(.enabled(if: ProcessInfo.processInfo.environment[CrashTests.environmentKey] != nil, "the child of killedWhileAppending"))
    func crashChildProcess() throws {
        let directory = try #require(ProcessInfo.processInfo.environment[Self.environmentKey])
        let wal: WAL
        var last: UInt64 = 0
        if WAL.exists(directory: directory) {
            wal = try WAL.open(directory: directory, at: WALSnapshot(), segmentSize: Self.segmentSize)
            last = try wal.readAll().entries.last?.index ?? 0
        } else {
            wal = try WAL.create(directory: directory, metadata: [1], segmentSize: Self.segmentSize)
        }
        var random = SplitMix64(seed: UInt64(getpid()))
        while true {
            // Batches of 1…6 entries of up to 20 KB. (A kill rarely tears a write here: a save
            // encodes everything first and then makes one pwrite; torn writes at every byte
            // are the simulated file system's job, in FaultInjectionTests.)
            let count = Int(random.next() % 6) + 1
            let batch = (1...UInt64(count)).map { Self.entry(last + $0, size: Int(random.next() % 20_000) + 8) }
            last += UInt64(count)
            try wal.save(hardState: HardState(term: 1, vote: 1, commit: last), entries: batch)
            let line = Array("synced \(last)\n".utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }
    }

    @Test(.timeLimit(.minutes(1))) func killedWhileAppending() throws {
        let root = makeTemporaryDirectory("crash")
        defer { removeDirectory(root) }
        let directory = root + "/wal"
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var random = SplitMix64(seed: 0xC0FFEE)
        var highestReported: UInt64 = 0
        var tornTails = 0
        let deadline = Date().addingTimeInterval(15)

        for round in 0..<6 where Date() < deadline {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: executable)
            child.arguments = ["--testing-library", "swift-testing", "--filter", "crashChildProcess"]
            child.environment = ProcessInfo.processInfo.environment.merging([Self.environmentKey: directory]) { $1 }
            let pipe = Pipe()
            child.standardOutput = pipe
            child.standardError = FileHandle.nullDevice
            try child.run()
            // A watchdog, not a correctness assumption: a child that hangs is killed.
            let pid = child.processIdentifier
            let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
            DispatchQueue.global().asyncAfter(deadline: .now() + 20, execute: watchdog)

            // The first round kills as soon as the child reports; the others after 1…300 batches.
            let target = round == 0 ? 1 : Int(random.next() % 300) + 1
            var reports = 0
            var buffer: [UInt8] = []
            let reader = pipe.fileHandleForReading
            readLoop: while reports < target {
                let chunk = reader.availableData
                if chunk.isEmpty { break }  // the child exited
                buffer += chunk
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[..<newline], as: UTF8.self)
                    buffer.removeSubrange(...newline)
                    if line.hasPrefix("synced "), let index = UInt64(line.dropFirst(7)) {
                        highestReported = max(highestReported, index)
                        reports += 1
                        if reports >= target { break readLoop }
                    }
                }
            }
            kill(pid, SIGKILL)
            child.waitUntilExit()
            watchdog.cancel()
            #expect(reports == target, "round \(round): the child stopped after \(reports) reports")

            var inspection = try WALReader(directory: directory)
            while try inspection.next() != nil {}
            if case .torn = inspection.end { tornTails += 1 }
            let wal = try WAL.open(directory: directory, at: WALSnapshot(), segmentSize: Self.segmentSize)
            let (_, state, entries) = try wal.readAll()
            try wal.close()
            #expect((entries.last?.index ?? 0) >= highestReported, "round \(round): lost synced entries")
            #expect(entries.enumerated().allSatisfy { $0.offset + 1 == Int($0.element.index) })
            #expect(state.commit >= highestReported)
            for check in [highestReported, highestReported / 2, 1] where check > 0 && check <= UInt64(entries.count) {
                let e = entries[Int(check) - 1]
                #expect(e == Self.entry(check, size: e.data.count))
            }
        }
        #expect(highestReported > 0)
        // How often the kill cut a write short (varies from run to run; informative only).
        print("CrashTests: \(tornTails) torn tails repaired, \(highestReported) entries synced")
        let segments = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".wal") }
        #expect(segments.count >= 2, "the kills should land across segment cuts too")
    }
}
