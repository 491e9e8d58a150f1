import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import WardenCore

/// The HTTPS listener's TLS setup: TLS 1.2 or newer, the server's own chain and key, client certificates requested
/// but optional (an enrolling device has none yet), and every presented chain judged by
/// ``ClientCertificateValidator`` instead of BoringSSL, so the handshake applies exactly Warden's chain, CRL and
/// registry checks.
enum ServerTLS {
    /// Parses the server's PEM chain and unencrypted PKCS#8 key.
    static func identity(chainPEM: String, keyPEM: String) throws -> (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey) {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(Array(chainPEM.utf8))
        } catch {
            throw WardenError.badInput("the server certificate chain is not valid PEM: \(error)")
        }
        guard !chain.isEmpty else { throw WardenError.badInput("the server certificate chain holds no certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)
        } catch {
            throw WardenError.badInput("the server private key is not an unencrypted PEM key: \(error)")
        }
        return (chain, key)
    }

    /// The channel configuration for Hummingbird's TLS server.
    static func configuration(
        chain: [NIOSSLCertificate], key: NIOSSLPrivateKey, trustRoots: [NIOSSLCertificate],
        validator: ClientCertificateValidator, logger: Logger
    ) -> TLSChannelConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        // Request a certificate; do not require one. Whatever is presented must pass the callback below.
        tls.certificateVerification = .optionalVerification
        // Only Warden's root: never the system store. The callback overrides BoringSSL's verification anyway.
        tls.trustRoots = .certificates(trustRoots)
        tls.sendCANameList = true
        return TLSChannelConfiguration(tlsConfiguration: tls) { certificates in
            let chainDER: [[UInt8]]
            do {
                chainDER = try certificates.map { try $0.toDERBytes() }
            } catch {
                logger.notice("TLS client certificate refused: unreadable certificate")
                return .failed
            }
            switch await validator.validate(chainDER: chainDER) {
            case .accepted:
                return .certificateVerified
            case .rejected(let reason, let message):
                logger.notice("TLS client certificate refused", metadata: ["reason": "\(reason.rawValue)", "detail": "\(message)"])
                return .failed
            }
        }
    }
}
