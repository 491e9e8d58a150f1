/// Where a Warden home keeps its CA material. Paths are fixed so that operators and scripts can find them.
///
/// ```
/// $WARDEN_HOME/ca/root.crt.pem        root certificate (public)
/// $WARDEN_HOME/ca/root.key.pem        root key, encrypted PKCS#8, 0600 — may be moved offline
/// $WARDEN_HOME/ca/issuing.crt.pem     issuing CA certificate (public)
/// $WARDEN_HOME/ca/issuing.key.pem     issuing key, encrypted PKCS#8, 0600 — all day-to-day signing
/// $WARDEN_HOME/ca/crl.pem             the latest CRL
/// $WARDEN_HOME/profiles/device.json   the device certificate profile
/// ```
public struct CALayout: Sendable {
    /// The Warden home directory.
    public let home: String

    /// Creates the layout for `home`.
    public init(home: String) { self.home = home }

    /// `$home/ca`.
    public var caDirectory: String { home + "/ca" }
    /// Root certificate PEM.
    public var rootCertificate: String { caDirectory + "/root.crt.pem" }
    /// Encrypted root key.
    public var rootKey: String { caDirectory + "/root.key.pem" }
    /// Issuing CA certificate PEM.
    public var issuingCertificate: String { caDirectory + "/issuing.crt.pem" }
    /// Encrypted issuing key.
    public var issuingKey: String { caDirectory + "/issuing.key.pem" }
    /// Latest CRL, PEM.
    public var crl: String { caDirectory + "/crl.pem" }
    /// Profiles directory.
    public var profilesDirectory: String { home + "/profiles" }
    /// The device profile.
    public var deviceProfile: String { profilesDirectory + "/device.json" }
}
