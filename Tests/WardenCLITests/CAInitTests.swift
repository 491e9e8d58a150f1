import Foundation
import Testing
import WardenTestSupport

@Suite("warden ca init / show / bundle")
struct CAInitTests {
    @Test("keys are encrypted PKCS#8 that openssl opens with the passphrase, mode 0600")
    func keysAtRest() throws {
        let fleet = try Fleet()
        for key in ["root.key.pem", "issuing.key.pem"] {
            let path = fleet.home + "/ca/" + key
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(key) must be 0600")
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
            let opened = try Oracle.openssl(["pkey", "-in", path, "-passin", "pass:correct horse battery staple", "-noout"])
            #expect(opened.status == 0, "openssl pkey: \(opened.stderr)")
            let wrong = try Oracle.openssl(["pkey", "-in", path, "-passin", "pass:wrong", "-noout"])
            #expect(wrong.status != 0)
        }
    }

    @Test("the hierarchy: P-256 root pathlen 1, issuing pathlen 0, openssl-verifiable, pkilint clean")
    func hierarchy() throws {
        let fleet = try Fleet()
        let root = try Oracle.openssl(["x509", "-in", fleet.rootPEM, "-noout", "-text"])
        #expect(root.stdout.contains("CA:TRUE, pathlen:1"))
        #expect(root.stdout.contains("prime256v1") || root.stdout.contains("P-256"))
        let issuing = try Oracle.openssl(["x509", "-in", fleet.issuingPEM, "-noout", "-text"])
        #expect(issuing.stdout.contains("CA:TRUE, pathlen:0"))
        let verified = try Oracle.openssl(["verify", "-x509_strict", "-CAfile", fleet.rootPEM, fleet.issuingPEM])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(try Oracle.pkilintCertificate(fleet.rootPEM) == [])
        #expect(try Oracle.pkilintCertificate(fleet.issuingPEM) == [])
        // Default validities: 20 years and 5 years.
        let dates = try Oracle.openssl(["x509", "-in", fleet.rootPEM, "-noout", "-enddate"])
        let year = Calendar(identifier: .gregorian).component(.year, from: Date())
        #expect(dates.stdout.contains(String(year + 20)))
    }

    @Test("refuses to overwrite an existing CA, and leaves it untouched")
    func refusesOverwrite() throws {
        let fleet = try Fleet()
        let before = try String(contentsOfFile: fleet.rootPEM, encoding: .utf8)
        let again = try fleet.run("ca", "init", "--org", "Other")
        #expect(again.status == 1)
        #expect(again.oneLineError)
        #expect(again.stderr.contains("already exists"))
        #expect(try String(contentsOfFile: fleet.rootPEM, encoding: .utf8) == before)
    }

    @Test("needs a passphrase from the environment or a file, never argv")
    func passphraseSources() throws {
        let dir = try TemporaryDirectory()
        let none = WardenProcess(home: dir.file("home"), passphrase: nil)
        let missing = try none.run(["ca", "init", "--org", "X"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("WARDEN_PASSPHRASE"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("home/ca")))
        let short = WardenProcess(home: dir.file("home"), passphrase: "short")
        #expect(try short.run(["ca", "init", "--org", "X"]).status == 2)
        let file = try dir.write("pass.txt", "a long enough passphrase\n")
        let fromFile = try none.run(["ca", "init", "--org", "X", "--passphrase-file", file])
        #expect(fromFile.status == 0, "\(fromFile.stderr)")
        let opened = try Oracle.openssl(["pkey", "-in", dir.file("home/ca/issuing.key.pem"), "-passin", "pass:a long enough passphrase", "-noout"])
        #expect(opened.status == 0)
        // There is no --passphrase option at all.
        let argv = try none.run(["ca", "init", "--org", "X", "--passphrase", "secret"])
        #expect(argv.status != 0)
    }

    @Test("ca show --json and ca bundle")
    func showAndBundle() throws {
        let fleet = try Fleet()
        let shown = try fleet.run("ca", "show", "--json")
        #expect(shown.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any]
        #expect((object?["root"] as? [String: Any])?["subject"] as? String == "CN=Test Fleet Root CA,O=Test Fleet")
        let bundle = fleet.dir.file("bundle.pem")
        #expect(try fleet.run("ca", "bundle", "--out", bundle).status == 0)
        let text = try String(contentsOfFile: bundle, encoding: .utf8)
        #expect(text.components(separatedBy: "BEGIN CERTIFICATE").count == 3)
    }

    @Test("global options may come before the subcommand: warden --home DIR ca show")
    func globalOptionsFirst() throws {
        let fleet = try Fleet()
        var noEnv = fleet.warden
        noEnv.environment.removeValue(forKey: "WARDEN_HOME")
        let before = try noEnv.run(["--home", fleet.home, "ca", "show", "--json"])
        #expect(before.status == 0, "\(before.stderr)")
        #expect(before.stdout.contains("Test Fleet Root CA"))
        let equals = try noEnv.run(["--home=\(fleet.home)", "device", "list", "--json"])
        #expect(equals.status == 0, "\(equals.stderr)")
    }

    @Test("day-to-day issuance works with the root key moved offline")
    func rootKeyOffline() throws {
        let fleet = try Fleet()
        try FileManager.default.moveItem(atPath: fleet.home + "/ca/root.key.pem", toPath: fleet.dir.file("offline-root.key.pem"))
        let chain = try fleet.enroll("sensor-offline")
        #expect(FileManager.default.fileExists(atPath: chain))
        #expect(try fleet.run("crl", "--out", fleet.dir.file("crl.pem")).status == 0)
        let shown = try fleet.run("ca", "show")
        #expect(shown.stdout.contains("root key: offline"))
    }
}
