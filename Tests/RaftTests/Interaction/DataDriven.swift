// A reader and writer of cockroachdb/datadriven files, the format of etcd's raft testdata:
//
//     # a comment
//     command arg key=value key=(a,b,c)
//     optional input lines
//     ----
//     expected output
//     <blank line>
//
// An output that itself contains blank lines is fenced by a doubled separator, `----` `----`
// before it and `----` `----` after it. A directive line ending in `\` continues on the next.
//
// The file is kept as a list of chunks (verbatim text and test cases) so that rewriting it
// replaces only the expected outputs and leaves comments and spacing exactly as written.

/// One `key=value` (or bare `key`) argument of a directive.
struct DataDrivenArgument: Equatable {
    var key: String
    /// Empty for a bare argument; several for `key=(a,b,c)`.
    var values: [String]
}

/// One test case: a directive, its input and the output it is expected to produce.
struct DataDrivenCase {
    /// The 1-based line of the directive, for reporting.
    var line: Int
    /// The directive as written (possibly several lines joined by `\`), reproduced on rewrite.
    var directiveText: [String]
    var command: String
    var arguments: [DataDrivenArgument]
    var input: [String]
    /// The expected output, each line ending in "\n" (empty if the file has none yet).
    var expected: String
    /// 1-based line where the expected output starts.
    var expectedLine: Int

    /// The argument named `key`, if given.
    func argument(_ key: String) -> DataDrivenArgument? {
        arguments.first { $0.key == key }
    }

    /// The bare arguments (no `=`), in order: etcd's handlers take node ids this way.
    var bareArguments: [String] {
        arguments.filter { $0.values.isEmpty }.map(\.key)
    }
}

struct DataDrivenError: Error, CustomStringConvertible {
    var description: String
}

struct DataDrivenFile {
    enum Chunk {
        /// A comment or blank line, kept verbatim.
        case text(String)
        case testCase(DataDrivenCase)
    }

    var chunks: [Chunk] = []

    var cases: [DataDrivenCase] {
        chunks.compactMap { if case .testCase(let c) = $0 { c } else { nil } }
    }

    init(parsing contents: String) throws {
        var lines = contents.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // A file ending in "\n" splits into a final empty string that is no line of its own.
        if lines.last == "" { lines.removeLast() }
        var i = 0
        while i < lines.count {
            let line = lines[i]
            if line.trimmingSpaces().isEmpty || line.hasPrefix("#") {
                chunks.append(.text(line))
                i += 1
                continue
            }
            let start = i
            var directive = [line]
            while directive.last!.hasSuffix("\\") && i + 1 < lines.count {
                i += 1
                directive.append(lines[i])
            }
            i += 1
            let joined = directive.map { $0.hasSuffix("\\") ? String($0.dropLast()) : $0 }.joined(separator: " ")
            var input: [String] = []
            while i < lines.count && lines[i] != "----" {
                input.append(lines[i])
                i += 1
            }
            guard i < lines.count else {
                throw DataDrivenError(description: "line \(start + 1): directive '\(line)' has no ---- separator")
            }
            i += 1
            var expected: [String] = []
            let expectedLine: Int
            if i < lines.count && lines[i] == "----" {
                // Fenced output: it runs until a doubled separator.
                i += 1
                expectedLine = i + 1
                while i < lines.count && !(lines[i] == "----" && i + 1 < lines.count && lines[i + 1] == "----") {
                    expected.append(lines[i])
                    i += 1
                }
                guard i < lines.count else {
                    throw DataDrivenError(description: "line \(start + 1): fenced output is not closed by ---- ----")
                }
                i += 2
            } else {
                expectedLine = i + 1
                while i < lines.count && !lines[i].trimmingSpaces().isEmpty {
                    expected.append(lines[i])
                    i += 1
                }
            }
            let (command, arguments) = try Self.parseDirective(joined, line: start + 1)
            chunks.append(.testCase(DataDrivenCase(
                line: start + 1, directiveText: directive, command: command, arguments: arguments, input: input,
                expected: expected.map { $0 + "\n" }.joined(), expectedLine: expectedLine)))
        }
    }

    /// Splits `command a key=v key=(x,y)` into the command and its arguments.
    static func parseDirective(_ text: String, line: Int) throws -> (String, [DataDrivenArgument]) {
        var tokens: [String] = []
        var current = ""
        var depth = 0
        for ch in text {
            if ch == "(" { depth += 1 }
            if ch == ")" { depth -= 1 }
            if ch == " " && depth == 0 {
                if !current.isEmpty { tokens.append(current) }
                current = ""
            } else {
                current.append(ch)
            }
        }
        if !current.isEmpty { tokens.append(current) }
        guard depth == 0, let command = tokens.first else {
            throw DataDrivenError(description: "line \(line): malformed directive '\(text)'")
        }
        let arguments = tokens.dropFirst().map { token -> DataDrivenArgument in
            guard let eq = token.firstIndex(of: "=") else { return DataDrivenArgument(key: token, values: []) }
            let key = String(token[..<eq])
            var value = token[token.index(after: eq)...]
            if value.hasPrefix("(") && value.hasSuffix(")") {
                value = value.dropFirst().dropLast()
                let values = value.split(separator: ",").map { String($0).trimmingSpaces() }
                return DataDrivenArgument(key: key, values: values)
            }
            return DataDrivenArgument(key: key, values: [String(value)])
        }
        return (command, arguments)
    }

    /// The file again, with each case's output replaced by `outputs[k]` for the k-th case.
    func rendered(outputs: [String]) -> String {
        var result = ""
        var k = 0
        for chunk in chunks {
            switch chunk {
            case .text(let line):
                result += line + "\n"
            case .testCase(let c):
                for line in c.directiveText { result += line + "\n" }
                for line in c.input { result += line + "\n" }
                let output = k < outputs.count ? outputs[k] : c.expected
                k += 1
                // Blank lines inside the output would end it early: fence it.
                if output.contains("\n\n") || output.hasPrefix("\n") {
                    result += "----\n----\n" + output + "----\n----\n"
                } else {
                    result += "----\n" + output
                }
            }
        }
        return result
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

/// A line-by-line comparison for a failure message: the first differing line with a few lines
/// of context, then both outputs in full so that the whole transcript step can be read.
func describeMismatch(expected: String, actual: String, firstLine: Int) -> String {
    let e = expected.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    let a = actual.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    var first = 0
    while first < e.count && first < a.count && e[first] == a[first] { first += 1 }
    var text = "first difference at line \(firstLine + first):\n"
    text += "  expected: \(first < e.count ? e[first] : "<end of output>")\n"
    text += "  actual:   \(first < a.count ? a[first] : "<end of output>")\n"
    text += "--- expected\n" + e.map { "  " + $0 }.joined(separator: "\n")
    text += "\n+++ actual\n" + a.map { "  " + $0 }.joined(separator: "\n")
    return text
}
