import Foundation
import Testing
import WardenTestSupport
import WardenCore

@testable import WardenPKI

/// A CA made with the real API, a device certificate issued from an openssl CSR, and the files openssl needs.
struct OCSPTestCA {
    let directory: URL
    let ca: CertificateAuthority
    let leaf: IssuedCertificate
    let rootPath: String
    let issuingPath: String
    let leafPath: String

    init(organization: String = "Warden OCSP Test") throws {
        directory = try OpenSSLOracle.makeTemporaryDirectory()
        let layout = CALayout(home: directory.path + "/home")
        let passphrase = Array("ocsp test passphrase".utf8)
        _ = try CAInitializer.initialize(
            layout: layout, organization: organization, rootValidity: WardenDuration(seconds: 10 * 365 * 86_400),
            issuingValidity: WardenDuration(seconds: 5 * 365 * 86_400), passphrase: passphrase, now: Date(), keyIterations: 1000)
        ca = try CertificateAuthority.load(layout: layout, passphrase: passphrase)
        let key = directory.path + "/device.key"
        let csr = directory.path + "/device.csr"
        #expect(try OpenSSLOracle.run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]).succeeded)
        #expect(try OpenSSLOracle.run(["req", "-new", "-key", key, "-subj", "/CN=sensor-ocsp", "-out", csr]).succeeded)
        let validated = try ca.validateCSR(
            Array(try Data(contentsOf: URL(fileURLWithPath: csr))), deviceID: try DeviceID("sensor-ocsp"), source: csr)
        leaf = try ca.issue(validated, validity: nil, now: Date())
        rootPath = layout.rootCertificate
        issuingPath = try OpenSSLOracle.write(try ca.issuingPEM, to: "issuing.pem", in: directory)
        leafPath = try OpenSSLOracle.write(PEMInput.pem(leaf.der, label: "CERTIFICATE"), to: "leaf.pem", in: directory)
    }

    /// `openssl ocsp` builds a request for the leaf (with a nonce unless `nonce` is false).
    func request(nonce: Bool = true, digest: String = "-sha1") throws -> [UInt8] {
        let path = directory.path + "/req-\(UUID().uuidString).der"
        let out = try OpenSSLOracle.run(
            ["ocsp", digest, "-issuer", issuingPath, "-cert", leafPath, "-reqout", path] + (nonce ? [] : ["-no_nonce"]))
        #expect(out.succeeded, "\(out.combined)")
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// `openssl ocsp` verifies `response` against the root and prints it; the request is given (and no `-cert`, which
    /// would make openssl build a new request with another nonce) so openssl also checks the nonce.
    func check(request: [UInt8], response: [UInt8]) throws -> OpenSSLOracle.Output {
        let requestPath = try OpenSSLOracle.write(request, to: "req-\(UUID().uuidString).der", in: directory)
        let responsePath = try OpenSSLOracle.write(response, to: "resp-\(UUID().uuidString).der", in: directory)
        return try OpenSSLOracle.run([
            "ocsp", "-reqin", requestPath, "-respin", responsePath, "-CAfile", rootPath, "-resp_text",
        ])
    }

    func cleanUp() { try? FileManager.default.removeItem(at: directory) }
}

@Suite("OCSP responder (RFC 6960) against openssl ocsp")
struct OCSPTests {
    @Test("good: signed by the issuing CA, verified by openssl, nonce echoed, nextUpdate within an hour")
    func good() throws {
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        let request = try fixture.request()
        var asked: [String] = []
        let response = fixture.ca.ocspResponder().respond(to: request, now: Date()) { serial in
            asked.append(serial)
            return .good
        }
        #expect(asked == [fixture.leaf.serial])
        let out = try fixture.check(request: request, response: response)
        #expect(out.succeeded, "\(out.combined)")
        #expect(out.combined.contains("Response verify OK"))
        #expect(out.combined.contains("Cert Status: good"))
        #expect(!out.combined.contains("Nonce Verify error"))
        #expect(!out.combined.contains("WARNING"))
        #expect(out.combined.contains("OCSP Nonce"))
        #expect(out.combined.contains("Responder Id: ") && !out.combined.contains("Responder Id: O ="))
    }

    @Test("revoked: time and reason reported", arguments: [RevocationReason.keyCompromise, .cessationOfOperation, .superseded])
    func revoked(reason: RevocationReason) throws {
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        let request = try fixture.request()
        let revokedAt = Date(timeIntervalSince1970: 1_767_225_600)
        let response = fixture.ca.ocspResponder().respond(to: request, now: Date()) { _ in .revoked(time: revokedAt, reason: reason) }
        let out = try fixture.check(request: request, response: response)
        #expect(out.combined.contains("Response verify OK"), "\(out.combined)")
        #expect(out.combined.contains("Cert Status: revoked"))
        #expect(out.combined.contains("Revocation Reason: \(reason.name)"))
        #expect(out.combined.contains("Revocation Time: Jan  1 00:00:00 2026 GMT"))
    }

    @Test("unknown serial, SHA-256 CertID and a request without nonce")
    func unknownAndSHA256() throws {
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        let request = try fixture.request(nonce: false, digest: "-sha256")
        let response = fixture.ca.ocspResponder().respond(to: request, now: Date()) { _ in .unknown }
        let out = try fixture.check(request: request, response: response)
        #expect(out.combined.contains("Response verify OK"), "\(out.combined)")
        #expect(out.combined.contains("Cert Status: unknown"))
        #expect(!out.combined.contains("OCSP Nonce"))
    }

    @Test("a request for another CA is answered unauthorized without asking the registry")
    func foreignIssuer() throws {
        let ours = try OCSPTestCA()
        let theirs = try OCSPTestCA(organization: "Someone Else")
        defer {
            ours.cleanUp()
            theirs.cleanUp()
        }
        let request = try theirs.request()
        let response = ours.ca.ocspResponder().respond(to: request, now: Date()) { _ in
            Issue.record("the status closure must not be asked about another CA's certificate")
            return .good
        }
        #expect(response == OCSPResponder.unsuccessful(.unauthorized))
    }

    @Test(
        "malformed requests get a DER malformedRequest response, never a crash",
        arguments: [
            [], [0x30], [0x30, 0x00], [0x04, 0x02, 0x01, 0x02], Array("GET / HTTP/1.1".utf8), [0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
            [0x30, 0x03, 0x30, 0x01, 0x00], Array(repeating: 0x30, count: 20_000),
        ] as [[UInt8]])
    func malformed(bytes: [UInt8]) throws {
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        let response = fixture.ca.ocspResponder().respond(to: bytes, now: Date()) { _ in .good }
        #expect(response == [0x30, 0x03, 0x0A, 0x01, 0x01])
        let path = try OpenSSLOracle.write(response, to: "malformed.der", in: fixture.directory)
        let out = try OpenSSLOracle.run(["ocsp", "-respin", path, "-resp_text", "-noverify"])
        #expect(out.combined.contains("malformedrequest"), "\(out.combined)")
    }

    @Test("truncated and bit-flipped real requests never crash and never answer good for garbage")
    func mutatedRequests() throws {
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        let request = try fixture.request()
        let responder = fixture.ca.ocspResponder()
        for length in stride(from: 0, to: request.count, by: 7) {
            let response = responder.respond(to: Array(request.prefix(length)), now: Date()) { _ in .good }
            #expect(response == OCSPResponder.unsuccessful(.malformedRequest))
        }
        for index in request.indices {
            var mutated = request
            mutated[index] ^= 0xFF
            _ = responder.respond(to: mutated, now: Date()) { _ in .good }
        }
    }

    @Test("a failing registry lookup is answered internalError")
    func registryFailure() throws {
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        let response = fixture.ca.ocspResponder().respond(to: try fixture.request(), now: Date()) { _ in
            throw WardenError.storage("database is locked")
        }
        #expect(response == OCSPResponder.unsuccessful(.internalError))
    }

    @Test("validity is clamped to at most one hour")
    func validityClamp() throws {
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        #expect(fixture.ca.ocspResponder(validity: 86_400).validity == 3_600)
        #expect(fixture.ca.ocspResponder(validity: 600).validity == 600)
        let request = try fixture.request()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let response = fixture.ca.ocspResponder().respond(to: request, now: now) { _ in .good }
        let path = try OpenSSLOracle.write(response, to: "r.der", in: fixture.directory)
        let out = try OpenSSLOracle.run(["ocsp", "-respin", path, "-resp_text", "-noverify"])
        #expect(out.combined.contains("This Update: Jan 15 08:00:00 2027 GMT"), "\(out.combined)")
        #expect(out.combined.contains("Next Update: Jan 15 09:00:00 2027 GMT"))
    }
}
