import Hummingbird
import Logging
import ServiceLifecycle

// MARK: - The application

/// The `flotilla serve` HTTP application: the API's routes on `address`, with `services` (the
/// `FlotillaNode`) run beside the HTTP server and shut down after it.
public func makeApplication<Replica: KeyValueReplica>(
    api: HTTPAPI<Replica>, services: [any Service], address: BindAddress, logger: Logger
) -> some ApplicationProtocol {
    Application(
        router: api.makeRouter(),
        configuration: ApplicationConfiguration(address: address, serverName: "flotilla"),
        services: services,
        logger: logger)
}
