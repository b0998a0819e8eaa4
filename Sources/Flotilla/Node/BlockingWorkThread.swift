#if canImport(Glibc)
import Glibc
#endif
import NIOPosix

/// A thread of the node's own for blocking work: the WAL's writes and fdatasyncs, and the
/// encoding of snapshots. Work runs off the node's actor so the Ready loop goes on stepping
/// messages and taking proposals while the disk works (etcd's raft node keeps receiving while
/// the application persists a Ready); and off Swift's cooperative pool, whose few threads must
/// not sit in `fdatasync`.
///
/// Jobs run one at a time in the order submitted: a snapshot's WAL record submitted after a
/// save is written after it.
final class BlockingWorkThread: Sendable {
    private let pool: NIOThreadPool
    let name: String

    /// The thread's nice value (Linux): above 0 it yields the CPU to the request path when
    /// the cores are busy.
    let niceness: Int32

    init(name: String, niceness: Int32 = 0) {
        self.name = name
        self.niceness = niceness
        pool = NIOThreadPool(numberOfThreads: 1)
    }

    func start() {
        pool.start()
        let (name, niceness) = (name, niceness)
        submit { _ in
            #if os(Linux)
            // Named for top and perf (15 bytes at most; Swift's Glibc lacks pthread_setname_np).
            let fd = open("/proc/thread-self/comm", O_WRONLY)
            if fd >= 0 {
                let bytes = Array(name.utf8.prefix(15))
                _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }
            // On Linux a nice value is per thread: this one only.
            if niceness != 0, let tid = currentThreadID() {
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), tid, niceness)
            }
            #endif
        }
    }

    /// Runs `job` on the thread. A job still queued at `shutdown()` (or submitted after it)
    /// runs with `isActive` false: it must then do nothing but return.
    func submit(_ job: @escaping @Sendable (_ isActive: Bool) -> Void) {
        pool.submit { state in
            if case .active = state { job(true) } else { job(false) }
        }
    }

    /// Lets the job running finish, then stops the thread.
    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}

#if os(Linux)
/// The kernel's id of the calling thread (`gettid`, which Swift's Glibc does not export):
/// `/proc/thread-self` links to `<pid>/task/<tid>`.
private func currentThreadID() -> id_t? {
    var buffer = [CChar](repeating: 0, count: 64)
    let count = readlink("/proc/thread-self", &buffer, buffer.count - 1)
    guard count > 0 else { return nil }
    let path = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return path.split(separator: "/").last.flatMap { id_t($0) }
}
#endif
