import Foundation

/// Independent oracles: the openssl CLI and pkilint.
public enum Oracle {
    /// Runs `openssl arguments…`.
    public static func openssl(_ arguments: [String], stdin: [UInt8]? = nil) throws -> WardenProcess.Result {
        try WardenProcess.launch("openssl", arguments, stdin: stdin)
    }

    /// pkilint findings at WARNING or above for a certificate, as sentences; empty means clean. A file pkilint
    /// cannot load throws, so "could not parse" never passes as "clean".
    public static func pkilintCertificate(_ path: String) throws -> [String] {
        try OpenSSLOracle.pkilintCert(path).map(\.description)
    }

    /// pkilint findings at WARNING or above for a CRL (`lint_crl -t CRL -p PKIX`).
    public static func pkilintCRL(_ path: String) throws -> [String] {
        try OpenSSLOracle.pkilintCRL(path).map(\.description)
    }
}
