import Foundation

/// Runs `body` on a thread of its own and returns its result, leaving Swift's cooperative pool
/// free: for CPU-bound simulations in tests that share the process with real nodes, whose
/// elections need the pool's (few) threads. The system preempts a thread; nothing preempts a
/// task on the pool. The stack is large: the linearizability search recurses once per
/// operation of a key.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.stackSize = 16 << 20
        thread.start()
    }
}
