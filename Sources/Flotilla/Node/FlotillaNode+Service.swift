import ServiceLifecycle

/// A `FlotillaNode` runs in a ServiceLifecycle `ServiceGroup` like any other service:
///
/// ```swift
/// let group = ServiceGroup(
///     configuration: .init(services: [node, httpServer], gracefulShutdownSignals: [.sigterm], logger: logger))
/// try await group.run()
/// ```
extension FlotillaNode: Service {
    /// Starts the node (unless `start()` was called already) and runs until graceful shutdown,
    /// cancellation or `shutdown()`; then shuts down: no new requests, the Ready in hand is
    /// finished, waiting requests fail with `.stopped`, the transport is closed, then the WAL.
    /// Throws `FlotillaError.failed` if the node stopped on an error.
    public func run() async throws {
        if case .idle = lifecycle { try await start() }
        await withTaskCancellationOrGracefulShutdownHandler {
            await self.waitUntilStopped()
        } onCancelOrGracefulShutdown: {
            Task { await self.shutdown() }
        }
        await shutdown()
        if let failure { throw FlotillaError.failed(failure) }
    }
}
