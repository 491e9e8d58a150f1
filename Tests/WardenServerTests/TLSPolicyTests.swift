import Foundation
import Testing
import WardenTestSupport

@testable import WardenServer

@Suite("HTTPS listener TLS policy", .serialized, .timeLimit(.minutes(2)))
struct TLSPolicyTests {
    @Test("TLS 1.2 and 1.3 accepted, TLS 1.1 refused; a client certificate is requested (root named) but optional")
    func versionsAndClientCertificateRequest() async throws {
        let harness = try await ServerHarness.start()
        do {
            let tls12 = try await harness.curl(["--tlsv1.2", "--tls-max", "1.2"], url: harness.https + "/healthz")
            #expect(tls12.status == 200, "\(tls12.stderr)")
            let tls13 = try await harness.curl(["--tlsv1.3"], url: harness.https + "/healthz")
            #expect(tls13.status == 200, "\(tls13.stderr)")

            let tls11 = try await harness.openssl([
                "s_client", "-connect", "127.0.0.1:\(harness.httpsPort)", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0",
                "-CAfile", harness.rootPath,
            ])
            #expect(tls11.status != 0, "\(tls11.combined)")

            let handshake = try await harness.openssl([
                "s_client", "-connect", "127.0.0.1:\(harness.httpsPort)", "-CAfile", harness.rootPath, "-verify_return_error",
                "-verify_ip", "127.0.0.1",
            ])
            #expect(handshake.status == 0, "\(handshake.combined)")
            #expect(handshake.combined.contains("Verify return code: 0 (ok)"))
            #expect(handshake.combined.contains("Acceptable client certificate CA names"))
            #expect(handshake.combined.contains("CN = Warden Server Test Root CA"))
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }
}
