import Foundation
import Testing
import WardenAuthority
import WardenCore
import WardenPKI
import WardenTestSupport

@testable import WardenServer

@Suite("OCSP, CRL, health and metrics endpoints with openssl and curl", .serialized, .timeLimit(.minutes(3)))
struct OCSPAndCRLServerTests {
    @Test("openssl ocsp over HTTP: good, then revoked after authority.revoke; the response verifies; GET form too")
    func ocsp() async throws {
        let harness = try await ServerHarness.start()
        do {
            let device = try harness.enrollDirectly("sensor-ocsp-1")
            let leaf = device.chain  // openssl takes the first certificate of the file
            func query(_ base: String) async throws -> WardenProcess.Result {
                try await harness.openssl([
                    "ocsp", "-issuer", harness.issuingPath, "-cert", leaf, "-url", base + "/ocsp", "-CAfile", harness.rootPath,
                    "-timeout", "20",
                ])
            }
            let good = try await query(harness.http)
            #expect(good.status == 0, "\(good.combined)")
            #expect(good.combined.contains("Response verify OK"))
            #expect(good.combined.contains("\(leaf): good"))
            #expect(!good.combined.contains("WARNING") && !good.combined.contains("Nonce Verify error"))

            _ = try harness.authority.revoke(try DeviceID("sensor-ocsp-1"), reason: .keyCompromise, now: Date())
            let revoked = try await query(harness.http)
            #expect(revoked.combined.contains("Response verify OK"), "\(revoked.combined)")
            #expect(revoked.combined.contains("\(leaf): revoked"))
            #expect(revoked.combined.contains("Reason: keyCompromise"))

            // RFC 6960 Appendix A.1 GET: /ocsp/{url-encoded base64 DER}.
            let request = harness.directory.file("ocsp-req.der")
            let made = try await harness.openssl(["ocsp", "-issuer", harness.issuingPath, "-cert", leaf, "-reqout", request, "-no_nonce"])
            #expect(made.status == 0)
            let encoded = try Data(contentsOf: URL(fileURLWithPath: request)).base64EncodedString()
                .addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            let viaGET = try await harness.curl([], url: harness.http + "/ocsp/" + encoded)
            #expect(viaGET.status == 200)
            let responsePath = try harness.directory.write("ocsp-get.der", viaGET.body)
            let checked = try await harness.openssl([
                "ocsp", "-respin", responsePath, "-issuer", harness.issuingPath, "-cert", leaf, "-CAfile", harness.rootPath,
            ])
            #expect(checked.combined.contains("Response verify OK") && checked.combined.contains("revoked"), "\(checked.combined)")

            // Unknown serial: a certificate this CA signed but never recorded.
            let ghost = try harness.issueUnrecorded("sensor-ocsp-ghost")
            let unknown = try await harness.openssl([
                "ocsp", "-issuer", harness.issuingPath, "-cert", ghost.chain, "-url", harness.http + "/ocsp", "-CAfile", harness.rootPath,
                "-timeout", "20",
            ])
            #expect(unknown.combined.contains(": unknown"), "\(unknown.combined)")

            // Garbage is a DER malformedRequest, with 200 as RFC 6960 Appendix A.1 expects.
            let garbage = try await harness.curl(
                ["-H", "Content-Type: application/ocsp-request", "--data-binary", "not an ocsp request"], url: harness.http + "/ocsp")
            #expect(garbage.status == 200 && garbage.body == [0x30, 0x03, 0x0A, 0x01, 0x01])
            let wrongType = try await harness.curl(
                ["-H", "Content-Type: text/plain", "--data-binary", "@" + request], url: harness.http + "/ocsp")
            #expect(wrongType.status == 415)
            let big = try harness.directory.write("big.der", Array(repeating: UInt8(0x30), count: 70 * 1024))
            let tooLarge = try await harness.curl(
                ["-H", "Content-Type: application/ocsp-request", "--data-binary", "@" + big], url: harness.https + "/ocsp")
            #expect(tooLarge.status == 413)
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }

    @Test("/crl is DER that openssl parses, on both ports, and follows revocations; /healthz and /metrics work")
    func crlHealthMetrics() async throws {
        let harness = try await ServerHarness.start()
        do {
            let device = try harness.enrollDirectly("sensor-crl-1")
            for base in [harness.https, harness.http] {
                let crl = try await harness.curl([], url: base + "/crl")
                #expect(crl.status == 200)
                let path = try harness.directory.write("crl-\(UUID().uuidString).der", crl.body)
                let parsed = try await harness.openssl(["crl", "-inform", "DER", "-in", path, "-noout", "-text", "-CAfile", harness.issuingPath])
                #expect(parsed.status == 0, "\(parsed.combined)")
                #expect(parsed.combined.contains("No Revoked Certificates"))
            }
            _ = try harness.authority.revoke(try DeviceID("sensor-crl-1"), reason: .superseded, now: Date())
            let after = try await harness.curl([], url: harness.http + "/crl")
            let path = try harness.directory.write("crl-after.der", after.body)
            let parsed = try await harness.openssl(["crl", "-inform", "DER", "-in", path, "-noout", "-text"])
            #expect(parsed.combined.uppercased().contains(device.serial.uppercased()), "\(parsed.combined)")

            let health = try await harness.curl([], url: harness.https + "/healthz")
            #expect(health.status == 200 && health.text == "ok\n")
            let plainHealth = try await harness.curl([], url: harness.http + "/healthz")
            #expect(plainHealth.status == 200)
            let notOnPlain = try await harness.curl([], url: harness.http + "/metrics")
            #expect(notOnPlain.status == 404)
            let metrics = try await harness.metrics()
            #expect(metrics.contains(#"warden_http_requests_total{route="/crl",method="GET",status="200"}"#), "\(metrics)")
            #expect(metrics.contains(#"warden_http_requests_total{route="/healthz",method="GET",status="200"}"#))
            #expect(metrics.contains("# TYPE warden_tls_client_verification_failures_total counter"))
            #expect(metrics.contains("warden_est_enrollments_total"))
            #expect(metrics.contains("warden_est_renewals_total"))
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }
}
