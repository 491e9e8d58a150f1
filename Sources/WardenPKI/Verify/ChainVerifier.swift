import Foundation
import SwiftASN1
import WardenCore
@_spi(FixedExpiryValidationTime) import X509

/// What a certificate is being checked for (the extended key usage it must allow).
public enum CertificatePurpose: String, Sendable, CaseIterable {
    /// TLS client authentication (devices, operators).
    case client
    /// TLS server authentication (broker, API).
    case server
}

/// The outcome of a chain validation.
public enum ChainVerificationResult: Sendable, Equatable {
    /// The chain from the leaf to a trusted root, leaf first.
    case valid([CertificateSummary])
    /// Why no valid chain could be built: one sentence per rejected candidate chain, most specific first.
    case invalid([String])
}

/// RFC 5280 §6 path validation with swift-certificates' `Verifier`, plus key usage, extended key usage,
/// revocation (CRLs) and hostname checks. This is the one verification routine used by `warden cert verify`
/// and by Warden's servers when a device connects.
public struct ChainVerifier: Sendable {
    let roots: [Certificate]
    let intermediates: [Certificate]
    let crls: [CertificateRevocationList]

    /// Creates a verifier from PEM (or DER) trust anchors, optional untrusted intermediates and optional CRLs.
    /// - Throws: `.badInput` naming the input that does not parse.
    public init(trustPEM: [UInt8], trustSource: String, untrustedPEM: [UInt8]? = nil, untrustedSource: String = "",
                crlData: [(bytes: [UInt8], source: String)] = []) throws {
        roots = try PEMInput.certificates(trustPEM, what: "trust file '\(trustSource)'")
        intermediates = try untrustedPEM.map { try PEMInput.certificates($0, what: "untrusted file '\(untrustedSource)'") } ?? []
        crls = try crlData.map { data in
            let documents = try PEMInput.documents(data.bytes, labels: ["X509 CRL"], what: "CRL file '\(data.source)'")
            guard documents.count == 1 else {
                throw WardenError.badInput("CRL file '\(data.source)' holds \(documents.count) CRLs; expected one")
            }
            do {
                return try CertificateRevocationList(derEncoded: documents[0])
            } catch let error as WardenError {
                throw WardenError.badInput("CRL file '\(data.source)': \(error.message)")
            }
        }
    }

    /// Validates the first certificate in `leafPEM` (any further certificates in the same file are used as
    /// untrusted intermediates, as a device presents leaf + issuing CA).
    public func verify(
        leafPEM: [UInt8], leafSource: String, at time: Date, purpose: CertificatePurpose?, hostname: String?
    ) async throws -> ChainVerificationResult {
        let presented = try PEMInput.certificates(leafPEM, what: "certificate file '\(leafSource)'")
        guard let leaf = presented.first else {
            throw WardenError.badInput("certificate file '\(leafSource)' holds no certificate")
        }
        return await verify(leaf: leaf, presentedChain: Array(presented.dropFirst()), at: time, purpose: purpose, hostname: hostname)
    }

    /// Validates an already parsed leaf.
    func verify(
        leaf: Certificate, presentedChain: [Certificate], at time: Date, purpose: CertificatePurpose?, hostname: String?
    ) async -> ChainVerificationResult {
        let crls = self.crls
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
            RFC5280Policy(fixedExpiryValidationTime: time)
            UsagePolicy(purpose: purpose)
            if !crls.isEmpty {
                CRLRevocationPolicy(crls: crls, validationTime: time, checkAll: false)
            }
            if let hostname {
                if hostname.contains(":") || hostname.allSatisfy({ $0.isNumber || $0 == "." }) {
                    ServerIdentityPolicy(serverHostname: nil, serverIP: hostname)
                } else {
                    ServerIdentityPolicy(serverHostname: hostname, serverIP: nil)
                }
            }
        }
        let result = await verifier.validate(
            leaf: leaf, intermediates: CertificateStore(intermediates + presentedChain))
        switch result {
        case .validCertificate(let chain):
            return .valid(chain.map { (try? CertificateSummary($0)) }.compactMap { $0 })
        case .couldNotValidate(let failures):
            var reasons = failures.map { $0.policyFailureReason.description }
            if reasons.isEmpty {
                reasons.append(
                    "no chain to a trusted root could be built for '\(leaf.subject)' (unknown issuer, bad signature or an unhandled critical extension)")
            }
            var seen = Set<String>()
            return .invalid(reasons.filter { seen.insert($0).inserted })
        }
    }
}

/// Key usage and extended key usage along the chain (RFC 5280 §4.2.1.3, §4.2.1.12), which
/// swift-certificates' RFC5280Policy deliberately does not police.
struct UsagePolicy: VerifierPolicy {
    let purpose: CertificatePurpose?

    var verifyingCriticalExtensions: [ASN1ObjectIdentifier] { [.X509ExtensionID.extendedKeyUsage] }

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        let leaf = chain.leaf
        do {
            if let usage = try leaf.extensions.keyUsage, !usage.digitalSignature {
                return .failsToMeetPolicy(reason: "certificate '\(leaf.subject)' key usage lacks digitalSignature")
            }
            if let purpose, let eku = try leaf.extensions.extendedKeyUsage {
                let wanted: ExtendedKeyUsage.Usage = purpose == .client ? .clientAuth : .serverAuth
                if !eku.contains(wanted) && !eku.contains(.any) {
                    return .failsToMeetPolicy(reason: "certificate '\(leaf.subject)' is not valid for \(purpose.rawValue) authentication (extended key usage)")
                }
            }
            for issuer in chain.dropFirst() {
                if let usage = try issuer.extensions.keyUsage, !usage.keyCertSign {
                    return .failsToMeetPolicy(reason: "CA certificate '\(issuer.subject)' key usage lacks keyCertSign")
                }
            }
        } catch {
            return .failsToMeetPolicy(reason: "certificate '\(leaf.subject)' has a malformed usage extension")
        }
        return .meetsPolicy
    }
}
