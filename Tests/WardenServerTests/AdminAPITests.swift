import Foundation
import Testing
import WardenAuthority
import WardenBroker
import WardenCore
import WardenPKI
import WardenTestSupport

@testable import WardenServer

@Suite("Admin API: operator roles authorized by policy over mutual TLS", .serialized, .timeLimit(.minutes(3)))
struct AdminAPITests {
    /// Issues an operator certificate through the authority (as `warden operator issue` does); returns key and chain.
    func issueOperator(_ harness: ServerHarness, name: String, role: String) throws -> (key: String, chain: String, serial: String) {
        let (key, csr) = try DeviceKeys.make(name, in: harness.directory, name: "op-\(name)")
        let issued = try harness.authority.issueOperator(
            name: name, role: role, csr: Array(try Data(contentsOf: URL(fileURLWithPath: csr))), csrSource: csr, validity: nil,
            now: Date())
        return (key, try harness.directory.write("op-\(name)-chain.pem", issued.chainPEM), issued.serial)
    }

    func json(_ result: ServerHarness.HTTPResult) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(result.body)) as? [String: Any]) ?? [:]
    }

    @Test("auditor reads the audit log (200) but gets 403 on enroll; admin enrolls and revokes; devices get 403; no cert 401")
    func roles() async throws {
        let harness = try await ServerHarness.start()
        do {
            let auditor = try issueOperator(harness, name: "audrey", role: "auditor")
            let admin = try issueOperator(harness, name: "adam", role: "admin")
            let releaser = try issueOperator(harness, name: "rene", role: "release-manager")
            let device = try harness.enrollDirectly("pump-api-01")
            let (_, csr) = try DeviceKeys.make("pump-api-02", in: harness.directory, name: "pump-api-02-req")
            func auth(_ who: (key: String, chain: String, serial: String)) -> [String] { ["--cert", who.chain, "--key", who.key] }
            let enrollURL = harness.https + "/api/v1/devices/pump-api-02/enroll"
            let enrollBody = ["-X", "POST", "-H", "Content-Type: application/pkcs10", "--data-binary", "@" + csr]

            let audit = try await harness.curl(auth(auditor), url: harness.https + "/api/v1/audit")
            #expect(audit.status == 200, "\(audit.text)")
            let events = (try? JSONSerialization.jsonObject(with: Data(audit.body)) as? [[String: Any]]) ?? []
            #expect(events.contains { $0["action"] as? String == "operator.issue" }, "\(audit.text.prefix(300))")
            #expect(events.contains { $0["action"] as? String == "device.enroll" })

            let denied = try await harness.curl(auth(auditor) + enrollBody, url: enrollURL)
            #expect(denied.status == 403, "\(denied.text)")
            let body = json(denied)
            #expect(body["action"] as? String == "api:device.enroll")
            #expect(body["decision"] as? String == "deny")
            #expect(body["principal"] as? String == "role:auditor")
            #expect(body["resource"] as? String == "device:pump-api-02")
            #expect(try harness.authority.registry.device("pump-api-02") == nil, "nothing enrolled on a denied request")
            #expect(try await harness.curl(auth(releaser) + enrollBody, url: enrollURL).status == 403)

            let enrolled = try await harness.curl(auth(admin) + enrollBody, url: enrollURL)
            #expect(enrolled.status == 201, "\(enrolled.text)")
            #expect(enrolled.text.contains("BEGIN CERTIFICATE"))
            #expect(try harness.authority.registry.device("pump-api-02")?.status == .active)
            let enrollEvent = try harness.authority.registry.auditEvents(deviceID: "pump-api-02").first { $0.action == "device.enroll" }
            #expect(enrollEvent?.actor == "api:warden-op-adam (role:admin)", "the audit names the operator: \(String(describing: enrollEvent))")
            let list = try await harness.curl(auth(auditor), url: harness.https + "/api/v1/devices")
            #expect(list.status == 200 && list.text.contains("pump-api-02"), "\(list.text)")

            // A device certificate gets 403 on every admin route, even on itself.
            for (method, path) in [
                ("GET", "/api/v1/audit"), ("GET", "/api/v1/devices"), ("POST", "/api/v1/devices/pump-api-01/enroll"),
                ("POST", "/api/v1/devices/pump-api-01/revoke"),
            ] {
                let result = try await harness.curl(["--cert", device.chain, "--key", device.key, "-X", method], url: harness.https + path)
                #expect(result.status == 403, "\(method) \(path): \(result.text)")
                #expect((json(result)["principal"] as? String)?.hasPrefix("device:pump-api-01") == true)
            }
            // No client certificate: 401 with the action named.
            let anonymous = try await harness.curl([], url: harness.https + "/api/v1/audit")
            #expect(anonymous.status == 401, "\(anonymous.text)")
            #expect(json(anonymous)["action"] as? String == "api:audit.read")
            // Malformed ids never reach a handler.
            let bad = try await harness.curl(auth(admin) + ["-X", "POST"], url: harness.https + "/api/v1/devices/BAD_ID/revoke")
            #expect(bad.status == 403 || bad.status == 400, "\(bad.text)")

            let revoked = try await harness.curl(auth(auditor) + ["-X", "POST"], url: harness.https + "/api/v1/devices/pump-api-01/revoke")
            #expect(revoked.status == 403)
            let done = try await harness.curl(auth(admin) + ["-X", "POST"], url: harness.https + "/api/v1/devices/pump-api-01/revoke?reason=keyCompromise")
            #expect(done.status == 200, "\(done.text)")
            #expect(try harness.authority.registry.device("pump-api-01")?.status == .revoked)
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }

    @Test("a revoked operator certificate is refused; an operator CN without a recorded certificate and role never authenticates")
    func revokedOperator() async throws {
        let harness = try await ServerHarness.start()
        do {
            let admin = try issueOperator(harness, name: "olga", role: "admin")
            let url = harness.https + "/api/v1/audit"
            #expect(try await harness.curl(["--cert", admin.chain, "--key", admin.key], url: url).status == 200)
            _ = try harness.authority.revokeOperator(name: "olga", reason: .keyCompromise, now: Date())
            let refused = try await harness.curl(["--cert", admin.chain, "--key", admin.key], url: url)
            #expect(MutualTLSTests.refused(refused), "revoked operator: \(refused.status) \(refused.text)")
            #expect(refused.status != 200)
            // A certificate from the same CA with an operator CN but no role and no operator record (a service
            // certificate named warden-op-mallory): refused.
            let service = try harness.authority.ca.issueServiceCertificate(
                commonName: "warden-op-mallory", purposes: [.client], validity: WardenDuration(seconds: 3600), now: Date())
            let chain = try harness.directory.write("mallory.pem", service.chainPEM)
            let key = try harness.directory.write("mallory.key", service.privateKeyPEM)
            let mallory = try await harness.curl(["--cert", chain, "--key", key], url: url)
            #expect(MutualTLSTests.refused(mallory), "unrecorded operator CN: \(mallory.status) \(mallory.text)")
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }

    @Test("a newly applied policy version narrows a role at once (deny wins over the built-in admin grant)")
    func policyVersionReload() async throws {
        let harness = try await ServerHarness.start()
        do {
            let admin = try issueOperator(harness, name: "ada", role: "admin")
            let url = harness.https + "/api/v1/devices"
            let auth = ["--cert", admin.chain, "--key", admin.key]
            #expect(try await harness.curl(auth, url: url).status == 200)
            let narrowing = try harness.directory.write("no-list.json", #"""
                {"version":1,"statements":[
                  {"sid":"connect-self","effect":"allow","principals":["device:*"],"actions":["mqtt:connect"],"resources":["client:${device.id}"]},
                  {"sid":"admins-no-list","effect":"deny","principals":["role:admin"],"actions":["api:device.list"],"resources":["device:*"]}
                ]}
                """#)
            _ = try PolicyRelease.apply(path: narrowing, home: harness.authority.home.path, registry: harness.authority.registry, actor: "test", now: Date())
            let denied = try await harness.curl(auth, url: url)
            #expect(denied.status == 403, "\(denied.text)")
            #expect(json(denied)["statements"] as? [String] == ["admins-no-list"], "\(denied.text)")
            #expect(try await harness.curl(auth, url: harness.https + "/api/v1/audit").status == 200)
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }
}
