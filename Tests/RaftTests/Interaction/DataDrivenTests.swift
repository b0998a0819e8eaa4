import Testing

// The transcript format itself: parsing directives, inputs and outputs, and rewriting a file
// so that only its outputs change.

@Suite struct DataDrivenTests {
    static let sample = """
        # comment
        add-nodes 3 voters=(1, 2,3) index=2 prevote=true
        ----
        ok

        propose-conf-change 1 \\
          transition=explicit
        v2 r3
        ----
        old output
        second line

        stabilize
        ----
        ----
        has

        a blank line
        ----
        ----

        raft-state
        ----

        """

    @Test func parsesDirectivesInputsAndOutputs() throws {
        let file = try DataDrivenFile(parsing: Self.sample)
        let cases = file.cases
        #expect(cases.map(\.command) == ["add-nodes", "propose-conf-change", "stabilize", "raft-state"])

        let add = cases[0]
        #expect(add.line == 2 && add.expectedLine == 4)
        #expect(add.bareArguments == ["3"])
        #expect(add.argument("voters")?.values == ["1", "2", "3"])
        #expect(add.argument("index")?.values == ["2"])
        #expect(add.expected == "ok\n")

        // A trailing backslash continues the directive; the lines before ---- are its input.
        let cc = cases[1]
        #expect(cc.argument("transition")?.values == ["explicit"])
        #expect(cc.input == ["v2 r3"])
        #expect(cc.expected == "old output\nsecond line\n")

        // A doubled separator fences an output holding blank lines.
        #expect(cases[2].expected == "has\n\na blank line\n")
        #expect(cases[3].expected == "")
    }

    @Test func renderingWithTheSameOutputsReproducesTheFile() throws {
        let file = try DataDrivenFile(parsing: Self.sample)
        #expect(file.rendered(outputs: file.cases.map(\.expected)) == Self.sample)
    }

    @Test func renderingReplacesOnlyTheOutputs() throws {
        let file = try DataDrivenFile(parsing: "# keep me\ncampaign 1\n----\nstale\n\nstatus 1\n----\n")
        let rendered = file.rendered(outputs: ["ok\n", "one\n\ntwo\n"])
        #expect(rendered == "# keep me\ncampaign 1\n----\nok\n\nstatus 1\n----\n----\none\n\ntwo\n----\n----\n")
        // And the result parses back to the new outputs.
        #expect(try DataDrivenFile(parsing: rendered).cases.map(\.expected) == ["ok\n", "one\n\ntwo\n"])
    }

    @Test func aDirectiveWithoutSeparatorIsAnError() {
        #expect(throws: DataDrivenError.self) { try DataDrivenFile(parsing: "campaign 1\n") }
        #expect(throws: DataDrivenError.self) { try DataDrivenFile(parsing: "stabilize\n----\n----\nnever closed\n") }
    }

    @Test func aMismatchNamesTheFirstDifferingLine() {
        let text = describeMismatch(expected: "a\nb\nc\n", actual: "a\nx\nc\n", firstLine: 10)
        #expect(text.hasPrefix("first difference at line 11:\n  expected: b\n  actual:   x\n"))
        let shorter = describeMismatch(expected: "a\nb\n", actual: "a\n", firstLine: 1)
        #expect(shorter.contains("actual:   <end of output>"))
    }
}
