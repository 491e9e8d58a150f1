import WardenCore

extension AgentState {
    /// `DIR/device.crt.pem`: the device certificate (leaf first, as `warden device enroll --out` writes it).
    public var certificatePath: String { directory + "/device.crt.pem" }
    /// `DIR/device.key`: the device key written by `warden-agent init`.
    public var keyPath: String { directory + "/device.key" }
    /// `DIR/broker-ca.pem`: the verified config's trust bundle, the CA file for the broker's certificate.
    public var brokerTrustPath: String { directory + "/broker-ca.pem" }

    /// Writes the trust bundle of a verified config to ``brokerTrustPath`` (staged, then renamed) and returns the path.
    /// - Throws: `.badInput` if the bundle holds no certificate, `.storage` if it cannot be written.
    public func installBrokerTrust(_ bundle: String) throws -> String {
        guard bundle.contains("-----BEGIN CERTIFICATE-----") else {
            throw WardenError.badInput("the config's trust bundle holds no certificate")
        }
        try SecureFile.writeAtomically(Array(bundle.utf8), to: brokerTrustPath, mode: 0o644)
        return brokerTrustPath
    }
}
