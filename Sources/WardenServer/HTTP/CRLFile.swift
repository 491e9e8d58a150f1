import Foundation
import Synchronization
import WardenCore
import WardenPKI

/// The current CRL (`ca/crl.pem`), re-read only when the file changes (inode, size or mtime: revocations replace
/// it by rename), so every request sees the CRL of the latest revocation without reading it each time.
final class CRLFile: Sendable {
    /// What was read from one version of the file.
    struct Snapshot: Sendable {
        /// The PEM bytes as stored.
        let pem: [UInt8]
        /// The parsed CRL.
        let crl: CertificateRevocationList
        /// Increases with every new version seen, so caches keyed on it expire with the file.
        let generation: UInt64
    }

    struct Stamp: Equatable {
        var inode: UInt64
        var size: Int64
        var seconds: Int
        var nanoseconds: Int
    }

    /// The file.
    let path: String
    private let state = Mutex<(stamp: Stamp?, snapshot: Snapshot?, generation: UInt64)>((nil, nil, 0))

    init(path: String) { self.path = path }

    /// The current CRL, or nil if there is none or it does not parse (the last good one is kept in that case:
    /// a half-written or corrupt file never turns revocation checking off).
    func current() -> Snapshot? {
        var info = stat()
        guard stat(path, &info) == 0 else { return state.withLock { $0.snapshot } }
        let stamp = Stamp(
            inode: UInt64(info.st_ino), size: Int64(info.st_size), seconds: Int(info.st_mtim.tv_sec),
            nanoseconds: Int(info.st_mtim.tv_nsec))
        if let snapshot = state.withLock({ $0.stamp == stamp ? $0.snapshot : nil }) { return snapshot }
        guard let bytes = try? SecureFile.read(path, limit: 16 * 1024 * 1024, what: "CRL"),
            let text = String(validating: bytes, as: UTF8.self),
            let crl = try? CertificateRevocationList(pemEncoded: text)
        else { return state.withLock { $0.snapshot } }
        return state.withLock { state in
            state.generation += 1
            let snapshot = Snapshot(pem: bytes, crl: crl, generation: state.generation)
            state.stamp = stamp
            state.snapshot = snapshot
            return snapshot
        }
    }
}
