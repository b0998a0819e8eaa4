import Testing
@testable import Raft

/// Messages from the network are input: malformed ones are refused with `invalidMessage` and
/// change nothing, rather than tripping the log's invariants and stopping the process.
@Suite struct MessageValidationTests {
    private func follower() throws -> TestNode {
        let n = try TestNode(id: 2, voters: [1, 2, 3], hardState: HardState(term: 3, commit: 1))
        _ = try n.stepAndRead(Message(type: .heartbeat, to: 2, from: 1, term: 3, commit: 1))
        return n
    }

    @Test(arguments: [
        ("a gap after index", Message(type: .append, to: 2, from: 1, term: 3, logTerm: 1, index: 1, entries: [Entry(term: 3, index: 3)])),
        ("indices going back", Message(type: .append, to: 2, from: 1, term: 3, logTerm: 1, index: 1, entries: [Entry(term: 3, index: 2), Entry(term: 3, index: 2)])),
        ("terms going back", Message(type: .append, to: 2, from: 1, term: 3, logTerm: 1, index: 1, entries: [Entry(term: 3, index: 2), Entry(term: 2, index: 3)])),
        ("a term above the message's", Message(type: .append, to: 2, from: 1, term: 3, logTerm: 1, index: 1, entries: [Entry(term: 4, index: 2)])),
        ("an entry term below logTerm", Message(type: .append, to: 2, from: 1, term: 3, logTerm: 2, index: 1, entries: [Entry(term: 1, index: 2)])),
        ("index overflow", Message(type: .append, to: 2, from: 1, term: 3, logTerm: 1, index: .max, entries: [Entry(term: 3, index: 0)])),
    ])
    func malformedAppendsAreRefused(_ why: String, _ m: Message) throws {
        let n = try follower()
        let before = n.node.status
        #expect(throws: RaftError.self, "\(why)") { try n.step(m) }
        #expect(n.readMessages().isEmpty, "\(why): nothing sent")
        #expect(n.node.status == before, "\(why): nothing changed")
        #expect(n.storage.hardState.term == 3)
    }

    @Test func wellFormedAppendIsAccepted() throws {
        let n = try follower()
        let sent = try n.stepAndRead(
            Message(type: .append, to: 2, from: 1, term: 3, logTerm: 1, index: 1, entries: [Entry(term: 3, index: 2), Entry(term: 3, index: 3)], commit: 3))
        #expect(sent.map(\.type) == [.appendResponse] && sent[0].index == 3 && !sent[0].reject)
        #expect(n.node.status.hardState.commit == 3)
    }

    @Test func invalidMessageErrorSaysWhat() throws {
        let n = try follower()
        do {
            try n.step(Message(type: .append, to: 2, from: 1, term: 3, logTerm: 1, index: 1, entries: [Entry(term: 3, index: 5)]))
            Issue.record("accepted a gap")
        } catch let error as RaftError {
            #expect(error.description.contains("append from 1") && error.description.contains("does not follow"), "\(error)")
        }
    }
}
