import Foundation
import Testing
import WardenTestSupport

@Suite("warden device enroll")
struct EnrollTests {
    @Test(
        "issued device certificates pass openssl -x509_strict sslclient and pkilint",
        arguments: [DeviceKeys.Algorithm.p256, .p384, .ed25519])
    func issuedCertificatesAreConformant(algorithm: DeviceKeys.Algorithm) throws {
        let fleet = try Fleet()
        let id = "dev-\(algorithm.rawValue)"
        let csr = try fleet.csr(id, algorithm: algorithm)
        let out = fleet.dir.file("\(id).crt.pem")
        let enrolled = try fleet.run("device", "enroll", id, "--csr", csr, "--out", out, "--group", "pumps")
        #expect(enrolled.status == 0, "\(enrolled.stderr)")
        let verified = try Oracle.openssl([
            "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", fleet.rootPEM, "-untrusted", fleet.issuingPEM, out,
        ])
        #expect(verified.status == 0, "openssl verify: \(verified.stdout) \(verified.stderr)")
        // Lint the leaf alone (first PEM block of the chain file).
        let chain = try String(contentsOfFile: out, encoding: .utf8)
        let leaf = String(chain[..<chain.range(of: "-----END CERTIFICATE-----")!.upperBound]) + "\n"
        let leafPath = try fleet.dir.write("\(id)-leaf.pem", leaf)
        #expect(try Oracle.pkilintCertificate(leafPath) == [])
        let text = try Oracle.openssl(["x509", "-in", leafPath, "-noout", "-text"]).stdout
        #expect(text.contains("Subject: O = Test Fleet, CN = \(id)"))
        #expect(text.contains("TLS Web Client Authentication"))
        #expect(text.contains("Digital Signature"))
        #expect(text.contains("X509v3 Subject Key Identifier"))
        #expect(text.contains("X509v3 Authority Key Identifier"))
        #expect(!text.contains("CA:TRUE"))
    }

    @Test("validity defaults to 90 days and is configurable within the profile maximum")
    func validity() throws {
        let fleet = try Fleet()
        let csr = try fleet.csr("valid-one")
        let out = try fleet.run("device", "enroll", "valid-one", "--csr", csr)
        #expect(out.status == 0)
        let leafPath = try fleet.dir.write("leaf.pem", out.stdout)
        let endDate = try Oracle.openssl(["x509", "-in", leafPath, "-noout", "-checkend", String(89 * 86_400)])
        #expect(endDate.status == 0)
        let notTooLong = try Oracle.openssl(["x509", "-in", leafPath, "-noout", "-checkend", String(91 * 86_400)])
        #expect(notTooLong.status != 0)
        let csr2 = try fleet.csr("valid-two")
        #expect(try fleet.run("device", "enroll", "valid-two", "--csr", csr2, "--validity", "30d").status == 0)
        let csr3 = try fleet.csr("valid-three")
        let tooLong = try fleet.run("device", "enroll", "valid-three", "--csr", csr3, "--validity", "10y")
        #expect(tooLong.status == 1)
        #expect(tooLong.stderr.contains("maximum"))
    }

    @Test("serials are positive, at most 20 octets, random and unique")
    func serials() throws {
        let fleet = try Fleet()
        var serials = Set<String>()
        for index in 0..<5 {
            let chain = try fleet.enroll("serial-\(index)")
            let serial = try Oracle.openssl(["x509", "-in", chain, "-noout", "-serial"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "serial=", with: "")
            #expect(serial.count == 32, "16 octets, no leading zero")
            #expect(Int(serial.prefix(1), radix: 16)! < 8, "positive")
            serials.insert(serial)
        }
        #expect(serials.count == 5)
    }

    @Test("list and show expose status and groups")
    func listAndShow() throws {
        let fleet = try Fleet()
        try fleet.enroll("pump-a", group: "pumps")
        try fleet.enroll("gate-b", group: "gates")
        let list = try fleet.run("device", "list", "--json")
        let devices = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]
        #expect(devices?.map { $0["id"] as? String } == ["gate-b", "pump-a"])
        #expect(devices?.first?["groups"] as? [String] == ["gates"])
        let shown = try fleet.run("device", "show", "pump-a", "--json")
        #expect(shown.status == 0)
        #expect(shown.stdout.contains("\"status\" : \"active\""))
        let missing = try fleet.run("device", "show", "nobody-here")
        #expect(missing.status == 2)
        #expect(missing.oneLineError)
    }
}

/// Bad input: one clear line on stderr, non-zero exit, and nothing left behind.
@Suite("bad input leaves nothing behind")
struct BadInputTests {
    /// Runs `arguments` expecting refusal, and checks that no device, certificate, audit event or output file appeared.
    func expectRefusal(
        _ fleet: Fleet, _ arguments: [String], status: Int32, mentions: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let before = (try fleet.count("devices"), try fleet.count("certificates"), try fleet.count("audit_events"))
        let out = fleet.dir.file("refused-\(UUID().uuidString).pem")
        let result = try fleet.warden.run(arguments + ["--out", out])
        #expect(result.status == status, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.oneLineError, "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(mentions), "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: out), sourceLocation: sourceLocation)
        let stray = fleet.files(in: fleet.dir.path).filter { $0.hasSuffix(".tmp") }
        #expect(stray.isEmpty, "temporary files left: \(stray)", sourceLocation: sourceLocation)
        let after = (try fleet.count("devices"), try fleet.count("certificates"), try fleet.count("audit_events"))
        #expect(after == before, sourceLocation: sourceLocation)
    }

    @Test("tampered CSR")
    func tamperedCSR() throws {
        let fleet = try Fleet()
        let csr = try fleet.csr("tamper-me")
        // Change one letter of the signed subject (tamper-me -> tamper-mf): the self-signature no longer verifies.
        let derPath = fleet.dir.file("t.der")
        #expect(try Oracle.openssl(["req", "-in", csr, "-outform", "DER", "-out", derPath]).status == 0)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: derPath)))
        let needle = Array("tamper-me".utf8)
        let at = (0...(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle }!
        bytes[at + needle.count - 1] = UInt8(ascii: "f")
        let tampered = try fleet.dir.write("tampered.der", bytes)
        try expectRefusal(fleet, ["device", "enroll", "tamper-mf", "--csr", tampered], status: 1, mentions: "tampered.der")
        try expectRefusal(fleet, ["device", "enroll", "tamper-me", "--csr", tampered], status: 1, mentions: "signature")
    }

    @Test("CSR with a corrupted signature")
    func corruptedSignature() throws {
        let fleet = try Fleet()
        let csr = try fleet.csr("sig-broken")
        let derPath = fleet.dir.file("s.der")
        #expect(try Oracle.openssl(["req", "-in", csr, "-outform", "DER", "-out", derPath]).status == 0)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: derPath)))
        // The last bytes are the ECDSA signature's S integer.
        bytes[bytes.count - 2] ^= 0x55
        let tampered = try fleet.dir.write("sig.der", bytes)
        try expectRefusal(fleet, ["device", "enroll", "sig-broken", "--csr", tampered], status: 1, mentions: "signature")
    }

    @Test("CSR CN does not match the id")
    func cnMismatch() throws {
        let fleet = try Fleet()
        let csr = try fleet.csr("someone-else")
        try expectRefusal(fleet, ["device", "enroll", "pump-001", "--csr", csr], status: 1, mentions: "does not match")
    }

    @Test("reserved and malformed names", arguments: ["admin", "mosquitto", "warden-control", "root", "Pump-1", "a/b", "x+y", "has#hash", "ab"])
    func reservedNames(name: String) throws {
        let fleet = try Fleet()
        let csr = try fleet.csr(name, name: "reserved")
        try expectRefusal(fleet, ["device", "enroll", name, "--csr", csr], status: name == "ab" || name == "Pump-1" ? 2 : 1, mentions: "device id")
    }

    @Test("a CSR whose CN is reserved cannot be enrolled under another id")
    func reservedCN() throws {
        let fleet = try Fleet()
        let csr = try fleet.csr("admin", name: "admin-cn")
        try expectRefusal(fleet, ["device", "enroll", "pump-002", "--csr", csr], status: 1, mentions: "reserved")
    }

    @Test("duplicate id")
    func duplicateID() throws {
        let fleet = try Fleet()
        try fleet.enroll("dup-device")
        let csr = try fleet.csr("dup-device", name: "dup-2")
        try expectRefusal(fleet, ["device", "enroll", "dup-device", "--csr", csr], status: 1, mentions: "already enrolled")
    }

    @Test("weak or unsupported keys", arguments: [DeviceKeys.Algorithm.rsa2048, .p521])
    func weakKeys(algorithm: DeviceKeys.Algorithm) throws {
        let fleet = try Fleet()
        let csr = try fleet.csr("weak-key", algorithm: algorithm)
        try expectRefusal(fleet, ["device", "enroll", "weak-key", "--csr", csr], status: 1, mentions: "key")
    }

    @Test("wrong passphrase")
    func wrongPassphrase() throws {
        let fleet = try Fleet()
        let csr = try fleet.csr("pass-test")
        var wrong = fleet.warden
        wrong.environment["WARDEN_PASSPHRASE"] = "not the passphrase"
        let before = try fleet.count("audit_events")
        let result = try wrong.run(["device", "enroll", "pass-test", "--csr", csr])
        #expect(result.status == 2)
        #expect(result.oneLineError)
        #expect(result.stderr.lowercased().contains("passphrase"))
        #expect(try fleet.count("devices") == 0)
        #expect(try fleet.count("audit_events") == before)
    }

    @Test("truncated PEM")
    func truncatedPEM() throws {
        let fleet = try Fleet()
        let csr = try fleet.csr("trunc-test")
        let text = try String(contentsOfFile: csr, encoding: .utf8)
        let truncated = try fleet.dir.write("truncated.csr", String(text.prefix(text.count / 2)))
        try expectRefusal(fleet, ["device", "enroll", "trunc-test", "--csr", truncated], status: 2, mentions: "truncated.csr")
    }

    @Test("10 MB garbage file")
    func garbage() throws {
        let fleet = try Fleet()
        var generator = SystemRandomNumberGenerator()
        let garbage = try fleet.dir.write("garbage.csr", (0..<(10 * 1024 * 1024)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try expectRefusal(fleet, ["device", "enroll", "garbage-test", "--csr", garbage], status: 2, mentions: "garbage.csr")
    }

    @Test("missing CSR file and a directory as CSR")
    func missingFile() throws {
        let fleet = try Fleet()
        try expectRefusal(fleet, ["device", "enroll", "missing-test", "--csr", fleet.dir.file("nope.csr")], status: 2, mentions: "nope.csr")
        try expectRefusal(fleet, ["device", "enroll", "missing-test", "--csr", fleet.dir.path], status: 2, mentions: "directory")
    }

    @Test("enroll before ca init")
    func noCA() throws {
        let fleet = try Fleet(initCA: false)
        let csr = try fleet.csr("early-bird")
        let result = try fleet.run("device", "enroll", "early-bird", "--csr", csr)
        #expect(result.status == 2)
        #expect(result.stderr.contains("ca init"))
    }
}
