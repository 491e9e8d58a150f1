import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WardenCore
import WardenPKI

/// The device's own key material on disk: `device.key` (P-256, PKCS#8 PEM, mode 0600) and `device.csr`.
///
/// `warden-agent init --id ID --out DIR` creates them; the operator then runs `warden device enroll ID --csr
/// DIR/device.csr`. The private key never leaves the device.
public struct AgentIdentity: Sendable {
    /// The directory holding the identity files.
    public let directory: String

    /// The identity files in `directory`.
    public init(directory: String) { self.directory = directory }

    /// `DIR/device.key`.
    public var keyPath: String { directory + "/device.key" }
    /// `DIR/device.csr`.
    public var csrPath: String { directory + "/device.csr" }

    /// Generates a fresh key and CSR for `id` and writes both.
    ///
    /// The id is checked first (DeviceID rules), and nothing is written if it is refused. Existing files are never
    /// overwritten: a device that already has a key keeps it. Both files are staged (written and fsynced next to their
    /// final names) before either is renamed into place, and a failure removes whatever was staged or committed.
    /// - Throws: `.badInput`/`.policyViolation` for a bad id, `.alreadyExists` if either file exists, `.storage`.
    /// - Returns: the generated request (its PEM texts and the public key fingerprint).
    @discardableResult
    public func initialize(id text: String) throws -> DeviceIdentityRequest {
        let id = try DeviceID(text)
        for path in [keyPath, csrPath] where SecureFile.mode(of: path) != nil {
            throw WardenError.alreadyExists("'\(path)' already exists; refusing to overwrite a device identity")
        }
        let request = try CSRBuilder.generate(for: id)
        try SecureFile.ensureDirectory(directory)
        let stagedKey = try SecureFile.stage(Array(request.privateKeyPEM.utf8), besides: keyPath, mode: 0o600)
        let stagedCSR: String
        do {
            stagedCSR = try SecureFile.stage(Array(request.csrPEM.utf8), besides: csrPath, mode: 0o644)
        } catch {
            SecureFile.discard(staged: stagedKey)
            throw error
        }
        // link(2) refuses an existing name, so a file that appeared since the check above is never replaced.
        guard link(stagedKey, keyPath) == 0 else {
            let reason = String(cString: strerror(errno))
            SecureFile.discard(staged: stagedKey)
            SecureFile.discard(staged: stagedCSR)
            throw errno == EEXIST
                ? WardenError.alreadyExists("'\(keyPath)' already exists; refusing to overwrite a device identity")
                : WardenError.storage("cannot write '\(keyPath)': \(reason)")
        }
        SecureFile.discard(staged: stagedKey)
        guard link(stagedCSR, csrPath) == 0 else {
            let reason = String(cString: strerror(errno))
            let exists = errno == EEXIST
            SecureFile.discard(staged: stagedCSR)
            unlink(keyPath)
            throw exists
                ? WardenError.alreadyExists("'\(csrPath)' already exists; refusing to overwrite a device identity")
                : WardenError.storage("cannot write '\(csrPath)': \(reason)")
        }
        SecureFile.discard(staged: stagedCSR)
        Self.syncDirectory(directory)
        return request
    }

    /// fsyncs a directory so the new names survive a power cut.
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }
}
