import Foundation
import Testing
import WardenTestSupport

@Suite("revocation, CRL and cert verify")
struct RevocationTests {
    @Test("revoke updates registry and CRL in one step; openssl and warden both refuse the revoked leaf")
    func revokeEndToEnd() throws {
        let fleet = try Fleet()
        let good = try fleet.enroll("good-device")
        let bad = try fleet.enroll("bad-device")
        let revoked = try fleet.run("device", "revoke", "bad-device", "--reason", "keyCompromise")
        #expect(revoked.status == 0, "\(revoked.stderr)")
        let crl = fleet.home + "/ca/crl.pem"
        #expect(FileManager.default.fileExists(atPath: crl))

        // The CRL itself: signed by the issuing CA, lists the serial with its reason, pkilint clean.
        let chainFile = try fleet.dir.write("chain.pem", try String(contentsOfFile: fleet.issuingPEM, encoding: .utf8) + String(contentsOfFile: fleet.rootPEM, encoding: .utf8))
        let checked = try Oracle.openssl(["crl", "-in", crl, "-CAfile", chainFile, "-noout"])
        #expect(checked.combined.contains("verify OK"), "\(checked.combined)")
        let text = try Oracle.openssl(["crl", "-in", crl, "-noout", "-text"]).stdout
        let serial = try Oracle.openssl(["x509", "-in", bad, "-noout", "-serial"]).stdout.replacingOccurrences(of: "serial=", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(text.uppercased().contains(serial.uppercased()))
        #expect(text.contains("Key Compromise"))
        #expect(text.contains("X509v3 CRL Number"))
        #expect(text.contains("X509v3 Authority Key Identifier"))
        #expect(try Oracle.pkilintCRL(crl) == [])

        // openssl as the oracle.
        let opensslBad = try Oracle.openssl(["verify", "-x509_strict", "-purpose", "sslclient", "-crl_check", "-CRLfile", crl, "-CAfile", fleet.rootPEM, "-untrusted", fleet.issuingPEM, bad])
        #expect(opensslBad.status != 0)
        #expect(opensslBad.combined.contains("revoked"))
        let opensslGood = try Oracle.openssl(["verify", "-x509_strict", "-purpose", "sslclient", "-crl_check", "-CRLfile", crl, "-CAfile", fleet.rootPEM, "-untrusted", fleet.issuingPEM, good])
        #expect(opensslGood.status == 0, "\(opensslGood.combined)")

        // warden cert verify agrees.
        let wardenBad = try fleet.run("cert", "verify", bad, "--trust", fleet.rootPEM, "--purpose", "client", "--crl", crl)
        #expect(wardenBad.status == 1)
        #expect(wardenBad.oneLineError)
        #expect(wardenBad.stderr.contains("revoked"))
        let wardenGood = try fleet.run("cert", "verify", good, "--trust", fleet.rootPEM, "--purpose", "client", "--crl", crl)
        #expect(wardenGood.status == 0, "\(wardenGood.stderr)")

        // Registry and audit.
        let shown = try fleet.run("device", "show", "bad-device", "--json")
        #expect(shown.stdout.contains("\"status\" : \"revoked\""))
        let audit = try fleet.run("audit", "log", "--device", "bad-device", "--json")
        #expect(audit.stdout.contains("device.revoke"))
        #expect(try fleet.run("device", "revoke", "bad-device", "--reason", "keyCompromise").status == 1)
        #expect(try fleet.run("device", "revoke", "bad-device", "--reason", "because").status == 2)
        let removeFromCRL = try fleet.run("device", "revoke", "good-device", "--reason", "removeFromCRL")
        #expect(removeFromCRL.status == 2, "removeFromCRL is for delta CRLs only")
        #expect(try fleet.run("device", "revoke", "never-seen", "--reason", "superseded").status == 2)
    }

    @Test("CRL numbers increase and every CRL is openssl- and pkilint-clean, empty or full")
    func crlNumbers() throws {
        let fleet = try Fleet()
        let first = fleet.dir.file("crl1.pem")
        #expect(try fleet.run("crl", "--out", first).status == 0)
        #expect(try Oracle.pkilintCRL(first) == [])
        try fleet.enroll("soon-revoked")
        #expect(try fleet.run("device", "revoke", "soon-revoked", "--reason", "cessationOfOperation").status == 0)
        let second = fleet.dir.file("crl2.der")
        #expect(try fleet.run("crl", "--out", second, "--der").status == 0)
        #expect(try Oracle.pkilintCRL(second) == [])
        func number(_ path: String, _ form: String) throws -> Int {
            let text = try Oracle.openssl(["crl", "-in", path, "-inform", form, "-noout", "-crlnumber"]).stdout
            let value = text.split(separator: "=").last!.trimmingCharacters(in: .whitespacesAndNewlines)
            return Int(value.hasPrefix("0x") ? String(value.dropFirst(2)) : value, radix: 16) ?? -1
        }
        #expect(try number(first, "PEM") == 1)
        #expect(try number(second, "DER") == 3)
        let nextUpdate = try Oracle.openssl(["crl", "-in", second, "-inform", "DER", "-noout", "-nextupdate", "-lastupdate"]).stdout
        #expect(nextUpdate.contains("nextUpdate="))
    }

    @Test("cert verify: wrong purpose, expired, not yet valid, foreign CA, bad input")
    func verifyNegatives() throws {
        let fleet = try Fleet()
        let leaf = try fleet.enroll("verify-me")
        #expect(try fleet.run("cert", "verify", leaf, "--trust", fleet.rootPEM).status == 0)
        let server = try fleet.run("cert", "verify", leaf, "--trust", fleet.rootPEM, "--purpose", "server")
        #expect(server.status == 1)
        #expect(server.stderr.contains("server"))
        let future = try fleet.run("cert", "verify", leaf, "--trust", fleet.rootPEM, "--at", "2040-01-01T00:00:00Z")
        #expect(future.status == 1)
        let past = try fleet.run("cert", "verify", leaf, "--trust", fleet.rootPEM, "--at", "2000-01-01T00:00:00Z")
        #expect(past.status == 1)
        let other = try Fleet()
        let foreign = try fleet.run("cert", "verify", leaf, "--trust", other.rootPEM)
        #expect(foreign.status == 1)
        #expect(foreign.oneLineError)
        // Issuing CA only as trust anchor, leaf alone (no chain in file) also verifies.
        let garbage = try fleet.dir.write("garbage.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        let bad = try fleet.run("cert", "verify", garbage, "--trust", fleet.rootPEM)
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("garbage.pem"))
        #expect(try fleet.run("cert", "verify", leaf, "--trust", fleet.dir.file("none.pem")).status == 2)
        #expect(try fleet.run("cert", "verify", leaf, "--trust", fleet.rootPEM, "--at", "yesterday").status == 2)
        #expect(try fleet.run("cert", "verify", leaf, "--trust", fleet.rootPEM, "--crl", garbage).status == 2)
        // A CRL from another CA does not cover this leaf: refusing is the safe answer.
        let otherCRL = other.dir.file("other-crl.pem")
        #expect(try other.run("crl", "--out", otherCRL).status == 0)
        #expect(try fleet.run("cert", "verify", leaf, "--trust", fleet.rootPEM, "--crl", otherCRL).status == 1)
    }
}

@Suite("audit log")
struct AuditCLITests {
    @Test("editing an audit row with sqlite3 makes audit verify fail, naming the first bad event")
    func tamperDetected() throws {
        let fleet = try Fleet()
        try fleet.enroll("audit-one")
        try fleet.enroll("audit-two")
        let intact = try fleet.run("audit", "verify")
        #expect(intact.status == 0)
        #expect(intact.stdout.contains("3 event(s)"))
        let log = try fleet.run("audit", "log", "--json", "--since", "1h")
        let events = try JSONSerialization.jsonObject(with: Data(log.stdout.utf8)) as? [[String: Any]]
        #expect(events?.map { $0["action"] as? String } == ["ca.init", "device.enroll", "device.enroll"])
        let edited = try WardenProcess.launch("sqlite3", [fleet.registry, "UPDATE audit_events SET device_id = 'audit-three' WHERE seq = 2;"])
        #expect(edited.status == 0)
        let broken = try fleet.run("audit", "verify")
        #expect(broken.status == 1)
        #expect(broken.oneLineError)
        #expect(broken.stderr.contains("event #2"))
    }
}
