import Foundation
import Testing
import WardenCore
import WardenTestSupport

/// `warden-agent init --id ID --out DIR` through the real executables, with openssl and `warden device enroll` as oracles.
@Suite struct AgentInitTests {
    @Test func initWritesAKeyAndACSRThatOpenSSLAndTheAuthorityAccept() throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("identity")
        let created = try Agent.run(["init", "--id", "gw-0001", "--out", out])
        try #require(created.status == 0, "\(created.stderr)")
        let key = out + "/device.key", csr = out + "/device.csr"
        #expect(SecureFile.mode(of: key) == 0o600)
        #expect(SecureFile.mode(of: out) == 0o700)
        let keyText = try String(contentsOfFile: key, encoding: .utf8)
        #expect(keyText.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(!created.stdout.contains("PRIVATE KEY") && !created.stderr.contains("PRIVATE KEY"))

        // openssl: the self-signature verifies, the subject is exactly CN=gw-0001, the key is P-256 and matches device.key.
        let verified = try WardenProcess.launch("openssl", ["req", "-in", csr, "-noout", "-verify", "-subject"])
        #expect(verified.status == 0, "\(verified.combined)")
        #expect(verified.combined.contains("verify OK") || verified.combined.contains("Certificate request self-signature verify OK"))
        #expect(verified.stdout.contains("subject=CN = gw-0001") || verified.stdout.contains("subject=CN=gw-0001"))
        let csrKey = try WardenProcess.launch("openssl", ["req", "-in", csr, "-noout", "-pubkey"])
        let privateKey = try WardenProcess.launch("openssl", ["pkey", "-in", key, "-pubout"])
        #expect(csrKey.status == 0 && privateKey.status == 0 && csrKey.stdout == privateKey.stdout)
        let text = try WardenProcess.launch("openssl", ["pkey", "-in", key, "-noout", "-text"])
        #expect(text.stdout.contains("prime256v1") || text.stdout.contains("P-256"))

        // The authority enrolls it, and the issued certificate carries the agent's key.
        let warden = WardenProcess(home: dir.file("home"))
        let ca = try warden.run(["ca", "init", "--org", "Agent Fleet"])
        try #require(ca.status == 0, "\(ca.stderr)")
        let certificate = dir.file("gw-0001.crt.pem")
        let enrolled = try warden.run(["device", "enroll", "gw-0001", "--csr", csr, "--out", certificate])
        #expect(enrolled.status == 0, "\(enrolled.stderr)")
        let issuedKey = try WardenProcess.launch("openssl", ["x509", "-in", certificate, "-noout", "-pubkey"])
        #expect(issuedKey.stdout == privateKey.stdout)
        let checked = try WardenProcess.launch("openssl", ["x509", "-in", certificate, "-noout", "-checkend", "0"])
        #expect(checked.status == 0)
    }

    @Test func initRefusesToOverwriteAnExistingIdentity() throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("identity")
        try #require(try Agent.run(["init", "--id", "gw-0002", "--out", out]).status == 0)
        let key = try Data(contentsOf: URL(fileURLWithPath: out + "/device.key"))
        let csr = try Data(contentsOf: URL(fileURLWithPath: out + "/device.csr"))
        let again = try Agent.run(["init", "--id", "gw-0002", "--out", out])
        #expect(again.status == 1)
        #expect(again.stderr.contains("already exists") && again.oneLineError)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/device.key")) == key)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/device.csr")) == csr)
        // A leftover CSR alone also blocks a new key (the pair must match).
        let other = dir.file("other")
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try Data("junk".utf8).write(to: URL(fileURLWithPath: other + "/device.csr"))
        let blocked = try Agent.run(["init", "--id", "gw-0003", "--out", other])
        #expect(blocked.status == 1 && blocked.oneLineError)
        #expect(!FileManager.default.fileExists(atPath: other + "/device.key"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: other) == ["device.csr"])
    }

    @Test(arguments: [
        ("GW-0001", "lowercase"), ("ab", "3 to 63"), ("admin", "reserved"), ("warden-x", "reserved"),
        ("gw/01", "'/'"), ("gw+01", "'+'"), ("-gw01", "start with"), ("gw_01", "only lowercase"),
    ])
    func initRefusesABadIDAndWritesNothing(id: String, message: String) throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("identity")
        let result = try Agent.run(["init", "--id=\(id)", "--out", out])
        #expect(result.status == 2, "\(id): \(result.stderr)")
        #expect(result.stderr.contains(message) && result.oneLineError, "\(id): \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
