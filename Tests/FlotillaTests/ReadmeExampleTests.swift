import Flotilla
import Foundation
import Logging
import Testing

// The README's "Build your own replicated service" example, verbatim, so that it compiles.
// README: begin
/// The replicated state: a counter. Commands are "add n" as 8 bytes, little-endian.
struct Counter: StateMachine {
    var value: Int64 = 0

    mutating func apply(_ command: [UInt8], index: UInt64) -> Int64 {
        guard command.count == 8 else { return value }  // every replica ignores it alike
        value += command.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
        return value
    }

    func snapshot() -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    mutating func restore(from snapshot: [UInt8]) throws {
        value = snapshot.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
    }
}

func runCounterNode(id: UInt64, peers: [UInt64: TransportAddress], port: Int, dataDirectory: String) async throws {
    let logger = Logger(label: "counter")
    let configuration = FlotillaConfiguration(
        nodeID: id, clusterID: 42, peers: peers,
        listenAddress: TransportAddress(host: "127.0.0.1", port: port),
        dataDirectory: dataDirectory)                 // .newCluster; .join to join a running one
    let node = try FlotillaNode(configuration: configuration, stateMachine: Counter(), logger: logger)
    try await node.start()                            // or: ServiceGroup(services: [node, …]).run()

    let total = try await node.apply(withUnsafeBytes(of: Int64(5).littleEndian) { Array($0) })
    let now = try await node.read { $0.value }        // linearizable, on any member
    let local = try await node.readLocal { $0.value } // this node's state, possibly behind
    logger.info("counter", metadata: ["total": "\(total)", "now": "\(now)", "local": "\(local)"])

    try await node.addMember(id: 4, address: TransportAddress(host: "10.0.0.4", port: 2380))
    await node.shutdown()
}
// README: end

@Suite("The README example")
struct ReadmeExampleTests {
    @Test("the Counter state machine replicates on one node", .timeLimit(.minutes(1)))
    func counter() async throws {
        let cluster = TestCluster()
        let node = try FlotillaNode(configuration: cluster.configuration(1, members: [1]), stateMachine: Counter(), logger: quiet)
        try await node.start()
        let five = withUnsafeBytes(of: Int64(5).littleEndian) { Array($0) }
        try await eventually("a leader") { (try? await node.waitForLeader(timeout: .seconds(1))) != nil }
        #expect(try await node.apply(five) == 5)
        #expect(try await node.apply(five) == 10)
        #expect(try await node.read { $0.value } == 10)
        await node.shutdown()
    }
}
