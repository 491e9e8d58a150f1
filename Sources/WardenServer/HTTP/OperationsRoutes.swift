import Hummingbird
import WardenStore

/// `GET /healthz` (200 `ok` when the registry answers, 503 otherwise) and `GET /metrics` (Prometheus text format).
struct OperationsRoutes {
    let registry: Registry
    let metrics: ServerMetrics

    func register(on router: Router<WardenRequestContext>) {
        registerHealth(on: router)
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
    }

    /// Only `/healthz` (the plain-HTTP listener does not expose metrics).
    func registerHealth(on router: Router<WardenRequestContext>) {
        router.get("/healthz") { _, _ in
            do {
                _ = try registry.lastCRLNumber()
            } catch {
                throw WardenHTTPError(.serviceUnavailable, "the registry is not reachable")
            }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
    }
}
