import Foundation
import Testing
import WardenAuthority
import WardenCore
import WardenPKI
import WardenTestSupport

@testable import WardenServer

@Suite("Mutual TLS: chain + CRL + registry at the handshake and on every request", .serialized, .timeLimit(.minutes(3)))
struct MutualTLSTests {
    /// Whether curl was refused: at the handshake (no HTTP status) or with 403.
    static func refused(_ result: ServerHarness.HTTPResult) -> Bool {
        result.status == 403 || (result.status == 0 && result.exit != 0)
    }

    @Test("simplereenroll with the current certificate issues a new one; without a certificate 401; other CN 403")
    func reenroll() async throws {
        let harness = try await ServerHarness.start()
        do {
            let device = try harness.enrollDirectly("sensor-renew-1")
            let (_, csr) = try await harness.csrFromKey(device.key, commonName: "sensor-renew-1")
            let url = harness.https + "/.well-known/est/simplereenroll"
            let pkcs10 = ["-H", "Content-Type: application/pkcs10", "--data-binary", "@" + csr]

            let renewed = try await harness.curl(["--cert", device.chain, "--key", device.key] + pkcs10, url: url)
            #expect(renewed.status == 200, "\(renewed.stderr) \(renewed.text)")
            let leaf = try await harness.certificates(fromEST: renewed.body, name: "renewed")
            let verified = try await harness.openssl([
                "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", harness.rootPath, "-untrusted", harness.issuingPath, leaf,
            ])
            #expect(verified.status == 0, "\(verified.combined)")
            let record = try #require(try harness.authority.registry.device("sensor-renew-1"))
            #expect(record.currentSerial != device.serial)
            #expect(try harness.authority.registry.certificates(of: "sensor-renew-1").count == 2)

            // The new certificate authenticates too.
            let withNew = try await harness.curl(["--cert", leaf, "--key", device.key] + pkcs10, url: url)
            #expect(withNew.status == 200, "\(withNew.text)")

            let anonymous = try await harness.curl(pkcs10, url: url)
            #expect(anonymous.status == 401, "\(anonymous.text)")

            let (_, otherCSR) = try await harness.csr("sensor-renew-2")
            let otherCN = try await harness.curl(
                ["--cert", device.chain, "--key", device.key, "-H", "Content-Type: application/pkcs10", "--data-binary", "@" + otherCSR],
                url: url)
            #expect(otherCN.status == 403, "\(otherCN.text)")
            #expect(otherCN.text.contains("does not match"))

            let metrics = try await harness.metrics()
            #expect(metrics.contains(#"warden_est_renewals_total{result="success"} 2"#), "\(metrics)")
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }

    @Test("a revoked device's certificate is refused on every route, and the refusal is counted")
    func revokedDevice() async throws {
        let harness = try await ServerHarness.start()
        do {
            let device = try harness.enrollDirectly("sensor-revoked-1")
            let before = try await harness.curl(["--cert", device.chain, "--key", device.key], url: harness.https + "/healthz")
            #expect(before.status == 200)
            _ = try harness.authority.revoke(try DeviceID("sensor-revoked-1"), reason: .keyCompromise, now: Date())
            let (_, csr) = try await harness.csrFromKey(device.key, commonName: "sensor-revoked-1")
            for (path, extra) in [
                ("/.well-known/est/simplereenroll", ["-H", "Content-Type: application/pkcs10", "--data-binary", "@" + csr]),
                ("/healthz", []), ("/crl", []),
            ] {
                let result = try await harness.curl(["--cert", device.chain, "--key", device.key] + extra, url: harness.https + path)
                #expect(Self.refused(result), "\(path): \(result.status) \(result.exit) \(result.text)")
            }
            #expect(try harness.authority.registry.certificates(of: "sensor-revoked-1").count == 1)
            let metrics = try await harness.metrics()
            #expect(metrics.contains(#"warden_tls_client_verification_failures_total{reason="chain_invalid"}"#), "\(metrics)")
            #expect(!metrics.contains(#"warden_tls_client_verification_failures_total{reason="chain_invalid"} 0"#))
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }

    @Test("valid certificates the registry does not know are refused: row deleted, never recorded, other CA")
    func unknownCertificates() async throws {
        let harness = try await ServerHarness.start()
        do {
            let url = harness.https + "/healthz"
            // 1. Enrolled, then the device row deleted behind Warden's back with sqlite3.
            let deleted = try harness.enrollDirectly("sensor-deleted-1")
            let ok = try await harness.curl(["--cert", deleted.chain, "--key", deleted.key], url: url)
            #expect(ok.status == 200)
            let sql = try await ServerHarness.launch("sqlite3", [
                harness.authority.home.registryPath,
                "PRAGMA foreign_keys=OFF; DELETE FROM device_groups WHERE device_id='sensor-deleted-1'; DELETE FROM devices WHERE id='sensor-deleted-1';",
            ])
            #expect(sql.status == 0, "\(sql.stderr)")
            let afterDelete = try await harness.curl(["--cert", deleted.chain, "--key", deleted.key], url: url)
            #expect(Self.refused(afterDelete), "\(afterDelete.status) \(afterDelete.text)")

            // 2. Signed by the same issuing CA but never recorded (no device row).
            let ghost = try harness.issueUnrecorded("sensor-ghost-1")
            let ghostResult = try await harness.curl(["--cert", ghost.chain, "--key", ghost.key], url: url)
            #expect(Self.refused(ghostResult), "\(ghostResult.status) \(ghostResult.text)")

            // 3. A second, unrecorded certificate for an enrolled, active device.
            _ = try harness.enrollDirectly("sensor-twin-1")
            let twin = try harness.issueUnrecorded("sensor-twin-1")
            let twinResult = try await harness.curl(["--cert", twin.chain, "--key", twin.key], url: url)
            #expect(Self.refused(twinResult), "\(twinResult.status) \(twinResult.text)")

            // 4. A certificate from another Warden CA.
            let other = try TemporaryDirectory()
            let otherHome = WardenHome(path: other.file("home"))
            _ = try CAInitializer.initialize(
                layout: otherHome.ca, organization: "Other Fleet", rootValidity: WardenDuration(seconds: 10 * 365 * 86_400),
                issuingValidity: WardenDuration(seconds: 5 * 365 * 86_400), passphrase: ServerHarness.passphrase, now: Date(),
                keyIterations: 1000)
            let otherAuthority = try Authority.open(home: otherHome, passphrase: ServerHarness.passphrase, actor: "test")
            let (otherKey, otherCSR) = try DeviceKeys.make("sensor-twin-1", in: other, name: "foreign")
            let foreign = try otherAuthority.enroll(
                try DeviceID("sensor-twin-1"), csr: Array(try Data(contentsOf: URL(fileURLWithPath: otherCSR))), csrSource: otherCSR,
                groups: [], validity: nil, now: Date())
            let foreignChain = try other.write("foreign.pem", foreign.chainPEM)
            let foreignResult = try await harness.curl(["--cert", foreignChain, "--key", otherKey], url: url)
            #expect(Self.refused(foreignResult), "\(foreignResult.status) \(foreignResult.text)")

            let metrics = try await harness.metrics()
            for reason in ["unknown_device", "unknown_certificate", "chain_invalid"] {
                #expect(metrics.contains(#"warden_tls_client_verification_failures_total{reason="\#(reason)"}"#))
            }
            #expect(!metrics.contains(#"warden_tls_client_verification_failures_total{reason="unknown_device"} 0"#), "\(metrics)")
            #expect(!metrics.contains(#"warden_tls_client_verification_failures_total{reason="unknown_certificate"} 0"#))
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }

    @Test("the validator itself: accepted identity, then device_revoked once the registry says so")
    func validatorVerdicts() async throws {
        let harness = try await ServerHarness.start()
        do {
            let device = try harness.enrollDirectly("sensor-verdict-1")
            let chain = try CertificatePEM.derCertificates(Array(try Data(contentsOf: URL(fileURLWithPath: device.chain))), source: "chain")
            let metrics = ServerMetrics()
            let validator = try ClientCertificateValidator(
                trustPEM: Array(try Data(contentsOf: URL(fileURLWithPath: harness.rootPath))),
                issuingPEM: Array(try harness.authority.ca.issuingPEM.utf8), crlFile: CRLFile(path: harness.authority.home.ca.crl),
                registry: harness.authority.registry, metrics: metrics)
            #expect(await validator.validate(chainDER: chain) == .accepted(PeerIdentity(deviceID: "sensor-verdict-1", serial: device.serial)))
            #expect(await validator.validate(chainDER: [chain[0]]) == .accepted(PeerIdentity(deviceID: "sensor-verdict-1", serial: device.serial)))
            _ = try harness.authority.revoke(try DeviceID("sensor-verdict-1"), reason: .cessationOfOperation, now: Date())
            guard case .rejected(let reason, _) = await validator.validate(chainDER: chain) else {
                Issue.record("a revoked device was accepted")
                throw TestSupportError("accepted")
            }
            // The CRL (re-read because the file changed) and the registry both refuse it; the chain check runs first.
            #expect(reason == .chainInvalid)
            guard case .rejected(.chainInvalid, _) = await validator.validate(chainDER: [[0x30, 0x00]]) else {
                throw TestSupportError("garbage accepted")
            }
            #expect(await validator.validate(chainDER: []) != .accepted(PeerIdentity(deviceID: "", serial: "")))
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }
}

extension ServerHarness {
    /// A base64 DER CSR for an existing key.
    func csrFromKey(_ key: String, commonName: String) async throws -> (key: String, csrBase64: String) {
        let der = directory.file("\(commonName)-\(UUID().uuidString.prefix(8)).csr.der")
        let made = try await openssl(["req", "-new", "-key", key, "-subj", "/CN=\(commonName)", "-outform", "DER", "-out", der])
        guard made.status == 0 else { throw TestSupportError("openssl req failed: \(made.stderr)") }
        let encoded = try Data(contentsOf: URL(fileURLWithPath: der)).base64EncodedString()
        return (key, try directory.write(URL(fileURLWithPath: der).lastPathComponent + ".b64", encoded))
    }

    /// A certificate signed by this CA for `id` but never written to the registry.
    func issueUnrecorded(_ id: String) throws -> (key: String, chain: String) {
        let (key, csr) = try DeviceKeys.make(id, in: directory, name: "\(id)-unrecorded-\(UUID().uuidString.prefix(6))")
        let validated = try authority.ca.validateCSR(
            Array(try Data(contentsOf: URL(fileURLWithPath: csr))), deviceID: try DeviceID(id), source: csr)
        let issued = try authority.ca.issue(validated, validity: nil, now: Date())
        return (key, try directory.write("\(id)-unrecorded-\(issued.serial.prefix(6)).pem", issued.chainPEM))
    }
}
