import Foundation
import SwiftASN1
import WardenCore
import X509

/// The outcome of validating a DER certificate chain, with what a server needs to look the leaf up in its registry.
public struct LeafVerification: Sendable, Equatable {
    /// The chain validation result, exactly as `warden cert verify` would report it.
    public let result: ChainVerificationResult
    /// The leaf's subject common name (the device id for device certificates), if it has exactly one.
    public let commonName: String?
    /// The leaf's serial number, lowercase hex, or nil if the leaf does not parse.
    public let serial: String?

    /// Whether the chain is valid.
    public var isValid: Bool {
        if case .valid = result { return true }
        return false
    }
}

extension ChainVerifier {
    /// Validates a DER leaf (as presented in a TLS handshake) with the same policies as
    /// ``verify(leafPEM:leafSource:at:purpose:hostname:)``; `chainDER` holds the further certificates the peer
    /// presented, used as untrusted intermediates only. Never throws: unparsable input is an `.invalid` result.
    public func verify(leafDER: [UInt8], chainDER: [[UInt8]], at time: Date, purpose: CertificatePurpose?) async -> LeafVerification {
        let leaf: Certificate
        do {
            leaf = try Certificate(derEncoded: leafDER)
        } catch {
            return LeafVerification(result: .invalid(["the presented certificate is not a valid X.509 certificate"]), commonName: nil, serial: nil)
        }
        // A peer's extra certificates that do not parse are ignored: they can only be intermediates, never trusted.
        let presented = chainDER.compactMap { try? Certificate(derEncoded: $0) }
        let result = await verify(leaf: leaf, presentedChain: presented, at: time, purpose: purpose, hostname: nil)
        return LeafVerification(result: result, commonName: Self.singleCommonName(of: leaf), serial: Digest.hex(leaf.serialNumber.bytes))
    }

    /// The one CN of a certificate's subject; nil when there is none or more than one.
    static func singleCommonName(of certificate: Certificate) -> String? {
        var names: [String] = []
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                guard let text = String(attribute.value) else { return nil }
                names.append(text)
            }
        }
        return names.count == 1 ? names[0] : nil
    }
}
