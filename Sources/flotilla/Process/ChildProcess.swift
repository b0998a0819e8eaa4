#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process started with `posix_spawn`, its stdout and stderr on pipes the caller reads,
/// stdin on /dev/null. Foundation's `Process` would do the same but would pull all of Foundation
/// (and ICU) into a server that needs none of it, resident in every node (measured: see
/// Benchmarks/README.md).
///
/// Not thread-safe: one owner starts it, polls it and signals it.
struct ChildProcess {
    let pid: pid_t
    /// The read ends of the child's stdout and stderr; the caller owns them (and closes them).
    let stdout: CInt
    let stderr: CInt
    /// How it ended, once `poll()` or `wait()` has reaped it.
    private(set) var termination: Termination?

    enum Termination: Equatable, CustomStringConvertible {
        case exited(CInt)
        case signalled(CInt)

        init(waitStatus status: CInt) {
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (they are macros);
            // the encoding is the same on Linux and Darwin.
            let signal = status & 0x7f
            self = signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
        }

        var description: String {
            switch self {
            case .exited(let code): "status \(code)"
            case .signalled(let signal): "signal \(signal)"
            }
        }
    }

    struct SpawnError: Error, CustomStringConvertible {
        let operation: String
        let code: CInt
        var description: String { "\(operation): \(String(cString: strerror(code)))" }
    }

    /// Starts `executable` with `arguments` (not including argv[0]) and this process's
    /// environment.
    static func spawn(_ executable: String, arguments: [String]) throws(SpawnError) -> ChildProcess {
        let out = try makePipe()
        let err: (read: CInt, write: CInt)
        do { err = try makePipe() } catch {
            close(out.read)
            close(out.write)
            throw error
        }
        defer {
            close(out.write)
            close(err.write)
        }

        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t? = nil
        #else
        var actions = posix_spawn_file_actions_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        // dup2 clears close-on-exec on the target, so only fds 0-2 reach the child.
        posix_spawn_file_actions_adddup2(&actions, out.write, STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, err.write, STDERR_FILENO)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard result == 0 else {
            close(out.read)
            close(err.read)
            throw SpawnError(operation: "posix_spawn \(executable)", code: result)
        }
        return ChildProcess(pid: pid, stdout: out.read, stderr: err.read)
    }

    /// A pipe whose both ends close on exec, so no child inherits another child's pipes.
    private static func makePipe() throws(SpawnError) -> (read: CInt, write: CInt) {
        var fds: [CInt] = [-1, -1]
        // pipe2(O_CLOEXEC) is not imported from Glibc; the window between pipe and fcntl is
        // harmless here, since only this command's one task starts processes.
        guard pipe(&fds) == 0 else { throw SpawnError(operation: "pipe", code: errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    private init(pid: pid_t, stdout: CInt, stderr: CInt) {
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
    }

    var isRunning: Bool { termination == nil }

    /// Reaps the child if it has exited, without blocking; true if it is still running.
    mutating func poll() -> Bool {
        guard termination == nil else { return false }
        var status: CInt = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { termination = Termination(waitStatus: status) }
        return termination == nil
    }

    /// Blocks until the child exits.
    mutating func wait() {
        guard termination == nil else { return }
        var status: CInt = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        termination = Termination(waitStatus: status)
    }

    /// Sends `signal` to the child if it has not been reaped (a reaped pid may be reused).
    func send(_ signal: CInt) {
        if termination == nil { kill(pid, signal) }
    }

    /// The path of the running executable, for starting copies of it.
    static func currentExecutable() -> String? {
        #if canImport(Darwin)
        var size: UInt32 = 4096
        var buffer = [CChar](repeating: 0, count: Int(size))
        guard _NSGetExecutablePath(&buffer, &size) == 0 else { return nil }
        return String(cString: buffer)
        #else
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #endif
    }
}
