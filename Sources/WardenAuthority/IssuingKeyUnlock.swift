import Dispatch
import Foundation
import Synchronization
import WardenCore
import WardenPKI

/// Loads the issuing CA of a home on a background thread: first its certificates and profile (fast), then the issuing
/// key, whose decryption is deliberately slow (PBKDF2, ``EncryptedPKCS8/defaultIterations``). A batch starts it before
/// anything else and collects the results only when it needs them, so that the key derivation overlaps the batch
/// file parsing and the CSR checks.
final class IssuingKeyUnlock: Sendable {
    private let locked = Mutex<Result<CertificateAuthority.Locked, any Error>?>(nil)
    private let unlocked = Mutex<Result<CertificateAuthority, any Error>?>(nil)
    private let lockedReady = DispatchSemaphore(value: 0)
    private let unlockedReady = DispatchSemaphore(value: 0)
    private let finished = Atomic<Bool>(false)

    /// Starts loading the CA of `layout` and decrypting its key with `passphrase`.
    init(layout: CALayout, passphrase: [UInt8]) {
        Thread { [self] in
            let loaded = Result { try CertificateAuthority.Locked.load(layout: layout) }
            locked.withLock { $0 = loaded }
            lockedReady.signal()
            let result: Result<CertificateAuthority, any Error> = loaded.flatMap { locked in
                Result { try locked.unlock(passphrase: passphrase) }
            }
            unlocked.withLock { $0 = result }
            finished.store(true, ordering: .releasing)
            unlockedReady.signal()
        }.start()
    }

    /// Whether the key is ready (or failed to unlock): cheap, for polling between rows.
    var isFinished: Bool { finished.load(ordering: .acquiring) }

    /// The CA without its key; waits for the certificates and profile to be read.
    /// - Throws: `.notFound` if there is no CA, `.badInput` for corrupted files.
    func lockedAuthority() throws -> CertificateAuthority.Locked {
        lockedReady.wait()
        lockedReady.signal()
        return try locked.withLock { $0! }.get()
    }

    /// The unlocked CA; waits for the key derivation.
    /// - Throws: the errors of ``lockedAuthority()``, `.wrongPassphrase`, `.badInput` for a corrupted key file.
    func authority() throws -> CertificateAuthority {
        unlockedReady.wait()
        unlockedReady.signal()
        return try unlocked.withLock { $0! }.get()
    }
}
