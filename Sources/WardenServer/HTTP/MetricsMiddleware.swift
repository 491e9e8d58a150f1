import Hummingbird

/// Counts every request by matched route pattern and final status, including errors thrown by handlers.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = WardenRequestContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let method = request.method.rawValue
        do {
            let response = try await next(request, context)
            metrics.request(route: context.endpointPath ?? "unmatched", method: method, status: response.status.code)
            return response
        } catch let error as any HTTPResponseError {
            metrics.request(route: context.endpointPath ?? "unmatched", method: method, status: error.status.code)
            throw error
        } catch {
            metrics.request(route: context.endpointPath ?? "unmatched", method: method, status: 500)
            throw error
        }
    }
}
