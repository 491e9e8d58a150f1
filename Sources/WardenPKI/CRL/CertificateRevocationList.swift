import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// RFC 5280 §5.3.1 reason codes.
///
/// Value 7 is unused in RFC 5280. `removeFromCRL` belongs to delta CRLs only, so Warden never writes it into the
/// complete CRLs it signs.
public enum RevocationReason: Int, Sendable, CaseIterable, Codable {
    /// No reason given. Per RFC 5280 §5.3.1 the reason code extension SHOULD be absent rather than say this.
    case unspecified = 0
    /// The subject's private key is known or suspected to be compromised.
    case keyCompromise = 1
    /// A CA's private key is known or suspected to be compromised.
    case caCompromise = 2
    /// The subject's name or other information has changed.
    case affiliationChanged = 3
    /// The certificate has been replaced by a new one.
    case superseded = 4
    /// The certificate is no longer needed (e.g. the device was decommissioned).
    case cessationOfOperation = 5
    /// The certificate is temporarily suspended.
    case certificateHold = 6
    /// Delta CRLs only: a previously held certificate is released. `CertificateRevocationList.sign` refuses it,
    /// so do not let anyone revoke with it (see ``isValidInCompleteCRL``).
    case removeFromCRL = 8
    /// A privilege granted by the certificate was withdrawn.
    case privilegeWithdrawn = 9
    /// An attribute authority's key was compromised.
    case aaCompromise = 10

    /// Parses a reason name: the RFC 5280 camelCase names ("keyCompromise", "cessationOfOperation", ...),
    /// case-insensitively, also written in kebab or snake case ("key-compromise", "key_compromise").
    public init?(name: String) {
        let folded = name.lowercased().filter { $0 != "-" && $0 != "_" && $0 != " " }
        guard let match = Self.allCases.first(where: { $0.name.lowercased() == folded }) else {
            return nil
        }
        self = match
    }

    /// Whether a complete (non-delta) CRL may carry this reason: all but `removeFromCRL` (RFC 5280 §5.3.1).
    public var isValidInCompleteCRL: Bool { self != .removeFromCRL }

    /// The RFC 5280 §5.3.1 ASN.1 name, e.g. "keyCompromise" (spelled "cACompromise" and "aACompromise" as in the RFC).
    public var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .keyCompromise: "keyCompromise"
        case .caCompromise: "cACompromise"
        case .affiliationChanged: "affiliationChanged"
        case .superseded: "superseded"
        case .cessationOfOperation: "cessationOfOperation"
        case .certificateHold: "certificateHold"
        case .removeFromCRL: "removeFromCRL"
        case .privilegeWithdrawn: "privilegeWithdrawn"
        case .aaCompromise: "aACompromise"
        }
    }
}

/// One revoked entry (RFC 5280 §5.1.2.6).
public struct RevokedCertificate: Sendable, Equatable {
    /// The certificate serial number, big-endian without leading zero bytes, as in `Certificate.SerialNumber.bytes`.
    public var serialNumber: [UInt8]
    /// When the certificate was revoked (whole seconds in the encoded CRL).
    public var revocationDate: Date
    /// The reason, if one is recorded (RFC 5280 §5.3.1); `nil` when the entry has no reason code extension.
    public var reason: RevocationReason?

    /// Creates an entry. Leading zero bytes of `serialNumber` are dropped, so `[0x00, 0x80]` and `[0x80]` are equal.
    public init(serialNumber: [UInt8], revocationDate: Date, reason: RevocationReason? = nil) {
        self.serialNumber = CertificateRevocationList.normalizedSerial(serialNumber)
        self.revocationDate = revocationDate
        self.reason = reason
    }
}

/// An X.509 v2 CRL (RFC 5280 §5), built and parsed with SwiftASN1.
///
/// Values are immutable: every property is read from the signed DER, so what you see is what the signature covers.
/// Parsing is strict DER and refuses what Warden cannot honour safely: delta CRLs, indirect CRLs, issuing
/// distribution points and any unknown critical extension (RFC 5280 §5.2, §5.3).
public struct CertificateRevocationList: Sendable {
    /// The largest CRL accepted by ``init(derEncoded:)``.
    static let maximumDERBytes = 16 * 1024 * 1024
    /// The PEM label of RFC 7468 §6.
    static let pemLabel = "X509 CRL"

    /// The complete DER encoding (CertificateList, RFC 5280 §5.1).
    public let derEncoded: [UInt8]
    /// The issue date of this CRL (RFC 5280 §5.1.2.4).
    public let thisUpdate: Date
    /// The date by which the next CRL will be issued (RFC 5280 §5.1.2.5); conforming issuers always set it.
    public let nextUpdate: Date?
    /// The CRL number extension (RFC 5280 §5.2.3), if present and no wider than 64 bits.
    public let crlNumber: UInt64?
    /// The revoked certificates, in the order of the encoding (Warden signs them sorted by serial number).
    public let revoked: [RevokedCertificate]
    /// The keyIdentifier of the authority key identifier extension (RFC 5280 §5.2.1), if present.
    public let authorityKeyIdentifier: [UInt8]?

    /// The issuer name (RFC 5280 §5.1.2.3).
    let issuer: DistinguishedName
    /// The exact DER of the issuer name.
    let issuerDER: [UInt8]
    /// The signed TBSCertList bytes.
    let tbsBytes: [UInt8]
    /// The signature algorithm (RFC 5280 §5.1.1.2).
    let signatureAlgorithm: Certificate.SignatureAlgorithm
    /// The signature value: the contents of the BIT STRING (RFC 5280 §5.1.1.3).
    let signatureBytes: [UInt8]
    /// Position in ``revoked`` of each serial number (first occurrence), so lookups stay O(1) on large CRLs.
    private let indexBySerial: [[UInt8]: Int]

    /// The PEM encoding ("X509 CRL", RFC 7468 §6), ending with a newline.
    public var pemEncoded: String {
        PEMDocument(type: Self.pemLabel, derBytes: derEncoded).pemString + "\n"
    }

    /// Parses a PEM "X509 CRL" document (RFC 7468 §6).
    public init(pemEncoded: String) throws {
        guard pemEncoded.utf8.count <= Self.maximumDERBytes * 4 / 3 + 4096 else {
            throw WardenError.badInput("The CRL PEM is larger than the \(Self.maximumDERBytes)-byte limit.")
        }
        let document: PEMDocument
        do {
            document = try PEMDocument(pemString: pemEncoded)
        } catch {
            throw WardenError.badInput("The CRL is not a PEM document: \(error).")
        }
        guard document.discriminator == Self.pemLabel else {
            throw WardenError.badInput("The PEM document is a \"\(document.discriminator)\", not an \"\(Self.pemLabel)\".")
        }
        try self.init(derEncoded: document.derBytes)
    }

    /// Parses a DER CertificateList (RFC 5280 §5.1), strictly; throws `.badInput` naming what is wrong.
    public init(derEncoded: [UInt8]) throws {
        guard !derEncoded.isEmpty else {
            throw WardenError.badInput("The CRL is empty.")
        }
        guard derEncoded.count <= Self.maximumDERBytes else {
            throw WardenError.badInput("The CRL is \(derEncoded.count) bytes, more than the \(Self.maximumDERBytes)-byte limit.")
        }
        do {
            self = try Self.parse(derEncoded)
        } catch let error as WardenError {
            throw error
        } catch {
            throw WardenError.badInput("The CRL is not valid DER: \(error).")
        }
    }

    private init(
        derEncoded: [UInt8],
        tbs: TBS,
        signatureAlgorithm: Certificate.SignatureAlgorithm,
        signatureBytes: [UInt8]
    ) {
        self.derEncoded = derEncoded
        self.thisUpdate = tbs.thisUpdate
        self.nextUpdate = tbs.nextUpdate
        self.crlNumber = tbs.crlNumber
        self.revoked = tbs.revoked
        self.authorityKeyIdentifier = tbs.authorityKeyIdentifier
        self.issuer = tbs.issuer
        self.issuerDER = tbs.issuerDER
        self.tbsBytes = tbs.bytes
        self.signatureAlgorithm = signatureAlgorithm
        self.signatureBytes = signatureBytes
        var index: [[UInt8]: Int] = [:]
        index.reserveCapacity(tbs.revoked.count)
        for (position, entry) in tbs.revoked.enumerated() where index[entry.serialNumber] == nil {
            index[entry.serialNumber] = position
        }
        self.indexBySerial = index
    }

    /// The entry for a serial number (big-endian; leading zero bytes are ignored), if it is listed.
    public func entry(forSerial bytes: [UInt8]) -> RevokedCertificate? {
        indexBySerial[Self.normalizedSerial(bytes)].map { revoked[$0] }
    }

    /// Whether `issuer` issued this CRL: its subject equals the CRL issuer name (RFC 5280 §6.3.3 (b)) and its
    /// public key verifies the CRL signature (RFC 5280 §6.3.3 (f), (g)).
    func isSignatureValid(issuer: Certificate) -> Bool {
        guard issuer.subject == self.issuer else { return false }
        return issuer.publicKey.isValidSignature(signatureBytes, for: tbsBytes, signatureAlgorithm: signatureAlgorithm)
    }

    // MARK: - Signing

    /// Builds and signs a complete v2 CRL (RFC 5280 §5.1) for `issuer`.
    ///
    /// - issuer name: the exact DER of `issuer`'s subject (RFC 5280 §5.1.2.3);
    /// - signature: ecdsa-with-SHA256/384/512 for P-256/P-384/P-521 keys, Ed25519, or sha256WithRSAEncryption
    ///   (RFC 5758 §3.2, RFC 8410 §3, RFC 4055 §5);
    /// - times: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §5.1.2.4), truncated to whole seconds;
    /// - extensions: authority key identifier = the issuer's subject key identifier (§5.2.1) and CRL number
    ///   (§5.2.3), both non-critical;
    /// - entries: sorted by serial number; the reason code extension (§5.3.1) only when the reason is neither nil nor
    ///   `unspecified`; revokedCertificates is omitted entirely when there are none (§5.1.2.6).
    static func sign(
        issuer: Certificate,
        issuerKey: Certificate.PrivateKey,
        crlNumber: UInt64,
        thisUpdate: Date,
        nextUpdate: Date,
        revoked: [RevokedCertificate]
    ) throws -> CertificateRevocationList {
        guard issuerKey.publicKey == issuer.publicKey else {
            throw WardenError.badInput("The CRL signing key does not belong to the issuer certificate \(issuer.subject).")
        }
        if let keyUsage = try? issuer.extensions.keyUsage, !keyUsage.cRLSign {
            // RFC 5280 §4.2.1.3: a CA signs CRLs only if its key usage asserts cRLSign.
            throw WardenError.policy("The issuer \(issuer.subject) lacks the cRLSign key usage (RFC 5280 §4.2.1.3).")
        }
        guard nextUpdate > thisUpdate else {
            throw WardenError.badInput("The CRL nextUpdate \(nextUpdate) is not after thisUpdate \(thisUpdate).")
        }
        guard crlNumber > 0 else {
            // pkilint and RFC 5280 §5.2.3 expect a positive, monotonically increasing number.
            throw WardenError.badInput("The CRL number must be positive.")
        }

        var entries: [RevokedCertificate] = []
        entries.reserveCapacity(revoked.count)
        for entry in revoked {
            let serial = normalizedSerial(entry.serialNumber)
            guard !serial.isEmpty else {
                throw WardenError.badInput("A revoked certificate has serial number zero (RFC 5280 §4.1.2.2).")
            }
            guard serial.count <= 20 else {
                throw WardenError.badInput("The serial number \(hex(serial)) is longer than 20 octets (RFC 5280 §4.1.2.2).")
            }
            if let reason = entry.reason, !reason.isValidInCompleteCRL {
                throw WardenError.badInput("removeFromCRL may only appear in delta CRLs (RFC 5280 §5.3.1).")
            }
            entries.append(RevokedCertificate(serialNumber: serial, revocationDate: entry.revocationDate, reason: entry.reason))
        }
        entries.sort { serialLess($0.serialNumber, $1.serialNumber) }
        for (a, b) in zip(entries, entries.dropFirst()) where a.serialNumber == b.serialNumber {
            throw WardenError.badInput("The serial number \(hex(a.serialNumber)) is listed twice.")
        }

        let signatureAlgorithm = try signatureAlgorithm(for: issuerKey)
        let algorithmIdentifier = try algorithmIdentifierDER(for: signatureAlgorithm)
        let issuerDER = try subjectDER(of: issuer)
        let keyIdentifier =
            (try? issuer.extensions.subjectKeyIdentifier)?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: issuer.publicKey).keyIdentifier

        var tbs = DER.Serializer()
        do {
            // TBSCertList (RFC 5280 §5.1.2)
            try tbs.appendConstructedNode(identifier: .sequence) { coder in
                try coder.serialize(1)  // version v2 (§5.1.2.1)
                coder.serializeRawBytes(algorithmIdentifier)  // signature (§5.1.2.2)
                coder.serializeRawBytes(issuerDER)  // issuer (§5.1.2.3)
                try serializeTime(thisUpdate, into: &coder)  // thisUpdate (§5.1.2.4)
                try serializeTime(nextUpdate, into: &coder)  // nextUpdate (§5.1.2.5)
                if !entries.isEmpty {  // revokedCertificates (§5.1.2.6)
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        for entry in entries {
                            try coder.appendConstructedNode(identifier: .sequence) { coder in
                                try coder.serialize(ArraySlice(entry.serialNumber))
                                try serializeTime(entry.revocationDate, into: &coder)
                                if let reason = entry.reason, reason != .unspecified {
                                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                                        try serializeExtension(OID.reasonCode, into: &coder) { value in
                                            try reason.rawValue.serialize(into: &value, withIdentifier: .enumerated)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                // crlExtensions [0] EXPLICIT (§5.1.2.7)
                try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try serializeExtension(OID.authorityKeyIdentifier, into: &coder) { value in
                            try value.appendConstructedNode(identifier: .sequence) { value in
                                try ASN1OctetString(contentBytes: keyIdentifier).serialize(
                                    into: &value,
                                    withIdentifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)
                                )
                            }
                        }
                        try serializeExtension(OID.crlNumber, into: &coder) { value in
                            try value.serialize(crlNumber)
                        }
                    }
                }
            }
        } catch let error as WardenError {
            throw error
        } catch {
            throw WardenError.internal("Encoding a TBSCertList failed: \(error).")
        }

        let signature: Certificate.Signature
        do {
            signature = try issuerKey.sign(bytes: tbs.serializedBytes, signatureAlgorithm: signatureAlgorithm)
        } catch {
            throw WardenError.internal("Signing the CRL with \(issuerKey) failed: \(error).")
        }

        var list = DER.Serializer()
        do {
            // CertificateList (RFC 5280 §5.1.1)
            try list.appendConstructedNode(identifier: .sequence) { coder in
                coder.serializeRawBytes(tbs.serializedBytes)
                coder.serializeRawBytes(algorithmIdentifier)
                try coder.serialize(ASN1BitString(bytes: ArraySlice(signature.rawRepresentation)))
            }
        } catch {
            throw WardenError.internal("Encoding a CertificateList failed: \(error).")
        }
        // Parse what we wrote: the returned value is exactly what a relying party will see.
        return try CertificateRevocationList(derEncoded: list.serializedBytes)
    }

    static func signatureAlgorithm(for key: Certificate.PrivateKey) throws -> Certificate.SignatureAlgorithm {
        if P256.Signing.PublicKey(key.publicKey) != nil { return .ecdsaWithSHA256 }
        if P384.Signing.PublicKey(key.publicKey) != nil { return .ecdsaWithSHA384 }
        if P521.Signing.PublicKey(key.publicKey) != nil { return .ecdsaWithSHA512 }
        let supported = key.supportedSignatureAlgorithms
        if supported.contains(.ed25519) { return .ed25519 }
        if supported.contains(.sha256WithRSAEncryption) { return .sha256WithRSAEncryption }
        throw WardenError.badInput("No CRL signature algorithm for the key \(key).")
    }

    // MARK: - Parsing

    private struct TBS {
        var bytes: [UInt8]
        var issuer: DistinguishedName
        var issuerDER: [UInt8]
        var thisUpdate: Date
        var nextUpdate: Date?
        var revoked: [RevokedCertificate]
        var crlNumber: UInt64?
        var authorityKeyIdentifier: [UInt8]?
        var algorithmDER: [UInt8]
    }

    private static func parse(_ der: [UInt8]) throws -> CertificateRevocationList {
        let root = try DER.parse(der)
        return try DER.sequence(root, identifier: .sequence) { nodes in
            guard let tbsNode = nodes.next(), let algorithmNode = nodes.next(), let signatureNode = nodes.next() else {
                throw WardenError.badInput("A CertificateList has three fields (RFC 5280 §5.1.1).")
            }
            let tbs = try parseTBS(tbsNode)
            // §5.1.1.2: signatureAlgorithm MUST equal the signature field of the TBSCertList.
            guard Array(algorithmNode.encodedBytes) == tbs.algorithmDER else {
                throw WardenError.badInput("The CRL's two signature algorithm fields differ (RFC 5280 §5.1.1.2).")
            }
            let algorithm = try signatureAlgorithm(fromDER: algorithmNode)
            let bits = try ASN1BitString(derEncoded: signatureNode)
            guard bits.paddingBits == 0, !bits.bytes.isEmpty else {
                throw WardenError.badInput("The CRL signature BIT STRING is empty or not octet-aligned.")
            }
            return CertificateRevocationList(
                derEncoded: der,
                tbs: tbs,
                signatureAlgorithm: algorithm,
                signatureBytes: Array(bits.bytes)
            )
        }
    }

    private static func parseTBS(_ node: ASN1Node) throws -> TBS {
        try DER.sequence(node, identifier: .sequence) { nodes in
            var version = 0  // absent = v1 (§5.1.2.1)
            var next = nodes.next()
            if let node = next, node.identifier == .integer {
                version = try Int(derEncoded: node)
                guard version == 1 else {
                    throw WardenError.badInput("The CRL version field is \(version), not 1 (v2) (RFC 5280 §5.1.2.1).")
                }
                next = nodes.next()
            }
            guard let algorithmNode = next, let issuerNode = nodes.next(), let thisUpdateNode = nodes.next() else {
                throw WardenError.badInput("The TBSCertList lacks its signature, issuer or thisUpdate (RFC 5280 §5.1.2).")
            }
            _ = try signatureAlgorithm(fromDER: algorithmNode)
            let issuer = try DistinguishedName(derEncoded: issuerNode)
            let thisUpdate = try parseTime(thisUpdateNode, field: "thisUpdate")

            next = nodes.next()
            var nextUpdate: Date?
            if let node = next, node.identifier == .utcTime || node.identifier == .generalizedTime {
                nextUpdate = try parseTime(node, field: "nextUpdate")
                next = nodes.next()
            }

            var revoked: [RevokedCertificate] = []
            var entryExtensionsSeen = false
            if let node = next, node.identifier == .sequence {
                revoked = try DER.sequence(node, identifier: .sequence) { entries in
                    var result: [RevokedCertificate] = []
                    while let entry = entries.next() {
                        let (parsed, hadExtensions) = try parseEntry(entry)
                        entryExtensionsSeen = entryExtensionsSeen || hadExtensions
                        result.append(parsed)
                    }
                    return result
                }
                guard !revoked.isEmpty else {
                    // §5.1.2.6: when there are no revoked certificates the list MUST be absent.
                    throw WardenError.badInput("The CRL has an empty revokedCertificates list (RFC 5280 §5.1.2.6).")
                }
                next = nodes.next()
            }

            var crlNumber: UInt64?
            var authorityKeyIdentifier: [UInt8]?
            var hasExtensions = false
            if let node = next {
                guard node.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) else {
                    throw WardenError.badInput("Unexpected field \(node.identifier) at the end of the TBSCertList.")
                }
                hasExtensions = true
                try DER.explicitlyTagged(node, tagNumber: 0, tagClass: .contextSpecific) { extensionsNode in
                    try parseExtensions(extensionsNode) { oid, critical, value in
                        switch oid {
                        case OID.crlNumber:
                            let number = try ArraySlice<UInt8>(derEncoded: DER.parse(value))
                            guard number.count <= 20 else {
                                throw WardenError.badInput("The CRL number is longer than 20 octets (RFC 5280 §5.2.3).")
                            }
                            crlNumber = number.count <= 8 ? number.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } : nil
                        case OID.authorityKeyIdentifier:
                            let akiNode = try DER.parse(value)
                            authorityKeyIdentifier = try DER.sequence(akiNode, identifier: .sequence) { fields in
                                var keyIdentifier: [UInt8]?
                                while let field = fields.next() {
                                    if field.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) {
                                        keyIdentifier = Array(
                                            try ASN1OctetString(derEncoded: field, withIdentifier: field.identifier).bytes
                                        )
                                    }
                                }
                                return keyIdentifier
                            }
                        default:
                            // deltaCRLIndicator, issuingDistributionPoint and anything unknown: a relying party
                            // MUST NOT use a CRL with a critical extension it cannot process (RFC 5280 §5.2).
                            if critical {
                                throw WardenError.badInput("The CRL has an unsupported critical extension \(oid) (RFC 5280 §5.2).")
                            }
                        }
                    }
                }
                next = nodes.next()
            }
            guard next == nil else {
                throw WardenError.badInput("The TBSCertList has trailing fields.")
            }
            if version == 0, hasExtensions || entryExtensionsSeen {
                throw WardenError.badInput("A v1 CRL carries extensions; the version field must then be v2 (RFC 5280 §5.1.2.1).")
            }
            return TBS(
                bytes: Array(node.encodedBytes),
                issuer: issuer,
                issuerDER: Array(issuerNode.encodedBytes),
                thisUpdate: thisUpdate,
                nextUpdate: nextUpdate,
                revoked: revoked,
                crlNumber: crlNumber,
                authorityKeyIdentifier: authorityKeyIdentifier,
                algorithmDER: Array(algorithmNode.encodedBytes)
            )
        }
    }

    /// revokedCertificates entry: SEQUENCE { userCertificate, revocationDate, crlEntryExtensions OPTIONAL }
    private static func parseEntry(_ node: ASN1Node) throws -> (RevokedCertificate, Bool) {
        try DER.sequence(node, identifier: .sequence) { fields in
            guard let serialNode = fields.next(), let dateNode = fields.next() else {
                throw WardenError.badInput("A revoked certificate entry lacks its serial number or date (RFC 5280 §5.1.2.6).")
            }
            let serial = Array(try ArraySlice<UInt8>(derEncoded: serialNode))
            let date = try parseTime(dateNode, field: "revocationDate")
            var reason: RevocationReason?
            var hadExtensions = false
            if let extensionsNode = fields.next() {
                hadExtensions = true
                try parseExtensions(extensionsNode) { oid, critical, value in
                    switch oid {
                    case OID.reasonCode:
                        let code = try Int(derEncoded: DER.parse(value), withIdentifier: .enumerated)
                        guard let parsed = RevocationReason(rawValue: code) else {
                            throw WardenError.badInput("Unknown CRL reason code \(code) (RFC 5280 §5.3.1).")
                        }
                        reason = parsed
                    default:
                        // certificateIssuer (indirect CRLs) and anything unknown and critical (RFC 5280 §5.3).
                        if critical {
                            throw WardenError.badInput("A CRL entry has an unsupported critical extension \(oid) (RFC 5280 §5.3).")
                        }
                    }
                }
            }
            return (RevokedCertificate(serialNumber: serial, revocationDate: date, reason: reason), hadExtensions)
        }
    }

    /// Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension; Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE,
    /// extnValue OCTET STRING } (RFC 5280 §4.1). Each extension may appear at most once (§4.2).
    private static func parseExtensions(
        _ node: ASN1Node,
        _ handle: (ASN1ObjectIdentifier, Bool, [UInt8]) throws -> Void
    ) throws {
        var seen: Set<ASN1ObjectIdentifier> = []
        try DER.sequence(node, identifier: .sequence) { extensions in
            var count = 0
            while let extensionNode = extensions.next() {
                count += 1
                try DER.sequence(extensionNode, identifier: .sequence) { fields in
                    guard let oidNode = fields.next(), var valueNode = fields.next() else {
                        throw WardenError.badInput("An extension lacks its identifier or value (RFC 5280 §4.1).")
                    }
                    let oid = try ASN1ObjectIdentifier(derEncoded: oidNode)
                    var critical = false
                    if valueNode.identifier == .boolean {
                        critical = try Bool(derEncoded: valueNode)
                        guard critical else {
                            throw WardenError.badInput("Extension \(oid) encodes the default critical=FALSE (X.690 §11.5).")
                        }
                        guard let next = fields.next() else {
                            throw WardenError.badInput("Extension \(oid) lacks its value.")
                        }
                        valueNode = next
                    }
                    guard seen.insert(oid).inserted else {
                        throw WardenError.badInput("Extension \(oid) appears twice (RFC 5280 §4.2).")
                    }
                    try handle(oid, critical, Array(try ASN1OctetString(derEncoded: valueNode).bytes))
                }
            }
            guard count > 0 else {
                throw WardenError.badInput("An Extensions list is empty (RFC 5280 §4.1).")
            }
        }
    }

    // MARK: - Algorithms

    /// The DER AlgorithmIdentifier for a signature algorithm: ECDSA and Ed25519 without parameters
    /// (RFC 5758 §3.2, RFC 8410 §3), RSA with NULL parameters (RFC 4055 §5).
    static func algorithmIdentifierDER(for algorithm: Certificate.SignatureAlgorithm) throws -> [UInt8] {
        let (oid, nullParameters): (ASN1ObjectIdentifier, Bool)
        switch algorithm {
        case .ecdsaWithSHA256: (oid, nullParameters) = (OID.ecdsaWithSHA256, false)
        case .ecdsaWithSHA384: (oid, nullParameters) = (OID.ecdsaWithSHA384, false)
        case .ecdsaWithSHA512: (oid, nullParameters) = (OID.ecdsaWithSHA512, false)
        case .ed25519: (oid, nullParameters) = (OID.ed25519, false)
        case .sha256WithRSAEncryption: (oid, nullParameters) = (OID.sha256WithRSAEncryption, true)
        case .sha384WithRSAEncryption: (oid, nullParameters) = (OID.sha384WithRSAEncryption, true)
        case .sha512WithRSAEncryption: (oid, nullParameters) = (OID.sha512WithRSAEncryption, true)
        default: throw WardenError.badInput("The signature algorithm \(algorithm) is not supported for CRLs.")
        }
        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(oid)
            if nullParameters { try coder.serialize(ASN1Null()) }
        }
        return serializer.serializedBytes
    }

    private static func signatureAlgorithm(fromDER node: ASN1Node) throws -> Certificate.SignatureAlgorithm {
        let (oid, hasParameters): (ASN1ObjectIdentifier, Bool) = try DER.sequence(node, identifier: .sequence) { fields in
            guard let oidNode = fields.next() else {
                throw WardenError.badInput("The CRL signature AlgorithmIdentifier is empty.")
            }
            let oid = try ASN1ObjectIdentifier(derEncoded: oidNode)
            var hasParameters = false
            if let parameters = fields.next() {
                _ = try ASN1Null(derEncoded: parameters)
                hasParameters = true
            }
            return (oid, hasParameters)
        }
        let algorithm: Certificate.SignatureAlgorithm
        switch oid {
        case OID.ecdsaWithSHA256: algorithm = .ecdsaWithSHA256
        case OID.ecdsaWithSHA384: algorithm = .ecdsaWithSHA384
        case OID.ecdsaWithSHA512: algorithm = .ecdsaWithSHA512
        case OID.ed25519: algorithm = .ed25519
        case OID.sha256WithRSAEncryption: algorithm = .sha256WithRSAEncryption
        case OID.sha384WithRSAEncryption: algorithm = .sha384WithRSAEncryption
        case OID.sha512WithRSAEncryption: algorithm = .sha512WithRSAEncryption
        default: throw WardenError.badInput("The CRL signature algorithm \(oid) is not supported.")
        }
        let isRSA = [OID.sha256WithRSAEncryption, OID.sha384WithRSAEncryption, OID.sha512WithRSAEncryption].contains(oid)
        guard hasParameters == isRSA else {
            throw WardenError.badInput("The CRL signature algorithm \(oid) has wrong parameters (RFC 5758 §3.2, RFC 4055 §5).")
        }
        return algorithm
    }

    // MARK: - Names, times and serials

    /// The exact DER of a certificate's subject, taken from its TBSCertificate (RFC 5280 §4.1.2.6), so the CRL
    /// issuer matches byte for byte even if the name is not in a canonical form.
    static func subjectDER(of certificate: Certificate) throws -> [UInt8] {
        do {
            let node = try DER.parse(certificate.tbsCertificateBytes)
            return try DER.sequence(node, identifier: .sequence) { fields in
                var field = fields.next()
                if let node = field, node.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) {
                    field = fields.next()  // version
                }
                // serialNumber, signature, issuer, validity, subject
                for _ in 0..<4 { field = fields.next() }
                guard let subject = field, subject.identifier == .sequence else {
                    throw WardenError.badInput("The issuer certificate has no subject.")
                }
                while fields.next() != nil {}
                return Array(subject.encodedBytes)
            }
        } catch let error as WardenError {
            throw error
        } catch {
            throw WardenError.badInput("The issuer certificate's TBSCertificate does not parse: \(error).")
        }
    }

    private static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// Time ::= CHOICE { utcTime, generalTime }: UTCTime for 1950-2049, GeneralizedTime from 2050, no fractional
    /// seconds (RFC 5280 §5.1.2.4, §4.1.2.5).
    static func serializeTime(_ date: Date, into coder: inout DER.Serializer) throws {
        let whole = Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
        let c = utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: whole)
        guard let year = c.year, let month = c.month, let day = c.day, let hour = c.hour, let minute = c.minute,
            let second = c.second
        else {
            throw WardenError.internal("Cannot split \(date) into calendar fields.")
        }
        switch year {
        case 1950...2049:
            try coder.serialize(
                UTCTime(year: year, month: month, day: day, hours: hour, minutes: minute, seconds: second)
            )
        case 2050...9999:
            try coder.serialize(
                GeneralizedTime(
                    year: year,
                    month: month,
                    day: day,
                    hours: hour,
                    minutes: minute,
                    seconds: second,
                    fractionalSeconds: 0
                )
            )
        default:
            throw WardenError.badInput("The date \(date) cannot be encoded in a CRL (RFC 5280 §5.1.2.4).")
        }
    }

    private static func parseTime(_ node: ASN1Node, field: String) throws -> Date {
        var c = DateComponents()
        switch node.identifier {
        case .utcTime:
            let t = try UTCTime(derEncoded: node)
            (c.year, c.month, c.day, c.hour, c.minute, c.second) = (t.year, t.month, t.day, t.hours, t.minutes, t.seconds)
        case .generalizedTime:
            let t = try GeneralizedTime(derEncoded: node)
            guard t.fractionalSeconds == 0 else {
                throw WardenError.badInput("The CRL \(field) has fractional seconds (RFC 5280 §5.1.2.4).")
            }
            (c.year, c.month, c.day, c.hour, c.minute, c.second) = (t.year, t.month, t.day, t.hours, t.minutes, t.seconds)
        default:
            throw WardenError.badInput("The CRL \(field) is a \(node.identifier), not a UTCTime or GeneralizedTime.")
        }
        guard let date = utc.date(from: c) else {
            throw WardenError.badInput("The CRL \(field) is not a valid date.")
        }
        return date
    }

    /// A serial number without leading zero bytes (the unsigned magnitude, as in `Certificate.SerialNumber.bytes`).
    static func normalizedSerial(_ bytes: [UInt8]) -> [UInt8] {
        Array(bytes.drop { $0 == 0 })
    }

    /// Numeric order of normalized serial numbers.
    static func serialLess(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count != b.count ? a.count < b.count : a.lexicographicallyPrecedes(b)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.isEmpty ? "00" : bytes.map { String(format: "%02X", $0) }.joined()
    }

    /// Object identifiers of RFC 5280 §4.2.1.1, §5.2, §5.3, RFC 5758 §3.2, RFC 8410 §3 and RFC 4055 §5.
    enum OID {
        static let authorityKeyIdentifier: ASN1ObjectIdentifier = [2, 5, 29, 35]
        static let crlNumber: ASN1ObjectIdentifier = [2, 5, 29, 20]
        static let reasonCode: ASN1ObjectIdentifier = [2, 5, 29, 21]
        static let ecdsaWithSHA256: ASN1ObjectIdentifier = [1, 2, 840, 10_045, 4, 3, 2]
        static let ecdsaWithSHA384: ASN1ObjectIdentifier = [1, 2, 840, 10_045, 4, 3, 3]
        static let ecdsaWithSHA512: ASN1ObjectIdentifier = [1, 2, 840, 10_045, 4, 3, 4]
        static let ed25519: ASN1ObjectIdentifier = [1, 3, 101, 112]
        static let sha256WithRSAEncryption: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 1, 11]
        static let sha384WithRSAEncryption: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 1, 12]
        static let sha512WithRSAEncryption: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 1, 13]
    }
}

/// Writes one Extension (RFC 5280 §4.1) with critical = FALSE left to its DEFAULT, the value built by `value`.
private func serializeExtension(
    _ oid: ASN1ObjectIdentifier,
    into coder: inout DER.Serializer,
    value build: (inout DER.Serializer) throws -> Void
) throws {
    var value = DER.Serializer()
    try build(&value)
    try coder.appendConstructedNode(identifier: .sequence) { coder in
        try coder.serialize(oid)
        try coder.serialize(ASN1OctetString(contentBytes: value.serializedBytes[...]))
    }
}
