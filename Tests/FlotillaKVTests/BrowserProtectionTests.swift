import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import FlotillaKV

/// A web page open in a browser on the same machine must not reach the API: cross-site requests
/// get 403 and rebound Host names 421, on the router and on the key-route handler, and nothing reaches
/// the replica. Requests from non-browser clients pass as before.
@Suite struct BrowserProtectionTests {
    @Test func loopbackHostNames() {
        for host in ["localhost", "LOCALHOST:12380", "localhost.", "app.localhost:80", "127.0.0.1", "127.0.0.1:12380",
                     "127.255.0.9:1", "[::1]", "[::1]:12380"] {
            #expect(BrowserProtection.isLoopbackHost(host.utf8), "\(host)")
        }
        for host in ["evil.example", "evil.example:12380", "localhost.evil.example", "127.0.0.1.evil.example",
                     "128.0.0.1", "127.0.0.256", "127.0.0", "127.0.0.1:", "127.0.0.1:123456", "127.0.0.1:80x",
                     "[::2]", "[::1]x", "[::1", "", "0.0.0.0", "localhostx", "xlocalhost", "10.0.0.1:12380"] {
            #expect(!BrowserProtection.isLoopbackHost(host.utf8), "\(host)")
        }
    }

    @Test func verdicts() {
        let guardOn = BrowserProtection(requiresLoopbackHost: true, allowedOrigins: ["http://ui.example"])
        let host = "127.0.0.1:12380"
        #expect(guardOn.verdict(host: host, origin: nil, fetchSite: nil) == .allow)
        #expect(guardOn.verdict(host: host, origin: "http://127.0.0.1:12380", fetchSite: "same-origin") == .allow)
        #expect(guardOn.verdict(host: host, origin: "http://ui.example", fetchSite: "cross-site") == .allow)
        if case .crossSite = guardOn.verdict(host: host, origin: nil, fetchSite: "cross-site") {} else { Issue.record("cross-site passed") }
        if case .crossSite = guardOn.verdict(host: host, origin: "null", fetchSite: nil) {} else { Issue.record("null origin passed") }
        // Same site, another port: another origin.
        if case .crossSite = guardOn.verdict(host: host, origin: "http://127.0.0.1:8080", fetchSite: "same-site") {} else {
            Issue.record("another port's page passed")
        }
        #expect(guardOn.verdict(host: "evil.example:12380", origin: nil, fetchSite: nil) == .misdirected("evil.example:12380"))
        // Off, and not on loopback.
        let off = BrowserProtection(refusesCrossSite: false)
        #expect(off.verdict(host: "evil.example", origin: "http://evil.example", fetchSite: "cross-site") == .allow)
    }

    /// Each request as a browser would send it, through a live server (where the key-route
    /// handler answers the key routes) that listens on loopback.
    @Test(.timeLimit(.minutes(1)))
    func browserRequestsAreRefusedAndReachNothing() async throws {
        let replica = RecordingReplica()
        let app = makeApplication(
            api: HTTPAPI(replica: replica, browserProtection: BrowserProtection(requiresLoopbackHost: true)),
            services: [], address: .hostname("127.0.0.1", port: 0), logger: HTTPAPITests.quietLogger)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let own = "127.0.0.1:\(port)"
            func send(_ request: String) async throws -> RawHTTP.Response {
                try #require(try await RawHTTP.exchange(port: port, send: request, expecting: 1).first)
            }
            let refused: [(String, Int)] = [
                // An <img> on any site: a GET that writes.
                ("GET /set?key=a&value=b HTTP/1.1\r\nHost: \(own)\r\nSec-Fetch-Site: cross-site\r\n\r\n", 403),
                // A form on any site, text/plain: adds a phantom voter.
                ("POST /2 HTTP/1.1\r\nHost: \(own)\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nhttp://127.0.0.1:9999", 403),
                // The key routes, which the key-route handler serves, refusing as the router does.
                ("PUT /k HTTP/1.1\r\nHost: \(own)\r\nOrigin: http://evil.example\r\nContent-Length: 1\r\n\r\nv", 403),
                ("PUT /v1/kv/k HTTP/1.1\r\nHost: \(own)\r\nSec-Fetch-Site: cross-site\r\nContent-Length: 1\r\n\r\nv", 403),
                ("PUT /k HTTP/1.1\r\nHost: \(own)\r\nOrigin: null\r\nContent-Length: 1\r\n\r\nv", 403),
                // DNS rebinding: same-origin for the browser, but the Host is the attacker's name.
                ("PUT /k HTTP/1.1\r\nHost: rebind.evil.example:\(port)\r\nContent-Length: 1\r\n\r\nv", 421),
                ("GET /k HTTP/1.1\r\nHost: rebind.evil.example:\(port)\r\n\r\n", 421),
                ("GET /v1/status HTTP/1.1\r\nHost: rebind.evil.example:\(port)\r\n\r\n", 421),
                ("POST /2 HTTP/1.1\r\nHost: rebind.evil.example:\(port)\r\nOrigin: http://rebind.evil.example:\(port)\r\nContent-Length: 21\r\n\r\nhttp://127.0.0.1:9999", 421),
            ]
            for (request, status) in refused {
                let response = try await send(request)
                #expect(response.status == status, "\(request)")
                #expect(response.body.contains("\"error\""), "\(response.body)")
            }
            #expect(replica.calls.withLock { $0 }.isEmpty, "a refused request reached the replica")

            // Non-browser clients, and the server's own pages, pass.
            let passed = [
                "PUT /k HTTP/1.1\r\nHost: \(own)\r\nContent-Length: 1\r\n\r\nv",
                "PUT /k HTTP/1.1\r\nHost: localhost:\(port)\r\nContent-Length: 1\r\n\r\nv",
                "PUT /k HTTP/1.1\r\nHost: [::1]:\(port)\r\nContent-Length: 1\r\n\r\nv",
                "PUT /k HTTP/1.1\r\nHost: \(own)\r\nOrigin: http://\(own)\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 1\r\n\r\nv",
                "GET /set?key=k&value=v HTTP/1.1\r\nHost: \(own)\r\n\r\n",
            ]
            for request in passed {
                #expect(try await send(request).status == 204, "\(request)")
            }
            #expect(replica.calls.withLock { $0 }.count == passed.count)
        }
    }
}

/// A replica that records the writes and membership changes that reach it.
final class RecordingReplica: KeyValueReplica {
    let calls = Mutex<[String]>([])

    func write(key: [UInt8], value: [UInt8]?, completion: @escaping @Sendable (Result<KeyValueStore.Outcome, ReplicaError>) -> Void) {
        if value != nil {
            calls.withLock { $0.append("put \(String(decoding: key, as: UTF8.self))") }
            completion(.success(.stored(replaced: false)))
        } else {
            calls.withLock { $0.append("delete") }
            completion(.success(.deleted(existed: false)))
        }
    }
    func get(key: [UInt8], consistency: ReadConsistency) async throws -> [UInt8]? { nil }
    func status() async -> ReplicaStatus { ReplicaStatus(id: 1, term: 1, leader: 1, commit: 0, applied: 0, state: "leader") }
    func members() async throws -> [ReplicaMember] { [] }
    func addMember(id: UInt64, peerURL: PeerURL, asLearner: Bool) async throws {
        calls.withLock { $0.append("add \(id)") }
    }
    func removeMember(id: UInt64) async throws { calls.withLock { $0.append("remove \(id)") } }
    func transferLeadership(to id: UInt64) async throws { calls.withLock { $0.append("transfer \(id)") } }
}
