import Foundation
import Testing
import WardenAuthority
import WardenCore
import WardenPKI
import WardenTestSupport

@Suite("device profile")
struct ProfileTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("the built-in profile is the shipped pki/profiles/device.json")
    func builtInMatchesShipped() throws {
        let path = Self.repository.appendingPathComponent("pki/profiles/device.json").path
        let shipped = try CertificateProfile.parse(json: try SecureFile.read(path), source: path)
        #expect(shipped == CertificateProfile.builtInDevice)
    }

    @Test("profiles with unknown fields or bad values are refused, naming the field", arguments: [
        (#"{"name":"device","keyUsage":["digitalSignature"],"extendedKeyUsage":["clientAuth"],"defaultValidity":"90d","maximumValidity":"825d","allowedKeyTypes":["P-256"],"subjectAltName":"none","typo":1}"#, "typo"),
        (#"{"name":"device","keyUsage":["keyCertSign"],"extendedKeyUsage":["clientAuth"],"defaultValidity":"90d","maximumValidity":"825d","allowedKeyTypes":["P-256"],"subjectAltName":"none"}"#, "keyCertSign"),
        (#"{"name":"device","keyUsage":["digitalSignature"],"extendedKeyUsage":["clientAuth"],"defaultValidity":"900d","maximumValidity":"825d","allowedKeyTypes":["P-256"],"subjectAltName":"none"}"#, "defaultValidity"),
        (#"{"name":"device","keyUsage":["digitalSignature"],"extendedKeyUsage":["clientAuth"],"defaultValidity":"90d","maximumValidity":"825d","allowedKeyTypes":["RSA-1024"],"subjectAltName":"none"}"#, "RSA-1024"),
        (#"{"name":"device","keyUsage":["digitalSignature"],"extendedKeyUsage":["clientAuth"],"defaultValidity":"90d","maximumValidity":"825d","allowedKeyTypes":["P-256"],"subjectAltName":"none","crlDistributionPoint":"ftp://x"}"#, "crlDistributionPoint"),
        ("not json", "not a valid profile"),
    ])
    func refused(json: String, mentions: String) {
        #expect {
            try CertificateProfile.parse(json: Array(json.utf8), source: "p.json")
        } throws: { error in
            (error as? WardenError).map { $0.code == .badInput && $0.message.contains(mentions) && $0.message.contains("p.json") } ?? false
        }
    }

    @Test("a configured CRL distribution point and DNS SAN end up in the certificate, still openssl- and pkilint-clean")
    func crlDistributionPointAndSAN() throws {
        let dir = try TemporaryDirectory()
        let home = WardenHome(path: dir.file("home"))
        let passphrase = Array("profile test passphrase".utf8)
        _ = try CAInitializer.initialize(
            layout: home.ca, organization: "Profile Fleet", rootValidity: try WardenDuration(parsing: "10y"),
            issuingValidity: try WardenDuration(parsing: "2y"), passphrase: passphrase, now: Date(), keyIterations: 1_000)
        var profile = CertificateProfile.builtInDevice
        profile.crlDistributionPoint = "http://pki.example.com/crl.der"
        profile.subjectAltName = .dns
        profile.dnsSuffix = "devices.example.com"
        try SecureFile.writeAtomically(try profile.jsonBytes(), to: home.ca.deviceProfile)

        let authority = try Authority.open(home: home, passphrase: passphrase, actor: "test")
        let csr = try DeviceKeys.make("cdp-device", in: dir).csr
        let issued = try authority.enroll(
            try DeviceID("cdp-device"), csr: try SecureFile.read(csr), csrSource: csr, groups: [], validity: nil, now: Date())
        let leaf = try dir.write("leaf.der", issued.der)
        let text = try Oracle.openssl(["x509", "-in", leaf, "-inform", "DER", "-noout", "-text"]).stdout
        #expect(text.contains("URI:http://pki.example.com/crl.der"))
        #expect(text.contains("DNS:cdp-device.devices.example.com"))
        let pem = try dir.write("leaf.pem", issued.chainPEM)
        let verified = try Oracle.openssl(["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", home.ca.rootCertificate, "-untrusted", home.ca.issuingCertificate, pem])
        #expect(verified.status == 0, "\(verified.combined)")
        #expect(try Oracle.pkilintCertificate(leaf) == [])
    }
}
