import WardenCore
import WardenPKI

/// A public key as TUF metadata lists it (TUF 1.0 §4.2 "KEY"), in the securesystemslib forms python-tuf accepts:
/// - `{"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": HEX}}`
/// - `{"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": PEM}}`
///
/// The key id is the hex SHA-256 of the canonical JSON of that object (TUF 1.0 §4.2 "KEYID").
public struct TUFKey: Sendable, Equatable {
    /// The key object exactly as listed in metadata.
    public let json: JSONValue
    /// `keytype`.
    public let keytype: String
    /// `scheme`.
    public let scheme: String
    /// `keyval.public`.
    public let publicValue: String

    /// The TUF form of a Warden public key.
    public init(_ key: VerifyingKey) {
        switch key.algorithm {
        case .ed25519:
            keytype = "ed25519"
            scheme = "ed25519"
            publicValue = key.hex
        case .ecdsaP256:
            keytype = "ecdsa"
            scheme = "ecdsa-sha2-nistp256"
            publicValue = key.pem
        }
        json = .object([
            "keytype": .string(keytype), "scheme": .string(scheme), "keyval": .object(["public": .string(publicValue)]),
        ])
    }

    /// Parses a key object; unknown key types are kept (they never verify anything).
    public init(json: JSONValue) throws {
        guard let keytype = json["keytype"]?.stringValue, let scheme = json["scheme"]?.stringValue,
            let publicValue = json["keyval"]?["public"]?.stringValue
        else {
            throw WardenError.badInput("a TUF key lacks keytype, scheme or keyval.public")
        }
        self.json = json
        self.keytype = keytype
        self.scheme = scheme
        self.publicValue = publicValue
    }

    /// The key id: hex SHA-256 of the canonical JSON of the key object.
    public var keyID: String { Digest.hex(Digest.sha256(json.canonicalBytes)) }

    /// The verifying key, or nil for a key type or scheme Warden does not support (such a key verifies nothing).
    public var verifyingKey: VerifyingKey? {
        switch (keytype, scheme) {
        case ("ed25519", "ed25519"): try? VerifyingKey(ed25519Hex: publicValue)
        case ("ecdsa", "ecdsa-sha2-nistp256"), ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"): try? VerifyingKey(p256PEM: publicValue)
        default: nil
        }
    }
}

/// A role's key ids and signature threshold (TUF 1.0 §4.3 "ROLE").
public struct TUFRole: Sendable, Equatable {
    /// The key ids allowed to sign for the role.
    public var keyIDs: [String]
    /// How many distinct keys must sign.
    public var threshold: Int

    /// Creates a role.
    public init(keyIDs: [String], threshold: Int) {
        self.keyIDs = keyIDs
        self.threshold = threshold
    }

    var json: JSONValue { .object(["keyids": .array(keyIDs.map { .string($0) }), "threshold": .int(Int64(threshold))]) }

    init(json: JSONValue, name: String) throws {
        guard let ids = json["keyids"]?.arrayValue, let threshold = json["threshold"]?.intValue else {
            throw WardenError.badInput("role '\(name)' lacks keyids or threshold")
        }
        let keyIDs = try ids.map { value -> String in
            guard let id = value.stringValue else { throw WardenError.badInput("role '\(name)' has a non-string key id") }
            return id
        }
        guard Set(keyIDs).count == keyIDs.count else { throw WardenError.badInput("role '\(name)' lists a key id twice") }
        guard threshold >= 1, threshold <= 1_000 else { throw WardenError.badInput("role '\(name)' has threshold \(threshold)") }
        self.keyIDs = keyIDs
        self.threshold = Int(threshold)
    }
}

/// One signature of a metadata file: the key id and the hex signature (TUF 1.0 §4.2).
public struct TUFSignature: Sendable, Equatable {
    /// The signer's key id.
    public var keyID: String
    /// The signature, hex in the file.
    public var signature: [UInt8]

    /// Creates a signature entry.
    public init(keyID: String, signature: [UInt8]) {
        self.keyID = keyID
        self.signature = signature
    }
}
