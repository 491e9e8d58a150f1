import Foundation
import WardenPKI

extension ClientCertificateValidator {
    /// The registry check for an operator certificate (CN `warden-op-…`) whose chain already verified: the serial must
    /// be recorded for this operator, not revoked, and the role in the certificate must be the role recorded.
    func evaluateOperator(commonName: String, serial: String, leaf: [UInt8]) -> Outcome {
        guard let identity = OperatorNaming.identity(of: leaf), identity.commonName == commonName, let role = identity.role else {
            return .rejected(.unknownCertificate, "operator certificate \(serial) carries no single role")
        }
        do {
            guard let record = try registry.operatorCertificate(serial: serial), record.name == commonName else {
                return .rejected(.unknownCertificate, "certificate \(serial) was never issued to operator '\(commonName)'")
            }
            guard record.revokedAt == nil else {
                return .rejected(.certificateRevoked, "certificate \(serial) of operator '\(commonName)' is revoked")
            }
            guard record.role == role else {
                return .rejected(.unknownCertificate, "operator certificate \(serial) carries a role that was not issued")
            }
            return .accepted(PeerIdentity(deviceID: commonName, serial: serial, role: role))
        } catch {
            return .rejected(.registryError, "the registry could not be read")
        }
    }
}
