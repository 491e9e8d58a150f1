import Foundation
import WardenCore
import WardenPKI

/// A metadata file: `{"signed": {...}, "signatures": [{"keyid": ..., "sig": ...}]}` (TUF 1.0 §4.2).
///
/// `signed` is kept exactly as parsed, so verification covers every field, known or not.
public struct SignedMetadata<Payload: TUFPayload>: Sendable {
    /// The parsed payload.
    public let payload: Payload
    /// The `signed` object as parsed (or as produced when signing).
    public let signed: JSONValue
    /// The signatures, at most one per key id.
    public private(set) var signatures: [TUFSignature]

    /// The largest metadata file parsed (a 10 000-target targets.json is about 5 MiB).
    public static var maximumBytes: Int { 64 * 1024 * 1024 }

    /// Parses a metadata file. Refused: malformed JSON, a `signed` of another role, two signatures with one key id.
    public static func parse(_ bytes: [UInt8], what: String? = nil) throws -> SignedMetadata {
        let name = what ?? "\(Payload.role.rawValue) metadata"
        guard bytes.count <= maximumBytes else { throw WardenError.badInput("\(name) is larger than \(maximumBytes) bytes") }
        let document = try JSONValue.parse(bytes, what: name)
        guard let signed = document["signed"], let list = document["signatures"]?.arrayValue else {
            throw WardenError.badInput("\(name) lacks 'signed' or 'signatures'")
        }
        var signatures: [TUFSignature] = []
        var seen = Set<String>()
        for entry in list {
            guard let keyID = entry["keyid"]?.stringValue, let hex = entry["sig"]?.stringValue else {
                throw WardenError.badInput("\(name) has a signature without keyid or sig")
            }
            guard seen.insert(keyID).inserted else { throw WardenError.badInput("\(name) has two signatures by key \(keyID.prefix(16))") }
            signatures.append(TUFSignature(keyID: keyID, signature: hex.isEmpty ? [] : Digest.bytes(fromHex: hex) ?? []))
        }
        let payload: Payload
        do {
            payload = try Payload(signed: signed)
        } catch let error as WardenError {
            throw WardenError(error.code, "\(name): \(error.message)")
        }
        return SignedMetadata(payload: payload, signed: signed, signatures: signatures)
    }

    /// Unsigned metadata for `payload`; add signatures with ``sign(with:)``.
    public init(_ payload: Payload) {
        self.payload = payload
        signed = payload.signedJSON
        signatures = []
    }

    init(payload: Payload, signed: JSONValue, signatures: [TUFSignature]) {
        self.payload = payload
        self.signed = signed
        self.signatures = signatures
    }

    /// The bytes every signature covers: the canonical JSON of `signed`.
    public var signedBytes: [UInt8] { signed.canonicalBytes }

    /// Adds (or replaces) the signature of each key over the canonical `signed` bytes.
    public mutating func sign(with keys: [SigningKey]) throws {
        let message = signedBytes
        for key in keys {
            let keyID = TUFKey(key.publicKey).keyID
            let signature = TUFSignature(keyID: keyID, signature: try key.sign(message))
            signatures.removeAll { $0.keyID == keyID }
            signatures.append(signature)
        }
    }

    /// The file: `signed` and `signatures` as indented JSON with sorted keys.
    public var fileBytes: [UInt8] {
        JSONValue.object([
            "signed": signed,
            "signatures": .array(
                signatures.map { .object(["keyid": .string($0.keyID), "sig": .string(Digest.hex($0.signature))]) }),
        ]).prettyBytes
    }

    /// Checks that at least `role.threshold` distinct keys of `role`, each listed in `keys`, signed `signed`
    /// (TUF 1.0 §5.3.4). Signatures by keys outside the role, unknown key types and bad signatures count for nothing.
    /// - Throws: `.signatureInvalid` naming how many valid signatures were found.
    public func verify(role: TUFRole, keys: [String: TUFKey], roleName: String? = nil) throws {
        let message = signedBytes
        var valid = Set<String>()
        for keyID in role.keyIDs where !valid.contains(keyID) {
            guard let key = keys[keyID]?.verifyingKey,
                let signature = signatures.first(where: { $0.keyID == keyID }),
                key.isValidSignature(signature.signature, for: message)
            else { continue }
            valid.insert(keyID)
        }
        guard role.threshold >= 1, valid.count >= role.threshold else {
            throw WardenError(
                .signatureInvalid,
                "\(roleName ?? Payload.role.rawValue) metadata v\(payload.version) has \(valid.count) valid signature(s) of the \(role.threshold) its role requires")
        }
    }

    /// Verifies with the role of that name in `root`.
    public func verify(by root: RootMetadata, as name: TUFRoleName) throws {
        try verify(role: root.role(name), keys: root.keys, roleName: name.rawValue)
    }
}
