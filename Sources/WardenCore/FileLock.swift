import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive advisory lock on a file (`flock`), held until ``release()`` or deinit. The kernel drops it when the
/// process dies, so a `kill -9` never leaves anything locked.
public final class FileLock {
    private var descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit { release() }

    /// Takes the lock on `path` (created 0600 if needed), waiting up to `wait` for another holder (nil: as long as it
    /// takes).
    /// - Throws: `WardenError.storage` if `path` cannot be opened, or with `busy` if the wait ran out.
    public static func acquire(_ path: String, wait: Duration?, busy: @autoclosure () -> String) throws -> FileLock {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WardenError.storage("cannot open the lock '\(path)': \(String(cString: strerror(errno)))") }
        let deadline = wait.map { ContinuousClock.now + $0 }
        while flock(fd, deadline == nil ? LOCK_EX : LOCK_EX | LOCK_NB) != 0 {
            let error = errno
            guard error == EINTR || error == EWOULDBLOCK else {
                close(fd)
                throw WardenError.storage("cannot lock '\(path)': \(String(cString: strerror(error)))")
            }
            if let deadline, error == EWOULDBLOCK {
                guard ContinuousClock.now < deadline else {
                    close(fd)
                    throw WardenError.storage(busy())
                }
                usleep(20_000)
            }
        }
        return FileLock(descriptor: fd)
    }

    /// Runs `body` holding the lock on `path` (see ``acquire(_:wait:busy:)``).
    public static func withLock<T>(_ path: String, wait: Duration?, busy: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
        let lock = try acquire(path, wait: wait, busy: busy())
        defer { lock.release() }
        return try body()
    }

    /// Releases the lock (once; later calls do nothing).
    public func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }
}
