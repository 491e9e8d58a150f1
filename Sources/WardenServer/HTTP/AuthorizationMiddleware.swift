import Foundation
import Hummingbird
import Synchronization
import WardenBroker
import WardenPolicy
import WardenStore

/// Decides admin API requests with the policies in force (plus the operator roles), reloading them when a new policy
/// version is applied.
final class PolicyAuthorizer: Sendable {
    let registry: Registry
    let home: String
    private let state = Mutex<(version: Int, evaluator: PolicyEvaluator)?>(nil)

    init(registry: Registry, home: String) {
        self.registry = registry
        self.home = home
    }

    /// The evaluator for the version in force (one cheap query per request; recompiled only on a new version).
    func evaluator() throws -> PolicyEvaluator {
        let version = try registry.activePolicyNumber()
        if let current = state.withLock({ $0 }), current.version == version { return current.evaluator }
        let evaluator = OperatorRoles.evaluator(for: try PolicyRelease.inForce(home: home, registry: registry))
        state.withLock { $0 = (version, evaluator) }
        return evaluator
    }

    /// The principal of a verified peer: `role:<r>` for an operator certificate, `device:<id>` (with its groups) for a
    /// device certificate.
    func principal(of peer: PeerIdentity) throws -> PolicyPrincipal {
        if let role = peer.role { return .role(role) }
        return .device(id: peer.deviceID, groups: try registry.device(peer.deviceID)?.groups ?? [])
    }
}

/// Authorizes one route: 401 without a verified client certificate; otherwise asks the policy evaluator whether the
/// peer's principal may perform `action` on the route's resource, and answers 403 with a JSON body naming the action,
/// the resource and the decision when it may not.
struct AuthorizationMiddleware: RouterMiddleware {
    typealias Context = WardenRequestContext
    let authorizer: PolicyAuthorizer
    /// The route's `api:` action.
    let action: String
    /// The route's resource (`device:<id>`, `device:*`, `firmware:<name>`), from the request.
    let resource: @Sendable (Request, WardenRequestContext) -> String

    struct Denial: Encodable {
        var error: String
        var principal: String?
        var action: String
        var resource: String?
        var decision: String
        var reason: String
        var statements: [String]
        var detail: String
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let peer = context.peer else {
            return try AdminRoutes.json(
                Denial(
                    error: "unauthorized", principal: nil, action: action, resource: nil, decision: "deny", reason: "no client certificate",
                    statements: [], detail: "the admin API requires a valid operator client certificate (mutual TLS)"),
                status: .unauthorized)
        }
        let target = resource(request, context)
        let decision: Decision
        let principal: PolicyPrincipal
        do {
            principal = try authorizer.principal(of: peer)
            decision = try authorizer.evaluator().decide(principal: principal, action: action, resource: target)
        } catch {
            // A malformed resource (e.g. a bad id in the path) or an unreadable policy: never allow.
            return try AdminRoutes.json(
                Denial(
                    error: "forbidden", principal: nil, action: action, resource: target, decision: "deny", reason: "error",
                    statements: [], detail: "the request could not be authorized: \(error)"),
                status: .forbidden)
        }
        guard decision.allowed else {
            context.logger.notice("API request denied", metadata: ["principal": "\(principal)", "action": "\(action)", "resource": "\(target)"])
            return try AdminRoutes.json(
                Denial(
                    error: "forbidden", principal: "\(principal)", action: action, resource: target, decision: decision.effect.rawValue,
                    reason: decision.reason.rawValue, statements: decision.decidingStatements, detail: decision.detail),
                status: .forbidden)
        }
        return try await next(request, context)
    }
}
