import Foundation
import Testing

// Runs every transcript in Tests/RaftTests/Testdata (one test case per file) through the
// interaction environment and compares each command's output with the expected output written
// under it. The files are read from the source tree at run time (the test target excludes the
// folder), so the tests must run from a checkout, as `swift test` does.
//
// FLOTILLA_REWRITE_TRANSCRIPTS=1 writes the actual outputs back into the files instead of
// comparing: for a new transcript, or after a deliberate change of behaviour. Read the diff
// before committing it: a rewritten transcript is only as right as the raft behaviour it records.

enum Transcripts {
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Testdata")

    /// The transcript file names, sorted; empty if the folder is missing or holds none.
    static func names() -> [String] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return all.filter { $0.hasSuffix(".txt") }.sorted()
    }

    /// What the parameterized test runs over. A placeholder stands in for an empty folder, so
    /// that losing the transcripts fails the test instead of passing it with zero cases.
    static let arguments: [String] = {
        let found = names()
        return found.isEmpty ? [missing] : found
    }()

    static let missing = "<no transcripts in Testdata>"

    static var rewriting: Bool {
        ProcessInfo.processInfo.environment["FLOTILLA_REWRITE_TRANSCRIPTS"] == "1"
    }
}

@Suite struct InteractionTests {
    @Test(arguments: Transcripts.arguments)
    func transcript(_ name: String) throws {
        try #require(name != Transcripts.missing, "no transcripts found in \(Transcripts.directory.path)")
        let path = Transcripts.directory.appendingPathComponent(name).path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let file = try DataDrivenFile(parsing: text)
        try #require(!file.cases.isEmpty, "\(name) has no test cases")

        let env = InteractionEnv()
        var outputs: [String] = []
        for c in file.cases {
            let actual = env.handle(c)
            outputs.append(actual)
            if !Transcripts.rewriting && actual != c.expected {
                let directive = c.directiveText.joined(separator: "\n")
                Issue.record(
                    Comment(rawValue: "\(name):\(c.line): output of '\(directive)' differs; "
                        + describeMismatch(expected: c.expected, actual: actual, firstLine: c.expectedLine)),
                    sourceLocation: SourceLocation(fileID: "RaftTests/\(name)", filePath: path, line: c.line, column: 1))
            }
        }
        if Transcripts.rewriting {
            let rendered = file.rendered(outputs: outputs)
            if rendered != text { try rendered.write(toFile: path, atomically: true, encoding: .utf8) }
        }
    }

    /// The parameterized test above fails on its placeholder too; this names the problem plainly.
    @Test func testdataHasTranscripts() {
        #expect(!Transcripts.names().isEmpty, "no .txt transcripts in \(Transcripts.directory.path)")
    }
}
