import EdgeAgent
import Foundation
import Testing
import WardenCore
import WardenHTTPClient
import WardenPKI
import WardenTestSupport
import WardenUpdate

/// `warden-agent enroll` / `renew`, ``HTTPSClient`` and the TUF fetcher against a real `warden serve` over HTTPS,
/// whose certificate is issued by the fleet CA (trusted only through an explicit CA file).
@Suite(.serialized) struct ESTEnrollmentTests {
    /// A Warden home with a CA (and a firmware repository) and `warden serve --no-broker` on a loopback HTTPS port.
    final class Authority: @unchecked Sendable {
        // @unchecked: the fields are set once in init; the server process is itself Sendable.
        let dir: TemporaryDirectory
        let warden: WardenProcess
        let port: Int
        let serve: SpawnedProcess
        /// The fleet root certificate (the agent's --trust).
        let root: String
        /// `warden ca bundle`: issuing CA + root.
        let bundle: String

        init(firmware: Bool = false) throws {
            dir = try TemporaryDirectory()
            warden = WardenProcess(home: dir.file("home"))
            try Self.check(warden.run(["ca", "init", "--org", "EST Fleet"]), "ca init")
            if firmware { try Self.check(warden.run(["firmware", "keys", "init"]), "firmware keys init") }
            bundle = dir.file("bundle.pem")
            try Self.check(warden.run(["ca", "bundle", "--out", bundle]), "ca bundle")
            root = warden.home + "/ca/root.crt.pem"
            port = try MosquittoProcess.freeLoopbackPort()
            serve = try warden.start(["serve", "--https-port", String(port), "--no-broker"], output: dir.file("serve.log"))
            let deadline = Date().addingTimeInterval(60)
            while true {
                let probe = try WardenProcess.launch(
                    "curl", ["-sS", "--max-time", "2", "--cacert", root, "-o", "/dev/null", "-w", "%{http_code}", url + "/healthz"])
                if probe.stdout == "200" { break }
                guard Date() < deadline, serve.isRunning else {
                    throw TestSupportError("warden serve did not start: \((try? String(contentsOfFile: dir.file("serve.log"), encoding: .utf8)) ?? "")")
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }

        deinit { serve.stop(SIGKILL, grace: 0) }

        static func check(_ result: WardenProcess.Result, _ what: String) throws {
            guard result.status == 0 else { throw TestSupportError("warden \(what): \(result.stderr)") }
        }

        var url: String { "https://127.0.0.1:\(port)" }

        /// `warden device token ID`, written to a 0600 file.
        func token(_ id: String) throws -> (token: String, file: String) {
            let result = try warden.run(["device", "token", id])
            try Self.check(result, "device token")
            let token = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let file = try dir.write("\(id)-\(UUID().uuidString.prefix(6)).token", token + "\n")
            chmod(file, 0o600)
            return (token, file)
        }

        /// `warden-agent init --id ID` into a fresh state directory.
        func initState(_ id: String) throws -> String {
            let state = dir.file("state-\(id)-\(UUID().uuidString.prefix(6))")
            let result = try Agent.run(["init", "--id", id, "--out", state])
            guard result.status == 0 else { throw TestSupportError("agent init: \(result.stderr)") }
            return state
        }

        func enroll(_ state: String, tokenFile: String?, environment: [String: String]? = nil) throws -> WardenProcess.Result {
            var arguments = ["enroll", "--state", state, "--est-url", url, "--trust", root]
            if let tokenFile { arguments += ["--token-file", tokenFile] }
            return try WardenProcess.launch(Agent.executable, arguments, environment: environment)
        }

        func renew(_ state: String, force: Bool = true) throws -> WardenProcess.Result {
            try Agent.run(["renew", "--state", state, "--est-url", url, "--trust", root] + (force ? ["--force"] : []))
        }

        /// A device enrolled over EST with a fresh token; returns its state directory.
        func enrolledDevice(_ id: String) throws -> String {
            let state = try initState(id)
            let enrolled = try enroll(state, tokenFile: try token(id).file)
            guard enrolled.status == 0 else { throw TestSupportError("enroll: \(enrolled.stderr)") }
            return state
        }
    }

    static func read(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }
    static func mode(_ path: String) -> mode_t? { SecureFile.mode(of: path).map { $0 & 0o777 } }

    /// `openssl verify` of a device certificate file (leaf + issuing CA) against the CA bundle.
    static func opensslVerifies(_ certificate: String, bundle: String) throws -> Bool {
        let result = try Oracle.openssl(["verify", "-CAfile", bundle, "-purpose", "sslclient", certificate])
        return result.status == 0 && result.stdout.contains(": OK")
    }

    @Test(.timeLimit(.minutes(3))) func enrollsWithAGoodTokenAndRefusesWrongOrUsedTokens() async throws {
        let authority = try Authority()
        // A good token: the certificate is for our key and id, chains to the fleet CA, mode 0644.
        let state = try authority.initState("gw-est-1")
        let (token, tokenFile) = try authority.token("gw-est-1")
        let enrolled = try authority.enroll(state, tokenFile: tokenFile)
        #expect(enrolled.status == 0, "\(enrolled.stderr)")
        #expect(!enrolled.combined.contains(token), "the token must never be printed")
        let certificate = state + "/device.crt.pem"
        #expect(Self.mode(certificate) == 0o644)
        let info = try DeviceCertificateInfo.read(try Self.read(certificate), source: certificate)
        #expect(info.commonName == "gw-est-1")
        #expect(info.isFor(privateKeyPEM: String(decoding: try Self.read(state + "/device.key"), as: UTF8.self)))
        #expect(try Self.opensslVerifies(certificate, bundle: authority.bundle))
        let shown = try authority.warden.run(["device", "show", "gw-est-1"])
        #expect(shown.status == 0 && shown.stdout.contains(info.serial), "\(shown.combined)")

        // A wrong token: exit 1, one line, nothing written.
        let other = try authority.initState("gw-est-2")
        _ = try authority.token("gw-est-2")
        let wrong = try authority.dir.write("wrong.token", "not-the-token\n")
        let refused = try authority.enroll(other, tokenFile: wrong)
        #expect(refused.status == 1 && refused.oneLineError, "\(refused.combined)")
        #expect(refused.stderr.contains("401"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: other + "/device.crt.pem"))

        // The used token again, from a second state directory for the same id (and through the environment): refused.
        let again = try authority.initState("gw-est-1")
        var environment = ProcessInfo.processInfo.environment
        environment["WARDEN_BOOTSTRAP_TOKEN"] = token
        let reused = try authority.enroll(again, tokenFile: nil, environment: environment)
        #expect(reused.status == 1 && reused.oneLineError, "\(reused.combined)")
        #expect(!reused.combined.contains(token))
        #expect(!FileManager.default.fileExists(atPath: again + "/device.crt.pem"))

        // No token at all is bad input; an already enrolled state directory is refused locally.
        environment["WARDEN_BOOTSTRAP_TOKEN"] = nil
        let missing = try authority.enroll(other, tokenFile: nil, environment: environment)
        #expect(missing.status == 2 && missing.oneLineError, "\(missing.combined)")
        let twice = try authority.enroll(state, tokenFile: tokenFile)
        #expect(twice.status == 1 && twice.stderr.contains("already exists"), "\(twice.combined)")

        // The environment token works for a fresh device.
        let third = try authority.initState("gw-est-3")
        environment["WARDEN_BOOTSTRAP_TOKEN"] = try authority.token("gw-est-3").token
        let viaEnvironment = try authority.enroll(third, tokenFile: nil, environment: environment)
        #expect(viaEnvironment.status == 0, "\(viaEnvironment.stderr)")
    }

    @Test(.timeLimit(.minutes(3))) func renewsWithANewKeyAndKeepsThePreviousIdentity() async throws {
        let authority = try Authority()
        let state = try authority.enrolledDevice("gw-renew-1")
        let oldKey = try Self.read(state + "/device.key")
        let oldCertificate = try Self.read(state + "/device.crt.pem")
        let old = try DeviceCertificateInfo.read(oldCertificate, source: "old")

        // A fresh certificate is not due: nothing changes.
        let early = try authority.renew(state, force: false)
        #expect(early.status == 0 && early.stdout.contains("not due"), "\(early.combined)")
        #expect(try Self.read(state + "/device.crt.pem") == oldCertificate)

        let renewed = try authority.renew(state)
        #expect(renewed.status == 0, "\(renewed.combined)")
        let newKey = try Self.read(state + "/device.key")
        let newCertificate = try Self.read(state + "/device.crt.pem")
        let new = try DeviceCertificateInfo.read(newCertificate, source: "new")
        #expect(new.serial != old.serial)
        #expect(newKey != oldKey)
        #expect(new.publicKeyFingerprint != old.publicKeyFingerprint)
        #expect(new.isFor(privateKeyPEM: String(decoding: newKey, as: UTF8.self)))
        #expect(new.commonName == "gw-renew-1")
        // The old identity is kept as prev, with the key still 0600; nothing stays staged.
        #expect(try Self.read(state + "/device.prev.key") == oldKey)
        #expect(try Self.read(state + "/device.prev.crt.pem") == oldCertificate)
        #expect(Self.mode(state + "/device.key") == 0o600)
        #expect(Self.mode(state + "/device.prev.key") == 0o600)
        #expect(!FileManager.default.fileExists(atPath: state + "/device.next.key"))
        #expect(!FileManager.default.fileExists(atPath: state + "/device.next.crt.pem"))
        #expect(try Self.opensslVerifies(state + "/device.crt.pem", bundle: authority.bundle))
        let shown = try authority.warden.run(["device", "show", "gw-renew-1"])
        #expect(shown.stdout.contains(new.serial), "\(shown.combined)")

        // The new identity renews again (it is accepted for mTLS).
        let second = try authority.renew(state)
        #expect(second.status == 0, "\(second.combined)")
        #expect(try DeviceCertificateInfo.read(try Self.read(state + "/device.crt.pem"), source: "third").serial != new.serial)
    }

    @Test(.timeLimit(.minutes(3))) func aRevokedDeviceCannotRenew() async throws {
        let authority = try Authority()
        let state = try authority.enrolledDevice("gw-revoked-1")
        let before = try Self.read(state + "/device.crt.pem")
        try Authority.check(try authority.warden.run(["device", "revoke", "gw-revoked-1", "--reason", "keyCompromise"]), "device revoke")
        let refused = try authority.renew(state)
        #expect(refused.status == 1 && refused.oneLineError, "\(refused.combined)")
        #expect(try Self.read(state + "/device.crt.pem") == before)
        for name in ["device.next.key", "device.next.crt.pem", "device.prev.key", "device.prev.crt.pem"] {
            #expect(!FileManager.default.fileExists(atPath: state + "/" + name), "\(name)")
        }
    }

    @Test(.timeLimit(.minutes(3))) func refusesACertificateForAnotherKeyOrAnotherCA() async throws {
        let authority = try Authority()
        let state = try authority.enrolledDevice("gw-check-1")
        let chain = try Self.read(state + "/device.crt.pem")
        let ours = String(decoding: try Self.read(state + "/device.key"), as: UTF8.self)
        let leaf = try #require(try CertificatePEM.derCertificates(chain, source: "chain").first)
        let body = Array(Data(try PKCS7CertsOnly.encode(certificatesDER: [leaf])).base64EncodedString().utf8)
        let id = try DeviceID("gw-check-1")
        let trust = try Self.read(authority.root)
        let intermediates = try CertificatePEM.derCertificates(try Self.read(authority.bundle), source: "bundle")

        // The genuine answer verifies.
        let accepted = try await ESTIssuedCertificate.verify(
            certsOnlyBase64: body, privateKeyPEM: ours, deviceID: id, trustPEM: trust, trustSource: "root",
            intermediatesDER: intermediates, now: Date())
        #expect(accepted.info.commonName == "gw-check-1")
        #expect(accepted.chainPEM.components(separatedBy: "BEGIN CERTIFICATE").count == 3, "leaf + issuing CA")

        // The same certificate for a different key (an attacker's or another device's): refused.
        let otherKey = try CSRBuilder.generate(for: id).privateKeyPEM
        await #expect(throws: WardenError.policy("")) {
            try await ESTIssuedCertificate.verify(
                certsOnlyBase64: body, privateKeyPEM: otherKey, deviceID: id, trustPEM: trust, trustSource: "root",
                intermediatesDER: intermediates, now: Date())
        }
        // Our key but another id: refused.
        await #expect(throws: WardenError.policy("")) {
            try await ESTIssuedCertificate.verify(
                certsOnlyBase64: body, privateKeyPEM: ours, deviceID: try DeviceID("gw-check-2"), trustPEM: trust, trustSource: "root",
                intermediatesDER: intermediates, now: Date())
        }
        // Another fleet's CA as the anchor: refused.
        let foreign = WardenProcess(home: authority.dir.file("foreign"))
        try Authority.check(try foreign.run(["ca", "init", "--org", "Foreign"]), "foreign ca init")
        await #expect(throws: WardenError(.verificationFailed, "")) {
            try await ESTIssuedCertificate.verify(
                certsOnlyBase64: body, privateKeyPEM: ours, deviceID: id, trustPEM: try Self.read(foreign.home + "/ca/root.crt.pem"),
                trustSource: "foreign", intermediatesDER: intermediates, now: Date())
        }
        // Not base64 / not certs-only: bad input.
        await #expect(throws: WardenError.badInput("")) {
            try await ESTIssuedCertificate.verify(
                certsOnlyBase64: Array("%%%".utf8), privateKeyPEM: ours, deviceID: id, trustPEM: trust, trustSource: "root",
                intermediatesDER: [], now: Date())
        }
    }

    @Test(.timeLimit(.minutes(3))) func httpsClientTrustsOnlyTheGivenCAAndPresentsClientCertificates() async throws {
        let authority = try Authority()
        let healthz = authority.url + "/healthz"
        let trusted = try HTTPSClient(options: TLSOptions(caFile: authority.root))
        let ok = try await trusted.get(healthz, maxBytes: 4096, timeout: .seconds(10))
        #expect(ok.status == 200)
        // The system store does not know the fleet CA, and another CA file is not the fleet's: TLS refused.
        let foreign = WardenProcess(home: authority.dir.file("foreign"))
        try Authority.check(try foreign.run(["ca", "init", "--org", "Foreign"]), "foreign ca init")
        for options in [TLSOptions(), TLSOptions(caFile: foreign.home + "/ca/root.crt.pem")] {
            await #expect(throws: WardenError.storage("")) {
                try await HTTPSClient(options: options).get(healthz, maxBytes: 4096, timeout: .seconds(10))
            }
        }
        // The hostname is verified: "localhost" is in the certificate, a name that is not is refused.
        let byName = try await trusted.get("https://localhost:\(authority.port)/healthz", maxBytes: 4096, timeout: .seconds(10))
        #expect(byName.status == 200)
        // simplereenroll without a client certificate: 401; with one (mTLS) it reaches the CSR check (400 on garbage).
        let anonymous = try await trusted.post(
            authority.url + "/.well-known/est/simplereenroll", body: Array("AAAA".utf8), contentType: "application/pkcs10",
            maxBytes: 4096, timeout: .seconds(10))
        #expect(anonymous.status == 401, "\(anonymous.text)")
        let state = try authority.enrolledDevice("gw-mtls-1")
        let mutual = try HTTPSClient(options: TLSOptions(caFile: authority.root, certFile: state + "/device.crt.pem", keyFile: state + "/device.key"))
        let garbage = try await mutual.post(
            authority.url + "/.well-known/est/simplereenroll", body: Array("AAAA".utf8), contentType: "application/pkcs10",
            maxBytes: 4096, timeout: .seconds(10))
        #expect(garbage.status == 400, "\(garbage.text)")
        // A body limit below the CA bundle's size is enforced.
        await #expect(throws: WardenError.badInput("")) {
            try await trusted.get(authority.url + "/.well-known/est/cacerts", maxBytes: 100, timeout: .seconds(10))
        }
        // Bad inputs: a key without a certificate, a non-http URL.
        #expect(throws: WardenError.badInput("")) { try HTTPSClient(options: TLSOptions(caFile: authority.root, keyFile: state + "/device.key")) }
        await #expect(throws: WardenError.badInput("")) { try await trusted.get("file:///etc/passwd", maxBytes: 10, timeout: .seconds(1)) }
    }

    @Test(.timeLimit(.minutes(3))) func tufClientRefreshesFromWardenServeOverHTTPSWithTheFleetCA() async throws {
        let authority = try Authority(firmware: true)
        let image = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let imagePath = try authority.dir.write("fw.bin", image)
        try Authority.check(
            try authority.warden.run(["firmware", "add", imagePath, "--name", "gw", "--version", "1.0.0", "--hardware", "board-a"]), "firmware add")
        let rootMetadata = authority.dir.file("trusted-root.json")
        try Authority.check(try authority.warden.run(["firmware", "root", "--out", rootMetadata]), "firmware root")
        let client = authority.dir.file("tuf-client")
        try FileManager.default.createDirectory(atPath: client, withIntermediateDirectories: true)
        #expect(try Agent.run(["tuf-client", "--metadata-dir", client, "init", rootMetadata]).status == 0)
        let metadataURL = authority.url + "/tuf/metadata"
        // Without the fleet CA the server is not trusted.
        let untrusted = try Agent.run(["tuf-client", "--metadata-dir", client, "--metadata-url", metadataURL, "refresh"])
        #expect(untrusted.status == 1 && untrusted.oneLineError, "\(untrusted.combined)")
        let refreshed = try Agent.run(["tuf-client", "--metadata-dir", client, "--metadata-url", metadataURL, "--ca-file", authority.root, "refresh"])
        #expect(refreshed.status == 0, "\(refreshed.combined)")
        let downloads = authority.dir.file("downloads")
        let downloaded = try Agent.run([
            "tuf-client", "--metadata-dir", client, "--metadata-url", metadataURL, "--ca-file", authority.root, "--target-name", "gw/1.0.0",
            "--target-base-url", authority.url + "/tuf/targets", "--target-dir", downloads, "download",
        ])
        #expect(downloaded.status == 0, "\(downloaded.combined)")
        #expect(try Self.read(downloads + "/gw%2F1.0.0") == image)
        // A byte range of the target over HTTPS (206).
        let target = TUFPath.consistentTargetPath("gw/1.0.0", hash: Digest.hex(Digest.sha256(image)))
        let ranged = try await HTTPSClient(options: TLSOptions(caFile: authority.root)).get(
            authority.url + "/tuf/targets/" + target, range: 100...199, maxBytes: 1000, timeout: .seconds(10))
        #expect(ranged.status == 206, "\(ranged.text.prefix(200))")
        #expect(ranged.body == Array(image[100...199]))
    }

    @Test func renewalIsDueAtTwoThirdsOfTheLifetimeWithBoundedDeterministicJitter() {
        let notBefore = Date(timeIntervalSince1970: 1_700_000_000)
        let notAfter = notBefore.addingTimeInterval(90 * 86_400)
        let lifetime = 90.0 * 86_400
        #expect(IdentityRenewal.renewalTime(notBefore: notBefore, notAfter: notAfter, jitter: 0) == notBefore.addingTimeInterval(60 * 86_400))
        #expect(IdentityRenewal.renewalTime(notBefore: notBefore, notAfter: notAfter, jitter: 1) == notBefore.addingTimeInterval(lifetime * (2.0 / 3 + 0.05)))
        #expect(IdentityRenewal.renewalTime(notBefore: notBefore, notAfter: notAfter, jitter: -7) == notBefore.addingTimeInterval(lifetime * (2.0 / 3 - 0.05)))
        // Before the earliest jittered time never due, after the latest always due.
        var generator = RenewalRandom(seed: 42)
        for _ in 0..<200 {
            #expect(!IdentityRenewal.renewalDue(notBefore: notBefore, notAfter: notAfter, now: notBefore.addingTimeInterval(lifetime * 0.6), using: &generator))
            #expect(IdentityRenewal.renewalDue(notBefore: notBefore, notAfter: notAfter, now: notBefore.addingTimeInterval(lifetime * 0.72), using: &generator))
        }
        // The same seed gives the same answers; different draws spread across the window.
        let now = notBefore.addingTimeInterval(lifetime * 2.0 / 3)
        var a = RenewalRandom(seed: 7)
        var b = RenewalRandom(seed: 7)
        let first = (0..<50).map { _ in IdentityRenewal.renewalDue(notBefore: notBefore, notAfter: notAfter, now: now, using: &a) }
        let second = (0..<50).map { _ in IdentityRenewal.renewalDue(notBefore: notBefore, notAfter: notAfter, now: now, using: &b) }
        #expect(first == second)
        #expect(first.contains(true) && first.contains(false))
    }
}
