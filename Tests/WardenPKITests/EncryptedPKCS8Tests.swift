import Crypto
import Foundation
import SwiftASN1
import Testing
import WardenTestSupport
import WardenCore
import X509

@testable import WardenPKI

/// EncryptedPKCS8 (RFC 5958 §3, RFC 8018 §6.2) against the real `openssl` CLI.
@Suite("EncryptedPKCS8")
struct EncryptedPKCS8Tests {
    /// Few iterations keep the suite fast; the default count has its own test.
    static let fastIterations = 2_048
    static let passphrase = Array("correct horse battery staple".utf8)

    // MARK: helpers

    /// Generates a key with openssl and returns (PEM path, unencrypted PKCS#8 DER as openssl writes it).
    static func opensslKey(_ kind: String, in dir: URL) throws -> (path: String, der: [UInt8]) {
        let path = dir.appendingPathComponent("plain-\(UUID().uuidString).pem").path
        let args: [String]
        switch kind {
        case "P-256", "P-384", "P-521":
            args = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:\(kind)", "-out", path]
        case "ED25519":
            args = ["genpkey", "-algorithm", "ED25519", "-out", path]
        case "RSA":
            args = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path]
        default:
            throw OpenSSLOracle.OracleError(description: "unknown key kind \(kind)")
        }
        let gen = try OpenSSLOracle.run(args)
        try #require(gen.succeeded, "openssl genpkey: \(gen.stderr)")
        // `pkey -outform DER` writes EC keys as SEC1; `pkcs8 -topk8 -nocrypt` always writes PrivateKeyInfo.
        let der = try OpenSSLOracle.run(["pkcs8", "-topk8", "-nocrypt", "-in", path, "-outform", "DER"])
        try #require(der.succeeded, "openssl pkey: \(der.stderr)")
        return (path, der.stdoutBytes)
    }

    /// `openssl pkcs8 -topk8 -v2 <cipher> -v2prf <prf>` of the key at `path`.
    static func opensslSeal(
        _ path: String,
        passphrase: String,
        extra: [String] = ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256"]
    ) throws -> String {
        let out = try OpenSSLOracle.run(
            ["pkcs8", "-topk8", "-in", path, "-passout", "pass:\(passphrase)", "-iter", "\(fastIterations)"] + extra
        )
        try #require(out.succeeded, "openssl pkcs8: \(out.stderr)")
        return out.stdout
    }

    static func expectError(
        _ code: WardenError.Code,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) {
        do {
            try body()
            Issue.record("expected WardenError(.\(code)), got success", sourceLocation: sourceLocation)
        } catch let error as WardenError {
            #expect(error.code == code, "\(error.message)", sourceLocation: sourceLocation)
            #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected WardenError(.\(code)), got \(error)", sourceLocation: sourceLocation)
        }
    }

    /// Builds an EncryptedPrivateKeyInfo by hand, to reach states that neither `seal` nor openssl produce.
    static func handmade(
        iterations: Int,
        keyLength: Int? = nil,
        prf: ASN1ObjectIdentifier? = EncryptedPKCS8.OID.hmacWithSHA256,
        cipher: ASN1ObjectIdentifier = EncryptedPKCS8.OID.aes256CBC,
        ivLength: Int = 16,
        ciphertext: [UInt8] = [UInt8](repeating: 0x42, count: 48)
    ) throws -> String {
        var s = DER.Serializer()
        try s.appendConstructedNode(identifier: .sequence) { c in
            try c.appendConstructedNode(identifier: .sequence) { c in
                try c.serialize(EncryptedPKCS8.OID.pbes2)
                try c.appendConstructedNode(identifier: .sequence) { c in
                    try c.appendConstructedNode(identifier: .sequence) { c in
                        try c.serialize(EncryptedPKCS8.OID.pbkdf2)
                        try c.appendConstructedNode(identifier: .sequence) { c in
                            try c.serialize(ASN1OctetString(contentBytes: [1, 2, 3, 4, 5, 6, 7, 8]))
                            try c.serialize(iterations)
                            if let keyLength { try c.serialize(keyLength) }
                            if let prf {
                                try c.appendConstructedNode(identifier: .sequence) { c in
                                    try c.serialize(prf)
                                    try c.serialize(ASN1Null())
                                }
                            }
                        }
                    }
                    try c.appendConstructedNode(identifier: .sequence) { c in
                        try c.serialize(cipher)
                        try c.serialize(ASN1OctetString(contentBytes: ArraySlice(repeating: 7, count: ivLength)))
                    }
                }
            }
            try c.serialize(ASN1OctetString(contentBytes: ciphertext[...]))
        }
        return PEMDocument(type: "ENCRYPTED PRIVATE KEY", derBytes: s.serializedBytes).pemString
    }

    // MARK: key encodings

    @Test("P256.Signing.PrivateKey.derRepresentation is PKCS#8, and openssl agrees")
    func p256DERIsPKCS8() throws {
        let key = P256.Signing.PrivateKey()
        let der = [UInt8](key.derRepresentation)
        #expect(EncryptedPKCS8.isPrivateKeyInfo(der))
        #expect(try EncryptedPKCS8.pkcs8DER(of: Certificate.PrivateKey(key)) == der)
        try OpenSSLOracle.withTemporaryDirectory { dir in
            let path = try OpenSSLOracle.write(der, to: "k.der", in: dir)
            // `openssl pkey -inform DER` would also accept SEC1; `pkcs8 -nocrypt` accepts only PrivateKeyInfo.
            let out = try OpenSSLOracle.run(["pkcs8", "-nocrypt", "-inform", "DER", "-in", path, "-outform", "DER"])
            #expect(out.succeeded, "\(out.stderr)")
            let pub = try OpenSSLOracle.run(["pkey", "-inform", "DER", "-in", path, "-pubout", "-outform", "DER"])
            #expect(pub.stdoutBytes == [UInt8](key.publicKey.derRepresentation))
        }
    }

    @Test("A SEC1 ECPrivateKey is not a PrivateKeyInfo")
    func sec1IsNotPKCS8() throws {
        let sec1 = try OpenSSLOracle.withTemporaryDirectory { dir -> [UInt8] in
            let path = try OpenSSLOracle.write(P256.Signing.PrivateKey().pemRepresentation, to: "k.pem", in: dir)
            return try OpenSSLOracle.run(["ec", "-in", path, "-outform", "DER"]).stdoutBytes
        }
        #expect(!sec1.isEmpty)
        #expect(!EncryptedPKCS8.isPrivateKeyInfo(sec1))
        Self.expectError(.badInput) { _ = try EncryptedPKCS8.seal(pkcs8DER: sec1, passphrase: Self.passphrase) }
    }

    // MARK: round trips

    static let certificateKeys: [(String, @Sendable () -> Certificate.PrivateKey)] = [
        ("P-256", { Certificate.PrivateKey(P256.Signing.PrivateKey()) }),
        ("P-384", { Certificate.PrivateKey(P384.Signing.PrivateKey()) }),
        ("Ed25519", { Certificate.PrivateKey(Curve25519.Signing.PrivateKey()) }),
    ]

    @Test("seal/openPrivateKey round-trips CA keys, and openssl opens them", arguments: ["P-256", "P-384", "Ed25519"])
    func certificateKeyRoundTrip(kind: String) throws {
        let make = try #require(Self.certificateKeys.first { $0.0 == kind }?.1)
        let key = make()
        let pem = try EncryptedPKCS8.seal(key, passphrase: Self.passphrase, iterations: Self.fastIterations)
        #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"))
        #expect(pem.hasSuffix("-----END ENCRYPTED PRIVATE KEY-----\n"))
        let opened = try EncryptedPKCS8.openPrivateKey(pem: pem, passphrase: Self.passphrase)
        #expect(opened == key)
        #expect(opened.publicKey == key.publicKey)

        try OpenSSLOracle.withTemporaryDirectory { dir in
            let path = try OpenSSLOracle.write(pem, to: "key.pem", in: dir)
            let out = try OpenSSLOracle.run(
                ["pkey", "-in", path, "-passin", "pass:correct horse battery staple", "-pubout", "-outform", "DER"]
            )
            #expect(out.succeeded, "\(out.stderr)")
            #expect(try Certificate.PublicKey(derEncoded: out.stdoutBytes) == key.publicKey)
            let wrong = try OpenSSLOracle.run(["pkey", "-in", path, "-passin", "pass:wrong", "-noout"])
            #expect(!wrong.succeeded)
        }
    }

    @Test("Two seals of the same key differ (fresh salt and IV)")
    func freshSaltAndIV() throws {
        let der = [UInt8](P256.Signing.PrivateKey().derRepresentation)
        let a = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: Self.passphrase, iterations: Self.fastIterations)
        let b = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: Self.passphrase, iterations: Self.fastIterations)
        #expect(a != b)
        let pa = try EncryptedPKCS8.decode(PEMDocument(pemString: a).derBytes)
        let pb = try EncryptedPKCS8.decode(PEMDocument(pemString: b).derBytes)
        #expect(pa.salt.count == 16 && pa.iv.count == 16)
        #expect(pa.salt != pb.salt && pa.iv != pb.iv)
        #expect(pa.iterations == Self.fastIterations && pa.prf == .hmacWithSHA256 && pa.cipher == .aes256CBC)
        #expect(try EncryptedPKCS8.open(pem: a, passphrase: Self.passphrase) == der)
        #expect(try EncryptedPKCS8.open(pem: b, passphrase: Self.passphrase) == der)
    }

    @Test("openssl asn1parse sees PBES2 / PBKDF2 / hmacWithSHA256 / aes-256-cbc in what we seal")
    func opensslSeesOurAlgorithms() throws {
        let der = [UInt8](P256.Signing.PrivateKey().derRepresentation)
        let pem = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: Self.passphrase, iterations: Self.fastIterations)
        let out = try OpenSSLOracle.run(["asn1parse"], stdin: Array(pem.utf8))
        #expect(out.succeeded)
        for name in ["PBES2", "PBKDF2", "hmacWithSHA256", "aes-256-cbc"] {
            #expect(out.stdout.contains(name), "\(name) missing in \(out.stdout)")
        }
    }

    // MARK: openssl → us

    static let opensslSchemes: [[String]] = [
        ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256"],
        ["-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA256"],
        ["-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA384"],
        ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA512"],
    ]

    @Test(
        "We open what openssl pkcs8 -topk8 -v2 seals",
        arguments: ["P-256", "P-384", "ED25519", "RSA"], opensslSchemes
    )
    func openOpenSSLSealed(kind: String, scheme: [String]) throws {
        try OpenSSLOracle.withTemporaryDirectory { dir in
            let (path, plainDER) = try Self.opensslKey(kind, in: dir)
            let pem = try Self.opensslSeal(path, passphrase: "s3cret pass", extra: scheme)
            let opened = try EncryptedPKCS8.open(pem: pem, passphrase: Array("s3cret pass".utf8))
            #expect(opened == plainDER)
            let key = try EncryptedPKCS8.openPrivateKey(pem: pem, passphrase: Array("s3cret pass".utf8))
            let pub = try OpenSSLOracle.run(["pkey", "-in", path, "-pubout", "-outform", "DER"])
            #expect(try Certificate.PublicKey(derEncoded: pub.stdoutBytes) == key.publicKey)
            Self.expectError(.wrongPassphrase) {
                _ = try EncryptedPKCS8.open(pem: pem, passphrase: Array("s3cret pasS".utf8))
            }
        }
    }

    @Test("A key we seal from openssl's PKCS#8 re-opens byte-for-byte in openssl")
    func opensslRoundTripOfOurSeal() throws {
        try OpenSSLOracle.withTemporaryDirectory { dir in
            let (_, plainDER) = try Self.opensslKey("P-384", in: dir)
            let pem = try EncryptedPKCS8.seal(pkcs8DER: plainDER, passphrase: Self.passphrase, iterations: Self.fastIterations)
            let path = try OpenSSLOracle.write(pem, to: "enc.pem", in: dir)
            // `openssl pkey` writes PEM private keys as PKCS#8 "PRIVATE KEY".
            let out = try OpenSSLOracle.run(["pkey", "-in", path, "-passin", "pass:correct horse battery staple"])
            #expect(out.succeeded, "\(out.stderr)")
            #expect(try PEMDocument(pemString: out.stdout).derBytes == plainDER)
        }
    }

    // MARK: negative vectors

    @Test("Wrong passphrases are .wrongPassphrase", arguments: ["", "correct horse battery stapl", "x", "Correct horse battery staple"])
    func wrongPassphrase(_ wrong: String) throws {
        let der = [UInt8](P256.Signing.PrivateKey().derRepresentation)
        let pem = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: Self.passphrase, iterations: Self.fastIterations)
        Self.expectError(.wrongPassphrase) { _ = try EncryptedPKCS8.open(pem: pem, passphrase: Array(wrong.utf8)) }
    }

    @Test("Many wrong passphrases never yield a key (padding that looks right by chance is caught)")
    func wrongPassphraseNeverYieldsKey() throws {
        let der = [UInt8](P256.Signing.PrivateKey().derRepresentation)
        let pem = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: Self.passphrase, iterations: 1_000)
        let parameters = try EncryptedPKCS8.decode(PEMDocument(pemString: pem).derBytes)
        // Random AES keys stand in for wrong passphrases (PBKDF2 is skipped so 2 000 attempts stay fast).
        var sawPlausiblePadding = false
        for attempt in 0..<2_000 {
            let wrongKey = SymmetricKey(data: SHA256.hash(data: Array("attempt \(attempt)".utf8)))
            do {
                _ = try EncryptedPKCS8.decrypt(parameters, key: wrongKey)
                Issue.record("a random key decrypted to a PrivateKeyInfo")
            } catch let error as WardenError {
                #expect(error.code == .wrongPassphrase)
                if error.message.contains("no PKCS#8") { sawPlausiblePadding = true }
            }
        }
        #expect(sawPlausiblePadding, "2 000 random keys should hit valid-looking padding about 8 times")
    }

    @Test("openssl-sealed key with the wrong passphrase is .wrongPassphrase")
    func wrongPassphraseOpenSSL() throws {
        try OpenSSLOracle.withTemporaryDirectory { dir in
            let (path, _) = try Self.opensslKey("P-256", in: dir)
            let pem = try Self.opensslSeal(path, passphrase: "right")
            Self.expectError(.wrongPassphrase) { _ = try EncryptedPKCS8.open(pem: pem, passphrase: Array("wrong".utf8)) }
        }
    }

    @Test("Tampering with salt, IV or ciphertext never yields the key")
    func tamperedCiphertext() throws {
        let der = [UInt8](P256.Signing.PrivateKey().derRepresentation)
        let pem = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: Self.passphrase, iterations: Self.fastIterations)
        let bytes = try PEMDocument(pemString: pem).derBytes
        let parameters = try EncryptedPKCS8.decode(bytes)
        let saltAt = try #require(bytes.firstRange(of: parameters.salt)?.lowerBound)
        let ivAt = try #require(bytes.firstRange(of: parameters.iv)?.lowerBound)
        // salt → other key → bad padding; last ciphertext byte → bad padding; first IV byte → first plaintext byte
        // changes from SEQUENCE (0x30), so the PrivateKeyInfo check fails.
        for position in [saltAt, saltAt + 15, ivAt, bytes.count - 1, bytes.count - 17] {
            var tampered = bytes
            tampered[position] ^= 0x01
            let tamperedPEM = PEMDocument(type: "ENCRYPTED PRIVATE KEY", derBytes: tampered).pemString
            Self.expectError(.wrongPassphrase) { _ = try EncryptedPKCS8.open(pem: tamperedPEM, passphrase: Self.passphrase) }
        }
    }

    @Test("Tampering with the structure is .badInput")
    func tamperedStructure() throws {
        let der = [UInt8](P256.Signing.PrivateKey().derRepresentation)
        let pem = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: Self.passphrase, iterations: Self.fastIterations)
        let bytes = try PEMDocument(pemString: pem).derBytes
        // Bytes 0...3 are the outer SEQUENCE header, then the AlgorithmIdentifier header and the PBES2 OID.
        for position in [0, 1, 4, 5, 10, 16] {
            var tampered = bytes
            tampered[position] ^= 0x01
            let tamperedPEM = PEMDocument(type: "ENCRYPTED PRIVATE KEY", derBytes: tampered).pemString
            Self.expectError(.badInput) { _ = try EncryptedPKCS8.open(pem: tamperedPEM, passphrase: Self.passphrase) }
        }
        // Every truncation, and trailing garbage, is malformed DER.
        for length in stride(from: 0, to: bytes.count, by: 7) {
            let truncated = PEMDocument(type: "ENCRYPTED PRIVATE KEY", derBytes: Array(bytes.prefix(length))).pemString
            Self.expectError(.badInput) { _ = try EncryptedPKCS8.open(pem: truncated, passphrase: Self.passphrase) }
        }
        let trailing = PEMDocument(type: "ENCRYPTED PRIVATE KEY", derBytes: bytes + [0]).pemString
        Self.expectError(.badInput) { _ = try EncryptedPKCS8.open(pem: trailing, passphrase: Self.passphrase) }
    }

    @Test(
        "Garbage and wrong PEM labels are .badInput",
        arguments: [
            "",
            "hello",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\n!!!!\n-----END ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----",
            P256.Signing.PrivateKey().pemRepresentation,
            PEMDocument(type: "CERTIFICATE", derBytes: [0x30, 0x00]).pemString,
            String(repeating: "A", count: 70_000),
        ]
    )
    func garbage(_ pem: String) {
        Self.expectError(.badInput) { _ = try EncryptedPKCS8.open(pem: pem, passphrase: Self.passphrase) }
    }

    @Test(
        "Unsupported openssl schemes are .badInput",
        arguments: [
            ["-v2", "des3"],  // 3DES-CBC
            ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA1"],  // default PRF, omitted from the DER
            ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA224"],
            ["-v1", "PBE-SHA1-3DES"],  // PKCS#12 PBE, not PBES2
            ["-scrypt"],  // RFC 7914 KDF
            ["-v2", "camellia-256-cbc"],
        ]
    )
    func unsupportedOpenSSLSchemes(_ scheme: [String]) throws {
        try OpenSSLOracle.withTemporaryDirectory { dir in
            let (path, _) = try Self.opensslKey("P-256", in: dir)
            let extra = scheme == ["-scrypt"] ? ["-scrypt", "-scrypt_N", "1024"] : scheme
            var args = ["pkcs8", "-topk8", "-in", path, "-passout", "pass:pw"] + extra
            if scheme != ["-scrypt"] { args += ["-iter", "2048"] }
            let out = try OpenSSLOracle.run(args)
            try #require(out.succeeded, "openssl pkcs8 \(scheme): \(out.stderr)")
            Self.expectError(.badInput) { _ = try EncryptedPKCS8.open(pem: out.stdout, passphrase: Array("pw".utf8)) }
        }
    }

    @Test("Hand-made parameters outside the accepted set are .badInput")
    func handmadeBadParameters() throws {
        let cases: [(String, String)] = [
            ("too many iterations", try Self.handmade(iterations: 10_000_001)),
            ("zero iterations", try Self.handmade(iterations: 0)),
            ("negative iterations", try Self.handmade(iterations: -5)),
            ("keyLength mismatch", try Self.handmade(iterations: 2_048, keyLength: 16)),
            ("default PRF hmacWithSHA1", try Self.handmade(iterations: 2_048, prf: nil)),
            ("short IV", try Self.handmade(iterations: 2_048, ivLength: 8)),
            ("ciphertext not block-aligned", try Self.handmade(iterations: 2_048, ciphertext: [1, 2, 3])),
            ("empty ciphertext", try Self.handmade(iterations: 2_048, ciphertext: [])),
            ("unknown cipher", try Self.handmade(iterations: 2_048, cipher: [1, 2, 3, 4])),
        ]
        for (name, pem) in cases {
            do {
                _ = try EncryptedPKCS8.open(pem: pem, passphrase: Self.passphrase)
                Issue.record("\(name): accepted")
            } catch let error as WardenError {
                #expect(error.code == .badInput, "\(name): \(error.message)")
            }
        }
        // A matching explicit keyLength is fine (it only fails on the passphrase).
        let explicit = try Self.handmade(iterations: 2_048, keyLength: 32)
        Self.expectError(.wrongPassphrase) { _ = try EncryptedPKCS8.open(pem: explicit, passphrase: Self.passphrase) }
    }

    @Test("seal refuses empty passphrases, out-of-range iterations and non-PKCS#8 input")
    func sealRefuses() throws {
        let der = [UInt8](P256.Signing.PrivateKey().derRepresentation)
        Self.expectError(.badInput) { _ = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: []) }
        Self.expectError(.badInput) { _ = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: Self.passphrase, iterations: 999) }
        Self.expectError(.badInput) {
            _ = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: Self.passphrase, iterations: 10_000_001)
        }
        Self.expectError(.badInput) { _ = try EncryptedPKCS8.seal(pkcs8DER: [], passphrase: Self.passphrase) }
        Self.expectError(.badInput) { _ = try EncryptedPKCS8.seal(pkcs8DER: [0x30, 0x00], passphrase: Self.passphrase) }
        Self.expectError(.badInput) {
            _ = try EncryptedPKCS8.seal(pkcs8DER: der + [0x00], passphrase: Self.passphrase)
        }
        Self.expectError(.badInput) {
            _ = try EncryptedPKCS8.seal(pkcs8DER: [UInt8](repeating: 0x30, count: 70_000), passphrase: Self.passphrase)
        }
    }

    @Test("A key whose scalar was altered before sealing is refused by openPrivateKey (embedded public key check)")
    func inconsistentECKey() throws {
        let key = P256.Signing.PrivateKey()
        var der = [UInt8](key.derRepresentation)
        #expect(EncryptedPKCS8.embeddedECPublicKey(der) == [UInt8](key.publicKey.x963Representation))
        // The 32-byte scalar follows the OCTET STRING header 04 20 inside the ECPrivateKey.
        let scalarAt = try #require(der.firstRange(of: [UInt8](key.rawRepresentation))?.lowerBound)
        der[scalarAt + 5] ^= 0x40
        let pem = try EncryptedPKCS8.seal(pkcs8DER: der, passphrase: Self.passphrase, iterations: Self.fastIterations)
        #expect(try EncryptedPKCS8.open(pem: pem, passphrase: Self.passphrase) == der)  // structure is fine
        Self.expectError(.badInput) { _ = try EncryptedPKCS8.openPrivateKey(pem: pem, passphrase: Self.passphrase) }
        // Ed25519 PKCS#8 v1 carries no public key: nothing to compare, and that is fine.
        let ed = [UInt8](try EncryptedPKCS8.pkcs8DER(of: Certificate.PrivateKey(Curve25519.Signing.PrivateKey())))
        #expect(EncryptedPKCS8.embeddedECPublicKey(ed) == nil)
    }

    // MARK: default iterations

    @Test("Default iteration count: openssl opens it; time one open")
    func defaultIterations() throws {
        #expect(EncryptedPKCS8.defaultIterations >= 600_000)
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let pem = try EncryptedPKCS8.seal(key, passphrase: Self.passphrase)
        let clock = ContinuousClock()
        var opened: Certificate.PrivateKey?
        let elapsed = try clock.measure {
            opened = try EncryptedPKCS8.openPrivateKey(pem: pem, passphrase: Self.passphrase)
        }
        #expect(opened == key)
        print("EncryptedPKCS8.open with \(EncryptedPKCS8.defaultIterations) PBKDF2-HMAC-SHA256 iterations took \(elapsed)")
        try OpenSSLOracle.withTemporaryDirectory { dir in
            let path = try OpenSSLOracle.write(pem, to: "key.pem", in: dir)
            let out = try OpenSSLOracle.run(["pkey", "-in", path, "-passin", "pass:correct horse battery staple", "-noout"])
            #expect(out.succeeded, "\(out.stderr)")
        }
    }
}
