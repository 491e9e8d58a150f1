import Foundation
import Testing
import WardenCore
import WardenTestSupport
@testable import WardenPKI

@Suite struct SigningKeysTests {
    @Test(arguments: SigningAlgorithm.allCases)
    func signsVerifiesAndRefusesTampering(_ algorithm: SigningAlgorithm) throws {
        let key = SigningKey.generate(algorithm)
        let message = Array("canonical bytes".utf8)
        let signature = try key.sign(message)
        #expect(key.publicKey.isValidSignature(signature, for: message))
        #expect(!key.publicKey.isValidSignature(signature, for: message + [0]))
        var flipped = signature
        flipped[flipped.count / 2] ^= 0x01
        #expect(!key.publicKey.isValidSignature(flipped, for: message))
        #expect(!SigningKey.generate(algorithm).publicKey.isValidSignature(signature, for: message))
        #expect(!key.publicKey.isValidSignature([], for: message))
    }

    @Test(arguments: SigningAlgorithm.allCases)
    func sealedKeysRoundTripAndNeedThePassphrase(_ algorithm: SigningAlgorithm) throws {
        let key = SigningKey.generate(algorithm)
        let pem = try key.sealed(passphrase: Array("passphrase".utf8), iterations: 1000)
        #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        let opened = try SigningKey.open(pem: pem, passphrase: Array("passphrase".utf8))
        #expect(opened.publicKey == key.publicKey)
        #expect(throws: WardenError(.wrongPassphrase, "")) { try SigningKey.open(pem: pem, passphrase: Array("wrong".utf8)) }
    }

    @Test(arguments: SigningAlgorithm.allCases)
    func opensslReadsTheKeysAndVerifiesTheSignatures(_ algorithm: SigningAlgorithm) throws {
        let directory = try TemporaryDirectory()
        let key = SigningKey.generate(algorithm)
        let keyFile = try directory.write("key.pem", try key.sealed(passphrase: Array("pass phrase".utf8), iterations: 2048))
        // openssl decrypts our PKCS#8 and derives the same public key.
        let derived = try WardenProcess.launch("openssl", ["pkey", "-in", keyFile, "-passin", "pass:pass phrase", "-pubout"])
        #expect(derived.status == 0, "\(derived.stderr)")
        #expect(derived.stdout == key.publicKey.pem)
        // openssl verifies our signature of a message with the exported public key.
        let message = try directory.write("message", Array("signed metadata".utf8))
        let signature = try directory.write("sig", try key.sign(Array("signed metadata".utf8)))
        let publicFile = try directory.write("pub.pem", key.publicKey.pem)
        let arguments = algorithm == .ed25519
            ? ["pkeyutl", "-verify", "-pubin", "-inkey", publicFile, "-rawin", "-in", message, "-sigfile", signature]
            : ["dgst", "-sha256", "-verify", publicFile, "-signature", signature, message]
        let verified = try WardenProcess.launch("openssl", arguments)
        #expect(verified.status == 0, "\(verified.combined)")
    }

    @Test func malformedPublicKeysAreRefused() {
        #expect(throws: WardenError(.badInput, "")) { try VerifyingKey(ed25519Hex: "00") }
        #expect(throws: WardenError(.badInput, "")) { try VerifyingKey(ed25519Hex: String(repeating: "zz", count: 32)) }
        #expect(throws: WardenError(.badInput, "")) { try VerifyingKey(p256PEM: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n") }
    }

    @Test func sha512MatchesKnownVector() {
        // FIPS 180-2 Appendix C.1: SHA-512("abc").
        #expect(Digest.hex(Digest.sha512(Array("abc".utf8))).hasPrefix("ddaf35a193617abacc417349ae204131"))
    }
}
