import Foundation
import Raft
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension RealProcesses {
    /// An attacker on the same machine as a plaintext cluster, with nothing but the public wire
    /// format (Docs/TRANSPORT.md) and the cluster token's id: each attack of issue 15 against real
    /// `flotilla serve` processes. After all of them the node is up, nothing was injected, the
    /// refusals are counted in `/metrics`, and its data directory starts again.
    @Suite(.needsFlotillaExecutable, .serialized)
    struct PeerAttackTests {
        /// FNV-1a of the default `--cluster-token`, as `flotilla serve` derives it.
        static let clusterID: UInt64 = {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in "flotilla".utf8 {
                hash ^= UInt64(byte)
                hash &*= 0x100_0000_01b3
            }
            return hash
        }()

        /// The bytes of one message stream (or snapshot stream, `kind` 2) from `from` to `to`.
        static func stream(kind: UInt8 = 1, from: UInt64, to: UInt64, frames: [(UInt8, [UInt8])]) -> [UInt8] {
            var bytes: [UInt8] = Array("FLRT".utf8) + [1, kind, 0, 0]
            for value in [clusterID, from, to] { bytes += withUnsafeBytes(of: value.bigEndian, Array.init) }
            for (frameKind, payload) in frames {
                bytes += withUnsafeBytes(of: UInt32(1 + payload.count).bigEndian, Array.init)
                bytes.append(frameKind)
                bytes += payload
            }
            return bytes
        }

        static func messages(from: UInt64, to: UInt64, _ messages: [Message]) -> [UInt8] {
            stream(from: from, to: to, frames: messages.map { (1, $0.serializedBytes()) })
        }

        /// Connects to 127.0.0.1:`port`, writes `bytes`, and waits a moment (100 ms at most) for the
        /// node to close the connection: the attacker does not care whether it does. (The checks
        /// after the attacks wait for their own events.)
        static func send(_ bytes: [UInt8], to port: Int) {
            let fd = connectLoopback(port: port)
            guard fd >= 0 else { return }
            defer { close(fd) }
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            shutdown(fd, Int32(SHUT_WR))
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 64)
            _ = read(fd, &buffer, buffer.count)
        }

        static func metric(_ text: String, reason: String) -> Int {
            let lines = text.split(separator: "\n").filter {
                $0.hasPrefix("flotilla_peer_messages_refused_total") && $0.contains("reason=\"\(reason)\"")
            }
            return lines.compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
        }

        @Test(.timeLimit(.minutes(3)))
        func forgedPeerFramesNeitherKillNorInject() async throws {
            let cluster = LocalTestCluster(executable: flotillaExecutable!, size: 3)
            defer { cluster.close() }
            try await cluster.startAll(writing: "before", "1")
            let target = cluster.node(1)
            let status = try #require(target.status())
            let term = (status["term"] as? NSNumber)?.uint64Value ?? 1
            let huge: UInt64 = 1 << 63

            // A stranger (77): refused at the handshake, whatever it says.
            Self.send(Self.messages(from: 77, to: 1, [
                Message(type: .heartbeat, to: 1, from: 77, term: term, commit: huge),
                Message(type: .proposal, to: 1, from: 77, entries: [Entry(data: Array("stranger".utf8))]),
            ]), to: target.peerPort)
            Self.send(Self.stream(kind: 2, from: 77, to: 1, frames: []), to: target.peerPort)

            // Posing as member 2 (no TLS): values no correct peer sends, refused by raft.
            Self.send(Self.messages(from: 2, to: 1, [
                Message(type: .heartbeat, to: 1, from: 2, term: term, commit: huge),
                Message(type: .heartbeat, to: 1, from: 2, term: .max, commit: 0),
                Message(type: .appendResponse, to: 1, from: 2, term: term, index: .max),
                Message(type: .appendResponse, to: 1, from: 2, term: term, index: 1, reject: true, rejectHint: .max),
                Message(type: .vote, to: 1, from: 2, term: .max - 1, logTerm: .max, index: .max),
            ]), to: target.peerPort)
            // A proposal forwarded on member 2's stream in the name of stranger 77: dropped.
            Self.send(Self.messages(from: 2, to: 1, [
                Message(type: .proposal, to: 1, from: 77, entries: [Entry(data: Array("forwarded".utf8))]),
            ]), to: target.peerPort)
            // A snapshot from "member 2" that is not a Flotilla snapshot, in a far future term.
            var snapshot = Message(type: .snapshot, to: 1, from: 2, term: term + 100, snapshot: Snapshot(
                metadata: SnapshotMetadata(confState: ConfState(voters: [1, 2, 3]), index: 1_000_000, term: term + 100)))
            let garbage = [UInt8](repeating: 0xEE, count: 4096)
            var header = withUnsafeBytes(of: UInt64(garbage.count).bigEndian, Array.init)
            header += snapshot.serializedBytes()
            snapshot.snapshot!.data = garbage
            Self.send(Self.stream(kind: 2, from: 2, to: 1, frames: [(2, header), (3, garbage), (4, [])]), to: target.peerPort)

            // The node is up and the cluster still serves; nothing was injected.
            #expect(target.isRunning, "node 1 died\n\(cluster.logs)")
            let served = await eventually { target.put("after", "2") == 204 }
            #expect(served, "no write after the attacks\n\(cluster.logs)")
            #expect(cluster.node(2).get("before").body == "1")
            #expect(cluster.node(1).memberIDs() == [1, 2, 3])
            let after = try #require(target.status())
            #expect(((after["term"] as? NSNumber)?.uint64Value ?? 0) < 1 << 62, "a forged term was taken: \(after)")
            #expect(((after["commit"] as? NSNumber)?.uint64Value ?? 0) < 1000, "a forged commit was taken: \(after)")
            let metrics = http("GET", "\(target.base)/metrics").body
            #expect(Self.metric(metrics, reason: "invalid_values") >= 6, "\(metrics)")
            #expect(Self.metric(metrics, reason: "not_a_member") >= 1, "\(metrics)")
            #expect(target.log.contains("not a member of this cluster"))

            // The data directory starts again and holds every write.
            #expect(target.stop(SIGTERM) == 0)
            try target.start(executable: cluster.executable, cluster: cluster.clusterFlag)
            let restarted = await eventually { target.localGet("after").body == "2" }
            #expect(restarted, "node 1 did not come back with its data\n\(target.log.suffix(3000))")
            // Neither forged proposal reached the log, on any node.
            for node in cluster.nodes {
                let wal = try Self.contents(ofFilesIn: node.dataDir + "/wal")
                #expect(!wal.isEmpty)
                #expect(Self.find(Array("stranger".utf8), in: wal) == false && Self.find(Array("forwarded".utf8), in: wal) == false,
                        "a forged proposal is in node \(node.id)'s WAL")
            }
        }

        static func contents(ofFilesIn directory: String) throws -> [UInt8] {
            var all: [UInt8] = []
            for name in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() {
                all += (FileManager.default.contents(atPath: directory + "/" + name)).map(Array.init) ?? []
            }
            return all
        }

        static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
            guard haystack.count >= needle.count else { return false }
            for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
                if Array(haystack[start..<start + needle.count]) == needle { return true }
            }
            return false
        }
    }
}
