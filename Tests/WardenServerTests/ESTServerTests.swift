import Foundation
import Testing
import WardenAuthority
import WardenCore
import WardenTestSupport

@testable import WardenServer

@Suite("EST over HTTPS with curl", .serialized, .timeLimit(.minutes(3)))
struct ESTServerTests {
    @Test("curl enrolls with a bootstrap token; the leaf verifies with openssl; the token never works twice")
    func enrollWithToken() async throws {
        let harness = try await ServerHarness.start()
        let registry = harness.authority.registry
        do {
            // cacerts: issuing CA + root, certs-only PKCS#7 in base64.
            let cacerts = try await harness.curl([], url: harness.https + "/.well-known/est/cacerts")
            #expect(cacerts.status == 200, "\(cacerts.stderr) \(cacerts.text)")
            let caPEM = try await harness.certificates(fromEST: cacerts.body, name: "cacerts")
            let caText = try String(contentsOfFile: caPEM, encoding: .utf8)
            #expect(caText.components(separatedBy: "BEGIN CERTIFICATE").count == 3)

            let id = try DeviceID("sensor-est-1")
            let token = try harness.authority.issueBootstrapToken(id, now: Date())
            let (key, csr) = try await harness.csr(id.rawValue)
            let enrolled = try await harness.curl(
                ["-u", "\(id):\(token)", "-H", "Content-Type: application/pkcs10", "--data-binary", "@" + csr],
                url: harness.https + "/.well-known/est/simpleenroll")
            #expect(enrolled.status == 200, "\(enrolled.stderr) \(enrolled.text)")
            let leaf = try await harness.certificates(fromEST: enrolled.body, name: "enrolled")
            let verified = try await harness.openssl([
                "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", harness.rootPath, "-untrusted", caPEM, leaf,
            ])
            #expect(verified.status == 0, "\(verified.combined)")
            let device = try #require(try registry.device(id.rawValue))
            #expect(device.status == .active)
            #expect(try registry.certificateCount() == 1)

            // The issued leaf is immediately usable for mutual TLS.
            let health = try await harness.curl(["--cert", leaf, "--key", key], url: harness.https + "/healthz")
            #expect(health.status == 200 && health.text == "ok\n")

            // Same token again, even with a fresh CSR: refused, nothing recorded.
            let (_, csr2) = try await harness.csr(id.rawValue)
            let again = try await harness.curl(
                ["-u", "\(id):\(token)", "-H", "Content-Type: application/pkcs10", "--data-binary", "@" + csr2],
                url: harness.https + "/.well-known/est/simpleenroll")
            #expect(again.status == 401, "\(again.text)")
            #expect(again.text.contains("already used"))
            #expect(try registry.certificateCount() == 1)
            #expect(try registry.device(id.rawValue)?.currentSerial == device.currentSerial)

            let metrics = try await harness.metrics()
            #expect(metrics.contains(#"warden_est_enrollments_total{result="success"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"warden_est_enrollments_total{result="failure"} 1"#))
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }

    @Test("wrong token, missing auth, mismatched CN, bad body: refused with clear errors and no registry change")
    func enrollNegative() async throws {
        let harness = try await ServerHarness.start()
        let registry = harness.authority.registry
        do {
            let id = try DeviceID("sensor-est-2")
            let token = try harness.authority.issueBootstrapToken(id, now: Date())
            let (_, csr) = try await harness.csr(id.rawValue)
            let url = harness.https + "/.well-known/est/simpleenroll"
            let pkcs10 = ["-H", "Content-Type: application/pkcs10"]

            let noAuth = try await harness.curl(pkcs10 + ["--data-binary", "@" + csr], url: url)
            #expect(noAuth.status == 401 && noAuth.text.hasPrefix("error: "))

            let wrong = try await harness.curl(pkcs10 + ["-u", "\(id):not-the-token", "--data-binary", "@" + csr], url: url)
            #expect(wrong.status == 401 && wrong.text.contains("wrong"), "\(wrong.text)")

            let otherID = try await harness.curl(pkcs10 + ["-u", "sensor-est-3:\(token)", "--data-binary", "@" + csr], url: url)
            #expect(otherID.status == 403, "\(otherID.text)")  // CSR CN is sensor-est-2

            let badID = try await harness.curl(pkcs10 + ["-u", "Admin/x:\(token)", "--data-binary", "@" + csr], url: url)
            #expect(badID.status == 401)

            let notBase64 = try await harness.curl(pkcs10 + ["-u", "\(id):\(token)", "--data-binary", "%%%not base64%%%"], url: url)
            #expect(notBase64.status == 400, "\(notBase64.text)")

            let wrongType = try await harness.curl(
                ["-u", "\(id):\(token)", "-H", "Content-Type: application/json", "--data-binary", "@" + csr], url: url)
            #expect(wrongType.status == 415, "\(wrongType.text)")

            let big = try harness.directory.write("big.b64", String(repeating: "QUFB", count: 40 * 1024))
            let tooLarge = try await harness.curl(pkcs10 + ["-u", "\(id):\(token)", "--data-binary", "@" + big], url: url)
            #expect(tooLarge.status == 413, "\(tooLarge.text)")

            #expect(try registry.certificateCount() == 0)
            #expect(try registry.device(id.rawValue) == nil)

            // None of the failures burnt the token.
            let ok = try await harness.curl(pkcs10 + ["-u", "\(id):\(token)", "--data-binary", "@" + csr], url: url)
            #expect(ok.status == 200, "\(ok.text)")
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }
}
