import Foundation

/// Independent oracles: the openssl CLI and pkilint.
public enum Oracle {
    /// Runs `openssl arguments…`.
    public static func openssl(_ arguments: [String], stdin: [UInt8]? = nil) throws -> WardenProcess.Result {
        try WardenProcess.launch("openssl", arguments, stdin: stdin)
    }

    /// pkilint findings at WARNING or above for a certificate; empty means clean.
    /// pkilint exits with the number of findings and prints nothing when clean; a file it cannot load exits
    /// non-zero with a message, which is returned as a finding so that "could not parse" never passes.
    public static func pkilintCertificate(_ path: String) throws -> [String] {
        try findings(try WardenProcess.launch("lint_pkix_cert", ["lint", "-s", "WARNING", path]))
    }

    /// pkilint findings at WARNING or above for a CRL (`lint_crl -t CRL -p PKIX`).
    public static func pkilintCRL(_ path: String) throws -> [String] {
        try findings(try WardenProcess.launch("lint_crl", ["lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", path]))
    }

    static func findings(_ result: WardenProcess.Result) throws -> [String] {
        let text = (result.stdout + result.stderr).trimmingCharacters(in: .whitespacesAndNewlines)
        if result.status == 0 && text.isEmpty { return [] }
        return [text.isEmpty ? "pkilint exited \(result.status)" : text]
    }
}
