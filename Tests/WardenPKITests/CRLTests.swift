import Crypto
import Foundation
import SwiftASN1
import Testing
import WardenTestSupport
import WardenCore
@_spi(FixedExpiryValidationTime) import X509

@testable import WardenPKI

/// A root + issuing CA + two device leaves, built in the test at a fixed reference time (no committed keys).
struct CRLTestPKI: Sendable {
    /// 2026-01-01T00:00:00Z.
    static let referenceTime = Date(timeIntervalSince1970: 1_767_225_600)

    let rootKey: Certificate.PrivateKey
    let root: Certificate
    let issuingKey: Certificate.PrivateKey
    let issuing: Certificate
    let leafKeys: [Certificate.PrivateKey]
    let leaves: [Certificate]

    /// - Parameter issuingCurve: "P-256" or "P-384" for the issuing CA key.
    init(issuingCurve: String = "P-256", issuingName: String = "Warden Test Issuing CA", leafCount: Int = 2) throws {
        let t = Self.referenceTime
        let rootKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let rootName = try DistinguishedName {
            OrganizationName("Warden Test")
            CommonName("Warden Test Root CA")
        }
        let root = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(bytes: [0x01]),
            publicKey: rootKey.publicKey,
            notValidBefore: t - 86_400,
            notValidAfter: t + 20 * 365 * 86_400,
            issuer: rootName,
            subject: rootName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: rootKey.publicKey)
            },
            issuerPrivateKey: rootKey
        )
        let issuingKey =
            issuingCurve == "P-384"
            ? Certificate.PrivateKey(P384.Signing.PrivateKey()) : Certificate.PrivateKey(P256.Signing.PrivateKey())
        let issuingSubject = try DistinguishedName {
            OrganizationName("Warden Test")
            CommonName(issuingName)
        }
        let issuing = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(bytes: [0x02]),
            publicKey: issuingKey.publicKey,
            notValidBefore: t - 86_400,
            notValidAfter: t + 10 * 365 * 86_400,
            issuer: rootName,
            subject: issuingSubject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: issuingKey.publicKey)
                AuthorityKeyIdentifier(keyIdentifier: SubjectKeyIdentifier(hash: rootKey.publicKey).keyIdentifier)
            },
            issuerPrivateKey: rootKey
        )
        var leafKeys: [Certificate.PrivateKey] = []
        var leaves: [Certificate] = []
        for index in 0..<leafCount {
            let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
            // The first leaf's serial has its top bit set, to exercise the INTEGER sign byte.
            let serial: [UInt8] = index == 0 ? [0x80, 0x00, 0x00, 0x10] : [0x10, 0x00 + UInt8(index)]
            let leaf = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(bytes: serial),
                publicKey: key.publicKey,
                notValidBefore: t - 3_600,
                notValidAfter: t + 365 * 86_400,
                issuer: issuingSubject,
                subject: try DistinguishedName { CommonName("device-\(index)") },
                signatureAlgorithm: issuingCurve == "P-384" ? .ecdsaWithSHA384 : .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.clientAuth])
                    AuthorityKeyIdentifier(keyIdentifier: SubjectKeyIdentifier(hash: issuingKey.publicKey).keyIdentifier)
                },
                issuerPrivateKey: issuingKey
            )
            leafKeys.append(key)
            leaves.append(leaf)
        }
        self.rootKey = rootKey
        self.root = root
        self.issuingKey = issuingKey
        self.issuing = issuing
        self.leafKeys = leafKeys
        self.leaves = leaves
    }

    static func pem(_ certificate: Certificate) throws -> String {
        try certificate.serializeAsPEM().pemString + "\n"
    }

    /// Writes root.pem, issuing.pem, chain.pem (issuing + root) and leaf<N>.pem into `dir`.
    func write(to dir: URL) throws {
        try OpenSSLOracle.write(Self.pem(root), to: "root.pem", in: dir)
        try OpenSSLOracle.write(Self.pem(issuing), to: "issuing.pem", in: dir)
        try OpenSSLOracle.write(Self.pem(issuing) + Self.pem(root), to: "chain.pem", in: dir)
        for (index, leaf) in leaves.enumerated() {
            try OpenSSLOracle.write(Self.pem(leaf), to: "leaf\(index).pem", in: dir)
        }
    }

    /// Signs a CRL for the issuing CA: thisUpdate = reference time, nextUpdate 7 days later.
    func crl(number: UInt64 = 1, revoked: [RevokedCertificate], thisUpdate: Date = Self.referenceTime) throws
        -> CertificateRevocationList
    {
        try CertificateRevocationList.sign(
            issuer: issuing,
            issuerKey: issuingKey,
            crlNumber: number,
            thisUpdate: thisUpdate,
            nextUpdate: thisUpdate + 7 * 86_400,
            revoked: revoked
        )
    }
}

@Suite("CertificateRevocationList")
struct CRLTests {
    static let t = CRLTestPKI.referenceTime

    static func entries(_ count: Int) -> [RevokedCertificate] {
        let reasons: [RevocationReason?] = [.keyCompromise, nil, .superseded, .unspecified, .cessationOfOperation]
        return (0..<count).map { index in
            // Descending serials, so the signer has to sort them.
            let serial = UInt32(0x00F0_0000 - index)
            return RevokedCertificate(
                serialNumber: withUnsafeBytes(of: serial.bigEndian) { Array($0) },
                revocationDate: t - Double(index) * 60,
                reason: reasons[index % reasons.count]
            )
        }
    }

    static func expectBadInput(
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) {
        do {
            try body()
            Issue.record("expected WardenError(.badInput), got success", sourceLocation: sourceLocation)
        } catch let error as WardenError {
            #expect(error.code == .badInput, "\(error.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected WardenError(.badInput), got \(error)", sourceLocation: sourceLocation)
        }
    }

    // MARK: openssl + pkilint

    @Test("Signed CRLs verify in openssl, show their contents, lint clean and round-trip", arguments: [0, 1, 1000])
    func signedCRL(count: Int) throws {
        let pki = try CRLTestPKI()
        let revoked = Self.entries(count)
        let crl = try pki.crl(number: 42, revoked: revoked)

        // Round trip.
        let parsed = try CertificateRevocationList(derEncoded: crl.derEncoded)
        let fromPEM = try CertificateRevocationList(pemEncoded: crl.pemEncoded)
        #expect(parsed.derEncoded == crl.derEncoded && fromPEM.derEncoded == crl.derEncoded)
        #expect(parsed.thisUpdate == Self.t)
        #expect(parsed.nextUpdate == Self.t + 7 * 86_400)
        #expect(parsed.crlNumber == 42)
        #expect(parsed.issuer == pki.issuing.subject)
        #expect(parsed.authorityKeyIdentifier == Array(try #require(try pki.issuing.extensions.subjectKeyIdentifier).keyIdentifier))
        #expect(parsed.revoked.count == count)
        #expect(parsed.isSignatureValid(issuer: pki.issuing))
        let sortedSerials = parsed.revoked.map(\.serialNumber)
        #expect(sortedSerials == sortedSerials.sorted { CertificateRevocationList.serialLess($0, $1) })
        for entry in revoked {
            let found = try #require(parsed.entry(forSerial: entry.serialNumber))
            #expect(found.revocationDate == entry.revocationDate)
            // unspecified is written as "no reason code" (RFC 5280 §5.3.1).
            #expect(found.reason == (entry.reason == .unspecified ? nil : entry.reason))
        }

        try OpenSSLOracle.withTemporaryDirectory { dir in
            try pki.write(to: dir)
            let path = try OpenSSLOracle.write(crl.pemEncoded, to: "crl.pem", in: dir)
            let chain = dir.appendingPathComponent("chain.pem").path

            let verify = try OpenSSLOracle.run(["crl", "-in", path, "-CAfile", chain, "-noout"])
            #expect(verify.succeeded && verify.combined.contains("verify OK"), "\(verify.combined)")

            let text = try OpenSSLOracle.run(["crl", "-in", path, "-noout", "-text"])
            #expect(text.succeeded)
            #expect(text.stdout.contains("Version 2 (0x1)"))
            #expect(text.stdout.contains("Signature Algorithm: ecdsa-with-SHA256"))
            #expect(text.stdout.contains("Issuer: O = Warden Test, CN = Warden Test Issuing CA"))
            #expect(text.stdout.contains("Last Update: Jan  1 00:00:00 2026 GMT"))
            #expect(text.stdout.contains("Next Update: Jan  8 00:00:00 2026 GMT"))
            #expect(text.stdout.contains("X509v3 CRL Number: \n                42"))
            #expect(text.stdout.contains("X509v3 Authority Key Identifier:"))
            if count == 0 {
                #expect(text.stdout.contains("No Revoked Certificates."))
            } else {
                #expect(text.stdout.contains("Serial Number: F00000"))
                #expect(text.stdout.contains("Key Compromise"))
                #expect(components(text.stdout, "Serial Number:") == count)
                let expectedReasons = revoked.filter { $0.reason != nil && $0.reason != .unspecified }.count
                #expect(components(text.stdout, "X509v3 CRL Reason Code") == expectedReasons)
            }

            let findings = try OpenSSLOracle.pkilintCRL(path)
            #expect(findings.isEmpty, "pkilint: \(findings)")
        }
    }

    private func components(_ text: String, _ needle: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    @Test("A P-384 issuer signs with ecdsa-with-SHA384")
    func p384Issuer() throws {
        let pki = try CRLTestPKI(issuingCurve: "P-384")
        let crl = try pki.crl(revoked: Self.entries(3))
        #expect(crl.signatureAlgorithm == .ecdsaWithSHA384)
        #expect(crl.isSignatureValid(issuer: pki.issuing))
        try OpenSSLOracle.withTemporaryDirectory { dir in
            try pki.write(to: dir)
            let path = try OpenSSLOracle.write(crl.derEncoded, to: "crl.der", in: dir)
            let verify = try OpenSSLOracle.run(
                ["crl", "-inform", "DER", "-in", path, "-CAfile", dir.appendingPathComponent("chain.pem").path, "-noout"]
            )
            #expect(verify.combined.contains("verify OK"), "\(verify.combined)")
            let text = try OpenSSLOracle.run(["crl", "-inform", "DER", "-in", path, "-noout", "-text"])
            #expect(text.stdout.contains("Signature Algorithm: ecdsa-with-SHA384"))
            #expect(try OpenSSLOracle.pkilintCRL(path).isEmpty)
        }
    }

    @Test("openssl verify -crl_check rejects the revoked leaf and accepts the other")
    func opensslVerifyCRLCheck() throws {
        let pki = try CRLTestPKI()
        let revokedLeaf = pki.leaves[0]
        let crl = try pki.crl(
            revoked: [RevokedCertificate(serialNumber: Array(revokedLeaf.serialNumber.bytes), revocationDate: Self.t, reason: .keyCompromise)]
                + Self.entries(5)
        )
        #expect(crl.entry(forSerial: Array(revokedLeaf.serialNumber.bytes))?.reason == .keyCompromise)
        #expect(crl.entry(forSerial: [0x00] + Array(revokedLeaf.serialNumber.bytes)) != nil)
        #expect(crl.entry(forSerial: Array(pki.leaves[1].serialNumber.bytes)) == nil)
        try OpenSSLOracle.withTemporaryDirectory { dir in
            try pki.write(to: dir)
            let crlPath = try OpenSSLOracle.write(crl.pemEncoded, to: "crl.pem", in: dir)
            let attime = "\(Int(Self.t.timeIntervalSince1970) + 3_600)"
            func verify(_ leaf: String) throws -> OpenSSLOracle.Output {
                try OpenSSLOracle.run([
                    "verify", "-attime", attime, "-crl_check", "-CRLfile", crlPath,
                    "-CAfile", dir.appendingPathComponent("chain.pem").path,
                    dir.appendingPathComponent(leaf).path,
                ])
            }
            let revoked = try verify("leaf0.pem")
            #expect(!revoked.succeeded)
            #expect(revoked.combined.contains("certificate revoked"), "\(revoked.combined)")
            let good = try verify("leaf1.pem")
            #expect(good.succeeded, "\(good.combined)")
            #expect(good.stdout.contains(": OK"))

            // After nextUpdate openssl calls the CRL expired: our nextUpdate is what it reads.
            let late = try OpenSSLOracle.run([
                "verify", "-attime", "\(Int(Self.t.timeIntervalSince1970) + 8 * 86_400)", "-crl_check", "-CRLfile", crlPath,
                "-CAfile", dir.appendingPathComponent("chain.pem").path, dir.appendingPathComponent("leaf1.pem").path,
            ])
            #expect(!late.succeeded && late.combined.contains("CRL has expired"), "\(late.combined)")
        }
    }

    @Test("Times: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §5.1.2.4)")
    func timeEncoding() throws {
        let pki = try CRLTestPKI()
        // 2049-12-31T23:59:59Z: thisUpdate and the entry in UTCTime, nextUpdate (a week later, 2050) in GeneralizedTime.
        let last2049 = Date(timeIntervalSince1970: 2_524_607_999)
        let crl = try pki.crl(revoked: [RevokedCertificate(serialNumber: [5], revocationDate: last2049)], thisUpdate: last2049)
        #expect(crl.thisUpdate == last2049)
        #expect(crl.revoked.first?.revocationDate == last2049)
        let in2050 = try pki.crl(revoked: [], thisUpdate: Date(timeIntervalSince1970: 2_524_608_000))
        #expect(in2050.thisUpdate == Date(timeIntervalSince1970: 2_524_608_000))
        // Fractions of a second are truncated.
        let fractional = try pki.crl(revoked: [], thisUpdate: Self.t + 0.75)
        #expect(fractional.thisUpdate == Self.t)

        let parsed = try OpenSSLOracle.run(["asn1parse", "-inform", "DER"], stdin: crl.derEncoded)
        let times = parsed.stdout.split(separator: "\n").filter { $0.contains("UTCTIME") || $0.contains("GENERALIZEDTIME") }
        #expect(times.count == 3, "\(parsed.stdout)")
        if times.count == 3 {
            #expect(times[0].contains("UTCTIME") && times[0].hasSuffix(":491231235959Z"), "\(times)")
            #expect(times[1].contains("GENERALIZEDTIME") && times[1].hasSuffix(":20500107235959Z"), "\(times)")
            #expect(times[2].contains("UTCTIME") && times[2].hasSuffix(":491231235959Z"), "\(times)")
        }
        let parsed2050 = try OpenSSLOracle.run(["asn1parse", "-inform", "DER"], stdin: in2050.derEncoded)
        #expect(parsed2050.stdout.contains(":20500101000000Z") && !parsed2050.stdout.contains("UTCTIME"), "\(parsed2050.stdout)")
        try OpenSSLOracle.withTemporaryDirectory { dir in
            let path = try OpenSSLOracle.write(in2050.derEncoded, to: "crl.der", in: dir)
            #expect(try OpenSSLOracle.pkilintCRL(path).isEmpty)
        }
    }

    @Test("Signing is deterministic apart from the ECDSA signature")
    func deterministicTBS() throws {
        let pki = try CRLTestPKI()
        let entries = Self.entries(20)
        let a = try pki.crl(revoked: entries)
        let b = try pki.crl(revoked: entries.reversed())
        #expect(a.tbsBytes == b.tbsBytes)
        #expect(a.revoked == b.revoked)
    }

    // MARK: negative vectors

    @Test("Every single-byte change either fails to parse (.badInput) or fails the signature")
    func tamperedBytes() throws {
        let pki = try CRLTestPKI()
        let crl = try pki.crl(revoked: Self.entries(2))
        var parsedButInvalid = 0
        for position in crl.derEncoded.indices {
            var tampered = crl.derEncoded
            tampered[position] ^= 0x01
            do {
                let parsed = try CertificateRevocationList(derEncoded: tampered)
                #expect(!parsed.isSignatureValid(issuer: pki.issuing), "byte \(position) accepted")
                parsedButInvalid += 1
            } catch let error as WardenError {
                #expect(error.code == .badInput)
            }
        }
        #expect(parsedButInvalid > 50)  // serials, dates, names, signature: parse fine, verify fails
    }

    @Test("Wrong issuer: another CA, the root, or a same-named CA with another key")
    func wrongIssuer() throws {
        let pki = try CRLTestPKI()
        let crl = try pki.crl(revoked: Self.entries(1))
        #expect(crl.isSignatureValid(issuer: pki.issuing))
        #expect(!crl.isSignatureValid(issuer: pki.root))
        #expect(!crl.isSignatureValid(issuer: pki.leaves[0]))
        let impostor = try CRLTestPKI()  // same names, fresh keys
        #expect(!crl.isSignatureValid(issuer: impostor.issuing))
        let renamed = try CRLTestPKI(issuingName: "Other CA")
        #expect(!renamed.issuing.subject.isEmpty)
        #expect(!crl.isSignatureValid(issuer: renamed.issuing))
    }

    @Test("Garbage and truncations are .badInput")
    func garbage() throws {
        let pki = try CRLTestPKI()
        let der = try pki.crl(revoked: Self.entries(3)).derEncoded
        Self.expectBadInput { _ = try CertificateRevocationList(derEncoded: []) }
        Self.expectBadInput { _ = try CertificateRevocationList(derEncoded: [0x30, 0x00]) }
        Self.expectBadInput { _ = try CertificateRevocationList(derEncoded: Array("not a crl".utf8)) }
        Self.expectBadInput { _ = try CertificateRevocationList(derEncoded: der + [0x00]) }
        Self.expectBadInput { _ = try CertificateRevocationList(derEncoded: [UInt8](repeating: 0x30, count: 16 * 1024 * 1024 + 1)) }
        for length in 1..<der.count {
            Self.expectBadInput { _ = try CertificateRevocationList(derEncoded: Array(der.prefix(length))) }
        }
        Self.expectBadInput { _ = try CertificateRevocationList(pemEncoded: "") }
        Self.expectBadInput { _ = try CertificateRevocationList(pemEncoded: "-----BEGIN X509 CRL-----\n!!\n-----END X509 CRL-----") }
        Self.expectBadInput {
            _ = try CertificateRevocationList(pemEncoded: PEMDocument(type: "CERTIFICATE", derBytes: der).pemString)
        }
        // A certificate is not a CRL.
        Self.expectBadInput { _ = try CertificateRevocationList(pemEncoded: CRLTestPKI.pem(pki.root).replacingOccurrences(of: "CERTIFICATE", with: "X509 CRL")) }
    }

    @Test("sign refuses inconsistent input")
    func signRefuses() throws {
        let pki = try CRLTestPKI()
        func sign(
            key: Certificate.PrivateKey? = nil,
            number: UInt64 = 1,
            next: Date = Self.t + 86_400,
            revoked: [RevokedCertificate] = []
        ) throws {
            _ = try CertificateRevocationList.sign(
                issuer: pki.issuing,
                issuerKey: key ?? pki.issuingKey,
                crlNumber: number,
                thisUpdate: Self.t,
                nextUpdate: next,
                revoked: revoked
            )
        }
        Self.expectBadInput { try sign(key: pki.rootKey) }
        Self.expectBadInput { try sign(number: 0) }
        Self.expectBadInput { try sign(next: Self.t) }
        Self.expectBadInput { try sign(revoked: [RevokedCertificate(serialNumber: [0, 0], revocationDate: Self.t)]) }
        Self.expectBadInput { try sign(revoked: [RevokedCertificate(serialNumber: [UInt8](repeating: 1, count: 21), revocationDate: Self.t)]) }
        Self.expectBadInput {
            try sign(revoked: [RevokedCertificate(serialNumber: [7], revocationDate: Self.t, reason: .removeFromCRL)])
        }
        Self.expectBadInput {
            try sign(revoked: [
                RevokedCertificate(serialNumber: [7], revocationDate: Self.t),
                RevokedCertificate(serialNumber: [0, 7], revocationDate: Self.t - 1),
            ])
        }
        // A leaf (no cRLSign) cannot sign CRLs.
        do {
            _ = try CertificateRevocationList.sign(
                issuer: pki.leaves[0], issuerKey: pki.leafKeys[0], crlNumber: 1,
                thisUpdate: Self.t, nextUpdate: Self.t + 1, revoked: []
            )
            Issue.record("a leaf signed a CRL")
        } catch let error as WardenError {
            #expect(error.code == .policyViolation)
        }
    }

    // MARK: interop: a CRL made by `openssl ca -gencrl`

    @Test("We parse and verify a CRL that openssl ca -gencrl signed")
    func parseOpenSSLCRL() throws {
        let pki = try CRLTestPKI()
        try OpenSSLOracle.withTemporaryDirectory { dir in
            try pki.write(to: dir)
            let keyPath = try OpenSSLOracle.write(try pki.issuingKey.serializeAsPEM().pemString + "\n", to: "issuing.key", in: dir)
            // index.txt: one revoked entry (serial 0ABC, keyCompromise) and one valid entry.
            try OpenSSLOracle.write(
                "R\t360101000000Z\t251201000000Z,keyCompromise\t0ABC\tunknown\t/CN=device-x\n"
                    + "V\t360101000000Z\t\t0ABD\tunknown\t/CN=device-y\n",
                to: "index.txt", in: dir)
            try OpenSSLOracle.write("1000\n", to: "crlnumber", in: dir)
            let config = """
                [ ca ]
                default_ca = test
                [ test ]
                database = \(dir.path)/index.txt
                crlnumber = \(dir.path)/crlnumber
                default_md = sha256
                default_crl_days = 7
                crl_extensions = crl_ext
                [ crl_ext ]
                authorityKeyIdentifier = keyid:always
                """
            let configPath = try OpenSSLOracle.write(config, to: "ca.cnf", in: dir)
            let out = try OpenSSLOracle.run([
                "ca", "-gencrl", "-config", configPath, "-cert", dir.appendingPathComponent("issuing.pem").path,
                "-keyfile", keyPath, "-out", dir.appendingPathComponent("openssl.crl").path,
            ])
            try #require(out.succeeded, "\(out.combined)")
            let pem = try String(contentsOf: dir.appendingPathComponent("openssl.crl"), encoding: .utf8)
            let crl = try CertificateRevocationList(pemEncoded: pem)
            #expect(crl.crlNumber == 0x1000)
            #expect(crl.isSignatureValid(issuer: pki.issuing))
            #expect(!crl.isSignatureValid(issuer: pki.root))
            #expect(crl.revoked.count == 1)
            let entry = try #require(crl.entry(forSerial: [0x0A, 0xBC]))
            #expect(entry.reason == .keyCompromise)
            #expect(entry.revocationDate == Date(timeIntervalSince1970: 1_764_547_200))  // 2025-12-01
            #expect(crl.entry(forSerial: [0x0A, 0xBD]) == nil)
            #expect(crl.authorityKeyIdentifier == Array(try #require(try pki.issuing.extensions.subjectKeyIdentifier).keyIdentifier))
        }
    }

    // MARK: reasons

    @Test("RevocationReason names", arguments: RevocationReason.allCases)
    func reasonNames(_ reason: RevocationReason) throws {
        #expect(RevocationReason(name: reason.name) == reason)
        #expect(RevocationReason(name: reason.name.uppercased()) == reason)
        let kebab = reason.name.reduce(into: "") { out, c in
            if c.isUppercase, !out.isEmpty, out.last != "-" { out += "-" }
            out += c.lowercased()
        }
        #expect(RevocationReason(name: kebab) == reason, "\(kebab)")
        let data = try JSONEncoder().encode(reason)
        #expect(try JSONDecoder().decode(RevocationReason.self, from: data) == reason)
    }

    @Test("Only removeFromCRL is refused in complete CRLs")
    func completeCRLReasons() {
        #expect(RevocationReason.allCases.filter { !$0.isValidInCompleteCRL } == [.removeFromCRL])
    }

    @Test("RevocationReason rejects unknown names", arguments: ["", "compromise", "key compromised", "7", "keyCompromise!"])
    func unknownReason(_ name: String) {
        #expect(RevocationReason(name: name) == nil)
    }

    @Test("Some RFC 5280 names spelled as people write them")
    func reasonSpellings() {
        #expect(RevocationReason(name: "keyCompromise") == .keyCompromise)
        #expect(RevocationReason(name: "key-compromise") == .keyCompromise)
        #expect(RevocationReason(name: "cessation-of-operation") == .cessationOfOperation)
        #expect(RevocationReason(name: "caCompromise") == .caCompromise)
        #expect(RevocationReason(name: "ca-compromise") == .caCompromise)
        #expect(RevocationReason.caCompromise.name == "cACompromise")
        #expect(RevocationReason(name: "Superseded") == .superseded)
    }

    @Test("pkilint: an unparsable file is an error, never a clean report")
    func pkilintGarbage() throws {
        try OpenSSLOracle.withTemporaryDirectory { dir in
            let path = try OpenSSLOracle.write("garbage\n", to: "bad.crl", in: dir)
            #expect(throws: OpenSSLOracle.OracleError.self) { _ = try OpenSSLOracle.pkilintCRL(path) }
            #expect(throws: OpenSSLOracle.OracleError.self) { _ = try OpenSSLOracle.pkilintCert(path) }
        }
    }
}

@Suite("CRLRevocationPolicy")
struct CRLRevocationPolicyTests {
    static let t = CRLTestPKI.referenceTime

    /// Root-signed CRL about the issuing CA (for checkAll).
    static func rootCRL(_ pki: CRLTestPKI, revoked: [RevokedCertificate] = []) throws -> CertificateRevocationList {
        try CertificateRevocationList.sign(
            issuer: pki.root, issuerKey: pki.rootKey, crlNumber: 1,
            thisUpdate: t, nextUpdate: t + 30 * 86_400, revoked: revoked
        )
    }

    /// nil when the chain validates, else the failure reasons.
    static func validate(
        _ pki: CRLTestPKI,
        leaf: Certificate,
        crls: [CertificateRevocationList],
        at time: Date = t + 3_600,
        checkAll: Bool = false
    ) async -> [String]? {
        var verifier = Verifier(rootCertificates: CertificateStore([pki.root])) {
            RFC5280Policy(fixedExpiryValidationTime: time)
            CRLRevocationPolicy(crls: crls, validationTime: time, checkAll: checkAll)
        }
        switch await verifier.validate(leaf: leaf, intermediates: CertificateStore([pki.issuing])) {
        case .validCertificate:
            return nil
        case .couldNotValidate(let failures):
            return failures.map(\.policyFailureReason.description)
        }
    }

    static func revokedEntry(_ certificate: Certificate, _ reason: RevocationReason? = .keyCompromise) -> RevokedCertificate {
        RevokedCertificate(serialNumber: Array(certificate.serialNumber.bytes), revocationDate: t, reason: reason)
    }

    @Test("A listed leaf fails with a sentence naming serial and reason; an unlisted one passes")
    func revokedAndGood() async throws {
        let pki = try CRLTestPKI()
        let crl = try pki.crl(revoked: [Self.revokedEntry(pki.leaves[0])] + CRLTests.entries(50))
        let revoked = try #require(await Self.validate(pki, leaf: pki.leaves[0], crls: [crl]))
        #expect(revoked.count == 1)
        #expect(revoked.first?.contains("certificate serial 80000010") == true, "\(revoked)")
        #expect(revoked.first?.contains("revoked (keyCompromise)") == true, "\(revoked)")
        #expect(await Self.validate(pki, leaf: pki.leaves[1], crls: [crl]) == nil)
        // Reason-less entries still revoke.
        let noReason = try pki.crl(revoked: [Self.revokedEntry(pki.leaves[1], nil)])
        let failures = try #require(await Self.validate(pki, leaf: pki.leaves[1], crls: [noReason]))
        #expect(failures.first?.contains("was revoked at") == true, "\(failures)")
    }

    @Test("No CRL, or only CRLs from other or forged issuers: fail closed")
    func noCRL() async throws {
        let pki = try CRLTestPKI()
        let none = try #require(await Self.validate(pki, leaf: pki.leaves[1], crls: []))
        #expect(none.first?.contains("No CRL for issuer") == true, "\(none)")
        #expect(none.first?.contains("Warden Test Issuing CA") == true, "\(none)")
        // Same issuer name, different key: the signature does not verify, so it is ignored.
        let impostor = try CRLTestPKI()
        let forged = try impostor.crl(revoked: [])
        #expect(forged.issuer == pki.issuing.subject)
        let withForged = try #require(await Self.validate(pki, leaf: pki.leaves[1], crls: [forged]))
        #expect(withForged.first?.contains("No CRL for issuer") == true)
        // A CRL from the root does not cover the leaf.
        let rootOnly = try #require(await Self.validate(pki, leaf: pki.leaves[1], crls: [try Self.rootCRL(pki)]))
        #expect(rootOnly.first?.contains("No CRL for issuer") == true)
        // A forged CRL cannot un-revoke: the genuine one still counts.
        let genuine = try pki.crl(revoked: [Self.revokedEntry(pki.leaves[0])])
        #expect(await Self.validate(pki, leaf: pki.leaves[0], crls: [forged, genuine]) != nil)
    }

    @Test("Expired and not-yet-valid CRLs fail")
    func freshness() async throws {
        let pki = try CRLTestPKI()
        let crl = try pki.crl(revoked: [])  // thisUpdate t, nextUpdate t + 7 days
        #expect(await Self.validate(pki, leaf: pki.leaves[1], crls: [crl], at: Self.t) == nil)
        #expect(await Self.validate(pki, leaf: pki.leaves[1], crls: [crl], at: Self.t + 7 * 86_400) == nil)
        let expired = try #require(await Self.validate(pki, leaf: pki.leaves[1], crls: [crl], at: Self.t + 7 * 86_400 + 1))
        #expect(expired.first?.contains("expired") == true, "\(expired)")
        let future = try pki.crl(revoked: [], thisUpdate: Self.t + 7_200)
        let early = try #require(await Self.validate(pki, leaf: pki.leaves[1], crls: [future], at: Self.t + 3_600))
        #expect(early.first?.contains("not valid yet") == true, "\(early)")
    }

    @Test("The newest CRL in force decides")
    func newestWins() async throws {
        let pki = try CRLTestPKI()
        let older = try pki.crl(number: 1, revoked: [], thisUpdate: Self.t - 86_400)
        let newer = try pki.crl(number: 2, revoked: [Self.revokedEntry(pki.leaves[0], .certificateHold)], thisUpdate: Self.t)
        let held = try #require(await Self.validate(pki, leaf: pki.leaves[0], crls: [newer, older]))
        #expect(held.first?.contains("(certificateHold)") == true, "\(held)")
        // A hold released in a later CRL: the later CRL wins.
        let released = try pki.crl(number: 3, revoked: [], thisUpdate: Self.t + 60)
        #expect(await Self.validate(pki, leaf: pki.leaves[0], crls: [older, newer, released], at: Self.t + 120) == nil)
        // ...but not before it is issued.
        #expect(await Self.validate(pki, leaf: pki.leaves[0], crls: [older, newer, released], at: Self.t + 30) != nil)
    }

    @Test("checkAll also checks the issuing CA against the root's CRL")
    func checkAll() async throws {
        let pki = try CRLTestPKI()
        let leafCRL = try pki.crl(revoked: [])
        let cleanRoot = try Self.rootCRL(pki)
        let revokingRoot = try Self.rootCRL(pki, revoked: [Self.revokedEntry(pki.issuing, .caCompromise)])
        #expect(await Self.validate(pki, leaf: pki.leaves[1], crls: [leafCRL, revokingRoot]) == nil)
        #expect(await Self.validate(pki, leaf: pki.leaves[1], crls: [leafCRL, cleanRoot], checkAll: true) == nil)
        let revoked = try #require(await Self.validate(pki, leaf: pki.leaves[1], crls: [leafCRL, revokingRoot], checkAll: true))
        #expect(revoked.first?.contains("revoked (cACompromise)") == true, "\(revoked)")
        #expect(revoked.first?.contains("Warden Test Issuing CA") == true, "\(revoked)")
        let missing = try #require(await Self.validate(pki, leaf: pki.leaves[1], crls: [leafCRL], checkAll: true))
        #expect(missing.first?.contains("No CRL for issuer") == true && missing.first?.contains("Root CA") == true, "\(missing)")
    }

    @Test("The policy agrees with openssl verify -crl_check on the same CRL", arguments: [0, 1])
    func agreesWithOpenSSL(leafIndex: Int) async throws {
        let pki = try CRLTestPKI()
        let crl = try pki.crl(revoked: [Self.revokedEntry(pki.leaves[0])])
        let ours = await Self.validate(pki, leaf: pki.leaves[leafIndex], crls: [crl]) == nil
        let theirs = try OpenSSLOracle.withTemporaryDirectory { dir in
            try pki.write(to: dir)
            let crlPath = try OpenSSLOracle.write(crl.pemEncoded, to: "crl.pem", in: dir)
            return try OpenSSLOracle.run([
                "verify", "-attime", "\(Int(Self.t.timeIntervalSince1970) + 3_600)", "-crl_check", "-CRLfile", crlPath,
                "-CAfile", dir.appendingPathComponent("chain.pem").path,
                dir.appendingPathComponent("leaf\(leafIndex).pem").path,
            ]).succeeded
        }
        #expect(ours == theirs)
        #expect(ours == (leafIndex == 1))
    }
}
