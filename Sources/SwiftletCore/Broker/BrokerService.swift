import ServiceLifecycle

/// The broker as a swift-service-lifecycle `Service`: runs until graceful shutdown
/// (SIGTERM/SIGINT through the `ServiceGroup`), then disconnects clients and stops.
public struct BrokerService: Service {
    public let broker: Broker

    public init(broker: Broker) { self.broker = broker }

    public func run() async throws {
        do {
            try await broker.start()
        } catch {
            await broker.shutdown()
            throw error
        }
        try? await gracefulShutdown()
        await broker.shutdown()
    }
}
