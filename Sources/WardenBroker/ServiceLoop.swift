import Foundation

/// The lifetime of `serve`'s broker client services (TUF and config publishers, presence, telemetry
/// ingest, assignments): run one connection at a time, and start a fresh one after `retryDelay` whenever the broker
/// goes away, until the task is cancelled.
enum ServiceLoop {
    /// Calls `once` (one connection's lifetime) again and again until cancelled; every failure is reported to
    /// `onEvent` as "`name`: error; reconnecting".
    static func reconnecting(
        _ name: String, retryDelay: Duration, onEvent: @Sendable (String) -> Void, _ once: () async throws -> Void
    ) async throws {
        while !Task.isCancelled {
            do {
                try await once()
            } catch is CancellationError {
                break
            } catch {
                onEvent("\(name): \(error); reconnecting")
            }
            try await Task.sleep(for: retryDelay)
        }
    }
}
