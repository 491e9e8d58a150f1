import Foundation
import Testing
import WardenTestSupport

@Suite("warden operator issue / list / revoke")
struct OperatorCLITests {
    func leaf(of chainPath: String, in fleet: Fleet, name: String) throws -> String {
        let chain = try String(contentsOfFile: chainPath, encoding: .utf8)
        let leaf = String(chain[..<chain.range(of: "-----END CERTIFICATE-----")!.upperBound]) + "\n"
        return try fleet.dir.write("\(name)-leaf.pem", leaf)
    }

    @Test("an operator certificate carries its role, passes openssl -x509_strict sslclient and pkilint, and revokes onto the CRL")
    func issue() throws {
        let fleet = try Fleet()
        let csr = try fleet.csr("alice")
        let out = fleet.dir.file("alice.crt.pem")
        let issued = try fleet.run("operator", "issue", "alice", "--role", "auditor", "--csr", csr, "--out", out)
        #expect(issued.status == 0, "\(issued.stderr)")
        let verified = try Oracle.openssl([
            "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", fleet.rootPEM, "-untrusted", fleet.issuingPEM, out,
        ])
        #expect(verified.status == 0, "openssl verify: \(verified.combined)")
        let leafPath = try leaf(of: out, in: fleet, name: "alice")
        #expect(try Oracle.pkilintCertificate(leafPath) == [])
        let text = try Oracle.openssl(["x509", "-in", leafPath, "-noout", "-text"]).stdout
        #expect(text.contains("Subject: O = Test Fleet, OU = role:auditor, CN = warden-op-alice"), "\(text)")
        #expect(text.contains("TLS Web Client Authentication") && !text.contains("TLS Web Server Authentication"))

        let listed = try fleet.run("operator", "list", "--json")
        let records = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(records.count == 1)
        #expect(records.first?["name"] as? String == "warden-op-alice")
        #expect(records.first?["role"] as? String == "auditor")
        let serial = try #require(records.first?["serial"] as? String)

        let revoked = try fleet.run("operator", "revoke", "alice", "--reason", "keyCompromise")
        #expect(revoked.status == 0, "\(revoked.stderr)")
        let crl = try Oracle.openssl(["crl", "-in", fleet.home + "/ca/crl.pem", "-noout", "-text"]).stdout.lowercased()
        #expect(crl.contains(serial.lowercased()), "the CRL lists the operator's serial")
        #expect(try fleet.run("operator", "revoke", "alice").status == 2, "nothing left to revoke")
        #expect(try fleet.run("audit", "verify").status == 0)
    }

    @Test("refusals: unknown role, bad name, CSR for another name; nothing recorded")
    func refusals() throws {
        let fleet = try Fleet()
        let csr = try fleet.csr("carol")
        let unknownRole = try fleet.run("operator", "issue", "carol", "--role", "wizard", "--csr", csr)
        #expect(unknownRole.status == 2, "\(unknownRole.stderr)")
        #expect(unknownRole.stderr.contains("wizard"))
        #expect(try fleet.run("operator", "issue", "Carol!", "--role", "admin", "--csr", csr).status == 2)
        let otherName = try fleet.run("operator", "issue", "dave", "--role", "admin", "--csr", csr)
        #expect(otherName.status == 1, "a CSR naming carol cannot become dave: \(otherName.stderr)")
        #expect(try fleet.count("operator_certificates") == 0)
        // The full CN works too.
        let full = try fleet.csr("warden-op-carol", name: "carol-full")
        #expect(try fleet.run("operator", "issue", "carol", "--role", "admin", "--csr", full).status == 0)
        #expect(try fleet.count("operator_certificates") == 1)
    }

    @Test("operator names never collide with device ids, and a device CSR never obtains a role")
    func namesAndRoles() throws {
        let fleet = try Fleet()
        let reserved = try fleet.csr("warden-op-erin")
        let enrolled = try fleet.run("device", "enroll", "warden-op-erin", "--csr", reserved)
        #expect(enrolled.status == 1, "\(enrolled.stderr)")
        #expect(enrolled.stderr.contains("reserved"))
        // A device CSR asking for an OU role: the issued subject is built by Warden (O + CN), never copied.
        let key = fleet.dir.file("sneaky.key")
        let request = fleet.dir.file("sneaky.csr")
        #expect(try Oracle.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]).status == 0)
        #expect(try Oracle.openssl(["req", "-new", "-key", key, "-subj", "/OU=role:admin/CN=sneaky-01", "-out", request]).status == 0)
        let out = fleet.dir.file("sneaky.crt.pem")
        #expect(try fleet.run("device", "enroll", "sneaky-01", "--csr", request, "--out", out).status == 0)
        let subject = try Oracle.openssl(["x509", "-in", out, "-noout", "-subject"]).stdout
        #expect(subject.contains("CN = sneaky-01") && !subject.contains("OU"), "\(subject)")
    }
}
