import Crypto
import Foundation
import SwiftASN1
import Testing
import WardenCore
import WardenTestSupport
import X509

@testable import WardenPKI

/// A CA (P-256 issuing key, fast key derivation for tests) in a temporary directory, optionally with a device profile.
struct TemplateTestCA {
    let directory: URL
    let ca: CertificateAuthority
    let rootPath: String
    let issuingPath: String

    init(profileJSON: String? = nil) throws {
        directory = try OpenSSLOracle.makeTemporaryDirectory()
        let layout = CALayout(home: directory.path + "/home")
        let passphrase = Array("template test passphrase".utf8)
        _ = try CAInitializer.initialize(
            layout: layout, organization: "Template Fleet", rootValidity: WardenDuration(seconds: 10 * 365 * 86_400),
            issuingValidity: WardenDuration(seconds: 5 * 365 * 86_400), passphrase: passphrase, now: Date(), keyIterations: 1000)
        if let profileJSON {
            try FileManager.default.createDirectory(atPath: layout.profilesDirectory, withIntermediateDirectories: true)
            try profileJSON.write(toFile: layout.deviceProfile, atomically: true, encoding: .utf8)
        }
        ca = try CertificateAuthority.load(layout: layout, passphrase: passphrase)
        rootPath = layout.rootCertificate
        issuingPath = try OpenSSLOracle.write(try ca.issuingPEM, to: "issuing.pem", in: directory)
    }

    /// A CSR for `id` made by openssl with a fresh key of `algorithm` (`P-256`, `P-384`, `Ed25519`); with `compressed`,
    /// the EC point is written in compressed form (X9.62 §4.3.6).
    func csr(_ id: String, algorithm: String, compressed: Bool = false) throws -> [UInt8] {
        let key = directory.path + "/\(id).key"
        let csr = directory.path + "/\(id).csr"
        let generate =
            algorithm == "Ed25519"
            ? ["genpkey", "-algorithm", "ED25519", "-out", key]
            : ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:\(algorithm)", "-out", key]
        #expect(try OpenSSLOracle.run(generate).succeeded)
        if compressed { #expect(try OpenSSLOracle.run(["ec", "-in", key, "-conv_form", "compressed", "-out", key]).succeeded) }
        #expect(try OpenSSLOracle.run(["req", "-new", "-key", key, "-subj", "/CN=\(id)", "-out", csr]).succeeded)
        return Array(try Data(contentsOf: URL(fileURLWithPath: csr)))
    }

    /// The certificate swift-certificates' builder makes for the same inputs: the reference the template must match.
    func builderCertificate(_ csr: ValidatedCSR, template: DeviceCertificateTemplate, serial: [UInt8]) throws -> Certificate {
        var subject = DistinguishedName()
        if let organization = ca.organizationName(of: ca.issuingCertificate.subject) {
            subject.append(RelativeDistinguishedName(.init(type: .RDNAttributeType.organizationName, utf8String: organization)))
        }
        subject.append(RelativeDistinguishedName(.init(type: .RDNAttributeType.commonName, utf8String: csr.deviceID.rawValue)))
        var usage = KeyUsage()
        usage.digitalSignature = ca.profile.keyUsage.contains("digitalSignature")
        usage.keyAgreement = ca.profile.keyUsage.contains("keyAgreement")
        var list: [Certificate.Extension] = [
            try Certificate.Extension(usage, critical: true),
            try Certificate.Extension(
                ExtendedKeyUsage(ca.profile.extendedKeyUsage.map { $0 == "clientAuth" ? .clientAuth : .serverAuth }), critical: false),
            try Certificate.Extension(SubjectKeyIdentifier(hash: csr.publicKey), critical: false),
            try Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: ca.issuingKeyIdentifier), critical: false),
        ]
        if ca.profile.subjectAltName == .dns, let suffix = ca.profile.dnsSuffix {
            list.append(try Certificate.Extension(SubjectAlternativeNames([.dnsName("\(csr.deviceID.rawValue).\(suffix)")]), critical: false))
        }
        if let url = ca.profile.crlDistributionPoint { list.append(CertificateAuthority.crlDistributionPoint(url)) }
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(bytes: serial), publicKey: csr.publicKey,
            notValidBefore: template.notBefore, notValidAfter: template.notAfter, issuer: ca.issuingCertificate.subject,
            subject: subject, signatureAlgorithm: .ecdsaWithSHA256, extensions: try Certificate.Extensions(list),
            issuerPrivateKey: ca.issuingKey)
    }

    func cleanUp() { try? FileManager.default.removeItem(at: directory) }
}

@Suite("device certificates built from a DER template")
struct DeviceCertificateTemplateTests {
    static let dnsProfile = """
        {"name": "device", "keyUsage": ["digitalSignature"], "extendedKeyUsage": ["clientAuth", "serverAuth"],
         "defaultValidity": "90d", "maximumValidity": "825d", "allowedKeyTypes": ["P-256", "P-384", "Ed25519"],
         "subjectAltName": "dns", "dnsSuffix": "devices.example.net", "crlDistributionPoint": "http://pki.example.net/issuing.crl"}
        """

    @Test(
        "the template's TBSCertificate is byte for byte the builder's; openssl -x509_strict sslclient and pkilint accept it",
        arguments: [("P-256", false), ("P-384", false), ("Ed25519", false), ("P-256", true), ("Ed25519", true)])
    func matchesBuilder(algorithm: String, dnsProfile: Bool) throws {
        let fixture = try TemplateTestCA(profileJSON: dnsProfile ? Self.dnsProfile : nil)
        defer { fixture.cleanUp() }
        let id = "dev-\(algorithm.lowercased())"
        let validated = try fixture.ca.validateCSR(
            try fixture.csr(id, algorithm: algorithm), deviceID: try DeviceID(id), source: "\(id).csr")
        let template = try fixture.ca.deviceTemplate(validity: nil, now: Date())
        let serial = SerialNumbers.randomBytes()
        let issued = try fixture.ca.issue(validated, template: template, serial: serial)
        let reference = try fixture.builderCertificate(validated, template: template, serial: serial)

        let parsed = try Certificate(derEncoded: issued.der)
        #expect(parsed.tbsCertificateBytes == reference.tbsCertificateBytes)
        #expect(parsed.signatureAlgorithm == reference.signatureAlgorithm)
        #expect(fixture.ca.issuingCertificate.publicKey.isValidSignature(parsed.signature, for: parsed))
        #expect(issued.serial == Digest.hex(serial))
        #expect(issued.publicKeyFingerprint == Digest.hex(Digest.sha256(validated.publicKey.subjectPublicKeyInfoBytes)))
        #expect(issued.sha256Fingerprint == Digest.hex(Digest.sha256(issued.der)))

        let leafPath = try OpenSSLOracle.write(PEMInput.pem(issued.der, label: "CERTIFICATE"), to: "\(id).pem", in: fixture.directory)
        let verified = try OpenSSLOracle.run([
            "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", fixture.rootPath, "-untrusted", fixture.issuingPath, leafPath,
        ])
        #expect(verified.succeeded, "\(verified.combined)")
        #expect(try OpenSSLOracle.pkilintCert(leafPath).isEmpty)
        let chainPath = try OpenSSLOracle.write(issued.chainPEM, to: "\(id)-chain.pem", in: fixture.directory)
        let chain = try OpenSSLOracle.run(["crl2pkcs7", "-nocrl", "-certfile", chainPath])
        #expect(chain.succeeded && chain.stdout.contains("BEGIN PKCS7"), "\(chain.combined)")
    }

    @Test("a CSR with a compressed EC point: refused by the PKCS#10 parser today; if ever accepted, certified with the canonical key")
    func compressedPoint() throws {
        let fixture = try TemplateTestCA()
        defer { fixture.cleanUp() }
        let csr = try fixture.csr("dev-compressed", algorithm: "P-256", compressed: true)
        #expect(csr.count > 0)
        let validated: ValidatedCSR
        do {
            validated = try fixture.ca.validateCSR(csr, deviceID: try DeviceID("dev-compressed"), source: "c.csr")
        } catch let error as WardenError {
            #expect(error.message.contains("not a valid PKCS#10 request"))
            return
        }
        #expect(validated.subjectPublicKeyInfo.count == 91)
        let template = try fixture.ca.deviceTemplate(validity: nil, now: Date())
        let serial = SerialNumbers.randomBytes()
        let issued = try fixture.ca.issue(validated, template: template, serial: serial)
        let reference = try fixture.builderCertificate(validated, template: template, serial: serial)
        #expect(try Certificate(derEncoded: issued.der).tbsCertificateBytes == reference.tbsCertificateBytes)
    }

    @Test("validity times: UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)")
    func times() {
        #expect(DeviceCertificateTemplate.time(Date(timeIntervalSince1970: 1_764_000_000)) == DERBytes.tlv(0x17, Array("251124160000Z".utf8)))
        #expect(DeviceCertificateTemplate.time(Date(timeIntervalSince1970: 2_524_608_000)) == DERBytes.tlv(0x18, Array("20500101000000Z".utf8)))
        #expect(DeviceCertificateTemplate.time(Date(timeIntervalSince1970: 2_524_607_999)) == DERBytes.tlv(0x17, Array("491231235959Z".utf8)))
    }

    @Test("PEM: the fast path decodes canonical single blocks and leaves everything else to the general parser")
    func pem() throws {
        let der = Array((0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let pem = PEMInput.pem(der, label: "CERTIFICATE REQUEST")
        #expect(pem == PEMDocument(type: "CERTIFICATE REQUEST", derBytes: der).pemString + "\n")
        let labels: Set<String> = ["CERTIFICATE REQUEST"]
        #expect(PEMInput.singleCanonicalBlock(Array(pem.utf8), labels: labels) == der)
        #expect(PEMInput.singleCanonicalBlock(Array(pem.replacingOccurrences(of: "\n", with: "\r\n").utf8), labels: labels) == der)
        #expect(PEMInput.singleCanonicalBlock(Array(pem.dropLast().utf8), labels: labels) == der)
        for (index, length) in [1, 2, 3, 47, 48, 49].enumerated() {
            let small = Array(der.prefix(length))
            #expect(PEMInput.singleCanonicalBlock(Array(PEMInput.pem(small, label: "CERTIFICATE REQUEST").utf8), labels: labels) == small, "\(index)")
        }
        // Not canonical, or not one block: the fast path declines (the general parser decides).
        let declined = [
            pem.replacingOccurrences(of: "REQUEST-----\n", with: "REQUEST-----\n\n"),
            "junk\n" + pem,
            pem + pem,
            pem.replacingOccurrences(of: "BEGIN CERTIFICATE REQUEST", with: "BEGIN CERTIFICATE"),
            pem.replacingOccurrences(of: "END CERTIFICATE REQUEST", with: "END X"),
            String(pem.prefix(40)) + "*" + String(pem.dropFirst(41)),
            pem.replacingOccurrences(of: "\n-----END", with: "=\n-----END"),
        ]
        for text in declined { #expect(PEMInput.singleCanonicalBlock(Array(text.utf8), labels: labels) == nil, "\(text)") }
        // Whatever the route, documents() gives the same DER as SwiftASN1's parser.
        #expect(try PEMInput.documents(Array(pem.utf8), labels: labels, what: "t") == [der])
        #expect(try PEMInput.documents(Array(("junk\n" + pem).utf8), labels: labels, what: "t") == [der])
    }
}
