import Foundation
import Testing
import WardenCore
import WardenPKI
import WardenTestSupport
@testable import WardenUpdate

/// python-tuf (PyPI `tuf`, scripts/tuf_interop.py) as the independent oracle: it must verify what Warden signs,
/// and Warden must verify what it signs, byte for byte on the canonical form.
@Suite struct TUFInteropTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/tuf_interop.py").path

    static func python(_ arguments: [String]) throws -> WardenProcess.Result {
        try WardenProcess.launch("python3", [script] + arguments)
    }

    @Test func pythonTUFVerifiesWardenSignaturesAndRefusesBelowThreshold() async throws {
        let repository = try TUFTestRepository()
        repository.addTarget("fw/1.0.0", Array("abc".utf8))
        let (targets, snapshot, timestamp) = try repository.publish()
        let directory = TemporaryPath()
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        func write(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = directory.path + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        let root = try write("root.json", repository.trustedRoot)
        for (role, bytes) in [("root", repository.trustedRoot), ("targets", targets), ("snapshot", snapshot), ("timestamp", timestamp)] {
            let file = try write("\(role)-signed.json", bytes)
            let verdict = try Self.python(["verify", root, file, role])
            #expect(verdict.status == 0, "python-tuf refused Warden's \(role): \(verdict.stderr)")
            // Canonical JSON: our bytes equal securesystemslib's encode_canonical.
            let canonical = try Self.python(["canonical", file])
            #expect(Array(canonical.stdout.utf8) == (try JSONValue.parse(bytes)["signed"]!.canonicalBytes), "canonical JSON of \(role) differs")
        }
        // Root signed by one of its two required keys: python-tuf refuses it too.
        var single = SignedMetadata(try SignedMetadata<RootMetadata>.parse(repository.trustedRoot).payload)
        try single.sign(with: [repository.state.withLock { $0.rootKeys[1] }])
        let below = try Self.python(["verify", root, try write("root-one-sig.json", single.fileBytes), "root"])
        #expect(below.status == 1)
        #expect(below.stderr.contains("UnsignedMetadataError"))
        // Timestamp signed by the targets key: refused by both.
        var wrong = SignedMetadata(try SignedMetadata<TimestampMetadata>.parse(timestamp).payload)
        try wrong.sign(with: [repository.state.withLock { $0.targetsKey }])
        let wrongFile = try write("ts-wrong.json", wrong.fileBytes)
        #expect(try Self.python(["verify", root, wrongFile, "timestamp"]).status == 1)
        let trusted = try SignedMetadata<RootMetadata>.parse(repository.trustedRoot).payload
        #expect(throws: WardenError(.signatureInvalid, "")) { try wrong.verify(by: trusted, as: .timestamp) }
    }

    @Test func wardenVerifiesARepositoryPythonTUFWrote() async throws {
        let directory = TemporaryPath()
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        let image = (0..<5000).map { UInt8($0 % 251) }
        let imagePath = directory.path + "/image.bin"
        try Data(image).write(to: URL(fileURLWithPath: imagePath))
        let made = try Self.python(["make-repo", directory.path + "/repo", "boards/fw-1.bin", imagePath])
        try #require(made.status == 0, "python-tuf make-repo failed: \(made.stderr)")
        // Canonical JSON of python-written metadata (non-ASCII custom field included) equals ours.
        for name in ["1.root.json", "1.targets.json", "1.snapshot.json", "timestamp.json"] {
            let path = directory.path + "/repo/metadata/" + name
            let python = try Self.python(["canonical", path])
            let ours = try JSONValue.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))))["signed"]!.canonicalBytes
            #expect(Array(python.stdout.utf8) == ours, "canonical JSON of \(name) differs")
        }
        let client = TemporaryPath()
        try TUFUpdater.provision(
            trustedRoot: Array(try Data(contentsOf: URL(fileURLWithPath: directory.path + "/repo/metadata/1.root.json"))),
            metadataDirectory: client.path)
        var updater = TUFUpdater(metadataDirectory: client.path, fetcher: DirectoryFetcher(directory: directory.path + "/repo"))
        try await updater.refresh()
        let info = try #require(updater.targetInfo("boards/fw-1.bin"))
        #expect(info.custom?["note"]?.stringValue == "python-tuf made this é")
        #expect(try await updater.download("boards/fw-1.bin", info: info) == image)
        // The python-made root uses ecdsa and ed25519 keys; both kinds verified.
        let kinds = Set(updater.trusted!.root.payload.keys.values.map(\.keytype))
        #expect(kinds == ["ed25519", "ecdsa"])
    }
}

@Suite struct CanonicalJSONTests {
    @Test func canonicalFormMatchesSecuresystemslib() throws {
        let value = try JSONValue.parse(Array(#"{"b": [1, -2, true, null], "a": "q\"\\\n\u00e9", "A": {}, "é": 0}"#.utf8))
        // Sorted by code point ("A" < "a" < "b" < "é"); only " and \ escaped; newline raw.
        #expect(String(decoding: value.canonicalBytes, as: UTF8.self) == "{\"A\":{},\"a\":\"q\\\"\\\\\n\u{e9}\",\"b\":[1,-2,true,null],\"\u{e9}\":0}")
        // The pretty form is valid JSON that parses back to the same value.
        #expect(try JSONValue.parse(value.prettyBytes) == value)
    }

    @Test(arguments: [
        #"{"a": 1, "a": 2}"#, #"{"a": 1.5}"#, #"{"a": 1e3}"#, #"[1] x"#, #"{"a": 01}"#, #"{"a": "\ud800"}"#, "\"a\u{01}\"",
        #"{"a": 99999999999999999999}"#, #"{'a': 1}"#, "",
    ])
    func malformedJSONIsRefused(_ text: String) {
        #expect(throws: WardenError(.badInput, "")) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func deepNestingIsRefused() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: WardenError(.badInput, "")) { try JSONValue.parse(Array(deep.utf8)) }
    }

    @Test func keyIDIsSHA256OfCanonicalKey() throws {
        let key = TUFKey(SigningKey.generate(.ed25519).publicKey)
        #expect(key.keyID == Digest.hex(Digest.sha256(key.json.canonicalBytes)))
        #expect(key.verifyingKey != nil)
        let ecdsa = TUFKey(SigningKey.generate(.ecdsaP256).publicKey)
        #expect(ecdsa.keytype == "ecdsa" && ecdsa.scheme == "ecdsa-sha2-nistp256" && ecdsa.publicValue.hasPrefix("-----BEGIN PUBLIC KEY-----\n"))
        #expect(ecdsa.verifyingKey != nil)
    }

    @Test func expiryFormat() throws {
        let date = try TUFTime.parse("2030-01-02T03:04:05Z")
        #expect(TUFTime.format(date) == "2030-01-02T03:04:05Z")
        for bad in ["2030-01-02T03:04:05", "2030-01-02 03:04:05Z", "2030-13-02T03:04:05Z", "2030-01-02T03:04:05.1Z"] {
            #expect(throws: WardenError(.badInput, "")) { try TUFTime.parse(bad) }
        }
    }
}
