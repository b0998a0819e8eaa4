import NIOPosix

/// A thread of the node's own for blocking work: the WAL's writes and fdatasyncs, and the
/// encoding of snapshots. Work runs off the node's actor so the Ready loop goes on stepping
/// messages and taking proposals while the disk works (etcd's raft node keeps receiving while
/// the application persists a Ready); and off Swift's cooperative pool, whose few threads must
/// not sit in `fdatasync`.
///
/// Jobs run one at a time in the order submitted: a WAL save submitted after a snapshot write
/// starts after it.
final class DiskThread: Sendable {
    private let pool: NIOThreadPool
    let name: String

    init(name: String) {
        self.name = name
        pool = NIOThreadPool(numberOfThreads: 1)
    }

    func start() {
        pool.start()
    }

    /// Runs `job` on the thread. A job submitted after `shutdown()` runs with `isActive` false:
    /// it must then only report that it did not run.
    func submit(_ job: @escaping @Sendable (_ isActive: Bool) -> Void) {
        pool.submit { state in
            if case .active = state { job(true) } else { job(false) }
        }
    }

    /// Waits for the jobs submitted so far, then stops the thread.
    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
