import ArgumentParser
import Dispatch
import FlotillaCLI
import NIOCore
import NIOPosix
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `flotilla cluster --nodes N`: N `flotilla serve` processes on loopback, their output
/// prefixed `[nK] `, until Ctrl-C or SIGTERM (which stops them all).
struct LocalCluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Start a local cluster on loopback (for trying flotilla out); Ctrl-C stops it.",
        discussion: """
            Node K listens for peers on 127.0.0.1:K2379 and for clients on 127.0.0.1:K2380 \
            (12379/12380, 22379/22380, …; --base-port moves them), its data in BASE/nodeK. \
            Each line a node prints is prefixed [nK]. SIGINT or SIGTERM sends SIGTERM to every \
            node and waits for them.
            """)

    @Option(help: "Number of nodes (1 to 6).")
    var nodes: Int = 3

    @Option(help: "Base data directory: node K's data in BASE/nodeK.")
    var dataDir: String = "flotilla-cluster"

    @Option(help: "Passed to each node's serve --snapshot-count.")
    var snapshotCount: UInt64?

    @Option(help: "Passed to each node's serve --log-level.")
    var logLevel: String?

    @Option(help: "Node 1's peer port; node K's is BASE + (K-1)·10000, and its client port the one above.")
    var basePort: Int = 12379

    @Flag(help: "TLS both ways: make a development CA and certificates in BASE/certs (once), mutual TLS between the nodes, HTTPS with client certificates on the API.")
    var tls: Bool = false

    func validate() throws {
        guard (1...6).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 6") }
        guard basePort >= 1, httpPort(nodes) <= 65535 else {
            throw ValidationError(
                "--base-port \(basePort) puts node \(nodes)'s ports past 65535: with \(nodes) node(s) it can be at most \(65535 - 1 - (nodes - 1) * 10_000)")
        }
    }

    func peerPort(_ k: Int) -> Int { basePort + (k - 1) * 10_000 }
    func httpPort(_ k: Int) -> Int { peerPort(k) + 1 }

    func run() async throws {
        guard let executable = ChildProcess.currentExecutable() else {
            throw ValidationError("cannot find this executable's path")
        }
        let scheme = tls ? "https" : "http"
        let peers = (1...nodes).map { "\(scheme)://127.0.0.1:\(peerPort($0))" }.joined(separator: ",")
        let output = PrefixedOutput(color: isatty(STDOUT_FILENO) != 0)
        do {
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("cannot create --data-dir \(dataDir): \(error)")
        }
        let certs = "\(dataDir)/certs"
        if tls { try makeCertificates(in: certs, output: output) }

        var children: [(k: Int, process: ChildProcess)] = []
        var readers: [EventLoopFuture<Void>] = []
        for k in 1...nodes {
            var arguments = [
                "serve", "--id", "\(k)", "--cluster", peers, "--port", "\(httpPort(k))",
                "--data-dir", "\(dataDir)/node\(k)",
            ]
            if let snapshotCount { arguments += ["--snapshot-count", "\(snapshotCount)"] }
            if let logLevel { arguments += ["--log-level", logLevel] }
            if tls {
                arguments += [
                    "--peer-cert-file", "\(certs)/node-\(k).pem", "--peer-key-file", "\(certs)/node-\(k)-key.pem",
                    "--peer-trusted-ca-file", "\(certs)/ca.pem",
                    "--cert-file", "\(certs)/node-\(k).pem", "--key-file", "\(certs)/node-\(k)-key.pem",
                    "--trusted-ca-file", "\(certs)/ca.pem", "--client-cert-auth",
                ]
            }
            let process: ChildProcess
            do {
                process = try ChildProcess.spawn(executable, arguments: arguments)
            } catch {
                for (_, started) in children { started.send(SIGTERM) }
                throw ValidationError("cannot start node \(k): \(error)")
            }
            children.append((k, process))
            for fd in [process.stdout, process.stderr] {
                readers.append(Self.forwardLines(from: fd, prefix: output.prefix(node: k), to: output))
            }
        }
        // Handle SIGINT and SIGTERM ourselves (after starting the children: an ignored signal would stay ignored in them).
        let stop = StopFlag()
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stop.set() }
            source.resume()
            sources.append(source)
        }
        defer { sources.forEach { $0.cancel() } }

        var banner = "flotilla cluster: \(nodes) node(s), data in \(dataDir)/nodeK\(tls ? ", certificates in \(certs)" : "")\n"
        for (k, process) in children {
            banner += "  n\(k): pid \(process.pid), client API \(scheme)://127.0.0.1:\(httpPort(k)), peer URL \(scheme)://127.0.0.1:\(peerPort(k))\n"
        }
        let curl = tls ? "curl --cacert \(certs)/ca.pem --cert \(certs)/client.pem --key \(certs)/client-key.pem" : "curl"
        banner += """
              try: \(curl) -X PUT \(scheme)://127.0.0.1:\(httpPort(1))/my-key -d hello
                   \(curl) \(scheme)://127.0.0.1:\(httpPort(min(2, nodes)))/my-key
                   \(curl) -s \(scheme)://127.0.0.1:\(httpPort(1))/v1/members
            Ctrl-C stops every node.

            """
        output.write(banner)

        var reported = Set<Int>()
        var everyNodeExited = false
        while !stop.isSet && !everyNodeExited {
            for index in children.indices where !children[index].process.poll() && !reported.contains(children[index].k) {
                let (k, process) = children[index]
                reported.insert(k)
                output.write("flotilla cluster: n\(k) exited (\(describe(process)))\n")
            }
            everyNodeExited = reported.count == children.count
            if !everyNodeExited { try? await Task.sleep(for: .milliseconds(100)) }
        }
        if everyNodeExited {
            await Self.drain(readers)
            output.write("flotilla cluster: every node has exited\n")
            throw ExitCode(1)
        }

        output.write("flotilla cluster: stopping every node (SIGTERM)\n")
        for (_, process) in children { process.send(SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(15)
        while children.indices.contains(where: { children[$0].process.poll() }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for index in children.indices where children[index].process.isRunning {
            output.write("flotilla cluster: n\(children[index].k) did not stop in 15 s; killing it\n")
            children[index].process.send(SIGKILL)
            children[index].process.wait()
        }
        await Self.drain(readers)
        for (k, process) in children where !reported.contains(k) {
            output.write("flotilla cluster: n\(k) stopped (\(describe(process)))\n")
        }
    }

    /// The development CA and certificates in `directory`, made the first time (a restart of
    /// the cluster keeps its certificates, so its data stays readable by the same identities).
    private func makeCertificates(in directory: String, output: PrefixedOutput) throws {
        let existing = (1...nodes).allSatisfy { FileManager.default.fileExists(atPath: "\(directory)/node-\($0).pem") }
        if existing { return }
        let maker = DevelopmentCertificates(nodes: nodes)  // valid for localhost, 127.0.0.1 and ::1
        do {
            _ = try maker.write(try maker.make(), to: directory)
        } catch {
            throw ValidationError("cannot make certificates in \(directory): \(error) (remove it to start afresh)")
        }
        output.write("flotilla cluster: made a development CA and certificates in \(directory)\n")
    }

    private func describe(_ process: ChildProcess) -> String {
        process.termination.map { "\($0)" } ?? "running"
    }

    /// Waits until every line the nodes wrote is printed, so that it comes before the command's
    /// last words.
    private static func drain(_ readers: [EventLoopFuture<Void>]) async {
        for reader in readers { try? await reader.get() }
    }

    /// Reads `fd` (a child's stdout or stderr) on an event loop and writes each line prefixed;
    /// the future completes at end of file, after the last (unterminated) line is written.
    private static func forwardLines(from fd: CInt, prefix: String, to output: PrefixedOutput) -> EventLoopFuture<Void> {
        let done = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: Void.self)
        NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(LineForwarder(prefix: prefix, output: output, done: done))
                }
            }
            .takingOwnershipOfDescriptor(input: fd)
            .whenFailure { error in
                close(fd)
                output.write("\(prefix)(cannot read this node's output: \(error))\n")
                done.succeed()
            }
        return done.futureResult
    }
}

/// Set from a signal handler, read by the main loop.
private final class StopFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// Writes whole lines to stdout, one writer at a time.
private final class PrefixedOutput: Sendable {
    private let lock = Mutex(())
    let color: Bool
    init(color: Bool) { self.color = color }

    func write(_ text: String) {
        lock.withLock { _ in
            var bytes = Array(text.utf8)[...]
            while !bytes.isEmpty {
                let written = bytes.withUnsafeBytes { systemWrite(STDOUT_FILENO, $0.baseAddress, $0.count) }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }  // stdout is gone: nothing more can be shown
                bytes = bytes.dropFirst(written)
            }
        }
    }

    func prefix(node: Int) -> String {
        guard color else { return "[n\(node)] " }
        let codes = [32, 33, 34, 35, 36, 31]
        return "\u{1b}[\(codes[(node - 1) % codes.count])m[n\(node)]\u{1b}[0m "
    }
}

/// write(2), under a name the `write` methods do not shadow.
private func systemWrite(_ fd: CInt, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    write(fd, bytes, count)
}

/// Splits a child's output into lines and writes each one prefixed with its node. Lives on
/// its pipe channel's event loop.
private final class LineForwarder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var pending: [UInt8] = []
    private let prefix: String
    private let output: PrefixedOutput
    private let done: EventLoopPromise<Void>

    init(prefix: String, output: PrefixedOutput, done: EventLoopPromise<Void>) {
        self.prefix = prefix
        self.output = output
        self.done = done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pending += Self.unwrapInboundIn(data).readableBytesView
        guard let last = pending.lastIndex(of: UInt8(ascii: "\n")) else { return }
        var text = ""
        for line in pending[...last].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast() {
            text += prefix + String(decoding: line, as: UTF8.self) + "\n"
        }
        pending.removeSubrange(...last)
        output.write(text)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !pending.isEmpty { output.write(prefix + String(decoding: pending, as: UTF8.self) + "\n") }
        pending = []
        done.succeed()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
