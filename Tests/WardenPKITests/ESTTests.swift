import Foundation
import Testing
import WardenTestSupport
import WardenCore

@testable import WardenPKI

@Suite("EST certs-only PKCS#7 (RFC 7030 §4.1.3) against openssl pkcs7")
struct ESTTests {
    @Test("the CA bundle encodes to a certs-only message that openssl prints, and decodes back")
    func bundleRoundTrip() throws {
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        let bundle = try fixture.ca.bundlePEM
        let der = try PKCS7CertsOnly.encode(pem: bundle, source: "bundle")
        let path = try OpenSSLOracle.write(der, to: "cacerts.p7", in: fixture.directory)
        let out = try OpenSSLOracle.run(["pkcs7", "-inform", "DER", "-in", path, "-print_certs", "-noout"])
        #expect(out.succeeded, "\(out.combined)")
        #expect(out.stdout.contains("subject=O = Warden OCSP Test, CN = Warden OCSP Test Root CA"))
        #expect(out.stdout.contains("subject=O = Warden OCSP Test, CN = Warden OCSP Test Issuing CA 1"))
        let expected = try CertificatePEM.derCertificates(Array(bundle.utf8), source: "bundle")
        #expect(Set(try PKCS7CertsOnly.decode(der)) == Set(expected))
    }

    @Test("a message made by openssl crl2pkcs7 decodes to the same certificates")
    func decodesOpenSSL() throws {
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        let bundlePath = try OpenSSLOracle.write(try fixture.ca.bundlePEM, to: "bundle.pem", in: fixture.directory)
        let out = try OpenSSLOracle.run(["crl2pkcs7", "-nocrl", "-certfile", bundlePath, "-outform", "DER"])
        #expect(out.succeeded)
        let decoded = try PKCS7CertsOnly.decode(out.stdoutBytes)
        #expect(decoded == (try CertificatePEM.derCertificates(Array(try fixture.ca.bundlePEM.utf8), source: "bundle")))
    }

    @Test("a single leaf verifies with openssl against the root and the issuing CA")
    func leafMessage() throws {
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        let der = try PKCS7CertsOnly.encode(certificatesDER: [fixture.leaf.der])
        let path = try OpenSSLOracle.write(der, to: "leaf.p7", in: fixture.directory)
        let printed = try OpenSSLOracle.run(["pkcs7", "-inform", "DER", "-in", path, "-print_certs"])
        let leafPath = try OpenSSLOracle.write(printed.stdout, to: "printed.pem", in: fixture.directory)
        let verified = try OpenSSLOracle.run([
            "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", fixture.rootPath, "-untrusted", fixture.issuingPath, leafPath,
        ])
        #expect(verified.succeeded, "\(verified.combined)")
    }

    @Test("encoding refuses no certificates, too many, and non-certificates")
    func encodeNegative() throws {
        #expect(throws: WardenError.badInput("")) { try PKCS7CertsOnly.encode(certificatesDER: []) }
        #expect(throws: WardenError.badInput("")) { try PKCS7CertsOnly.encode(certificatesDER: [[0x30, 0x00]]) }
        let fixture = try OCSPTestCA()
        defer { fixture.cleanUp() }
        #expect(throws: WardenError.badInput("")) {
            try PKCS7CertsOnly.encode(certificatesDER: Array(repeating: fixture.leaf.der, count: PKCS7CertsOnly.maximumCertificates + 1))
        }
    }

    @Test(
        "decoding refuses what is not a certs-only SignedData",
        arguments: [
            [], [0x30, 0x00], [0x04, 0x01, 0x00], [0x30, 0x0B, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01],
            Array("-----BEGIN PKCS7-----".utf8),
        ] as [[UInt8]])
    func decodeNegative(bytes: [UInt8]) {
        #expect(throws: WardenError.badInput("")) { try PKCS7CertsOnly.decode(bytes) }
    }
}
