import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `read(2)`, named so that `SecureFile.read` does not shadow it.
private func posixRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

/// Bounded reads and crash-safe writes of files.
///
/// Every input file goes through ``read(_:limit:what:)`` so that a 10 MB garbage file is refused with a clear
/// message instead of being parsed, and every output goes through ``writeAtomically(_:to:mode:)`` so that a
/// crash or an error never leaves a half-written file where the user expects a complete one.
public enum SecureFile {
    /// The default upper bound for small security documents (PEM, CSR, profile JSON): 256 KiB.
    public static let defaultLimit = 256 * 1024

    /// Reads at most `limit` bytes of the file at `path`.
    /// - Parameter what: how the error names the input, e.g. "CSR file".
    /// - Throws: ``WardenError`` `.notFound` if missing, `.badInput` if too large or unreadable.
    public static func read(_ path: String, limit: Int = defaultLimit, what: String = "file") throws -> [UInt8] {
        // Plain POSIX calls: batch enrollment reads thousands of small files, and FileManager + FileHandle cost
        // several times the read itself.
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw WardenError.notFound("\(what) '\(path)' does not exist") }
            throw WardenError.badInput("\(what) '\(path)' cannot be opened for reading")
        }
        defer { _ = close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw WardenError.badInput("\(what) '\(path)' cannot be opened for reading")
        }
        guard (status.st_mode & S_IFMT) != S_IFDIR else {
            throw WardenError.badInput("\(what) '\(path)' is a directory, not a file")
        }
        // Read up to limit + 1 bytes, so that a file over the limit is detected without reading all of it.
        var bytes = [UInt8](repeating: 0, count: min(limit, max(Int(status.st_size), 4096)) + 1)
        var count = 0
        while true {
            if count == bytes.count {
                guard bytes.count <= limit else { break }
                bytes.append(contentsOf: repeatElement(0, count: min(bytes.count, limit + 1 - bytes.count)))
            }
            let got = bytes.withUnsafeMutableBytes { buffer in
                posixRead(descriptor, buffer.baseAddress! + count, buffer.count - count)
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw WardenError.badInput("\(what) '\(path)' cannot be read: \(String(cString: strerror(errno)))")
            }
            if got == 0 { break }
            count += got
        }
        guard count <= limit else {
            throw WardenError.badInput("\(what) '\(path)' is larger than the \(limit / 1024) KiB limit")
        }
        bytes.removeSubrange(count...)
        return bytes
    }

    /// Reads a text file (UTF-8) with the same bounds as ``read(_:limit:what:)``.
    public static func readText(_ path: String, limit: Int = defaultLimit, what: String = "file") throws -> String {
        let bytes = try read(path, limit: limit, what: what)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw WardenError.badInput("\(what) '\(path)' is not UTF-8 text")
        }
        return text
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory is written with `mode`,
    /// fsynced, renamed over `path`, and the directory is fsynced. Readers see the old file or the new one.
    /// - Throws: ``WardenError`` `.storage`, and the temporary file is removed.
    /// - Parameter durable: fsync the file and its directory (default). Pass false only for convenience copies
    ///   of data that is durable elsewhere; the write is still atomic.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644, durable: Bool = true) throws {
        let temporary = try stage(bytes, besides: path, mode: mode, durable: durable)
        try commit(staged: temporary, to: path, durable: durable)
    }

    /// Writes `bytes` to a new temporary file next to `path` (same directory, so a later rename is atomic)
    /// and returns its path. Pair with ``commit(staged:to:)`` or ``discard(staged:)``.
    public static func stage(_ bytes: [UInt8], besides path: String, mode: mode_t = 0o644, durable: Bool = true) throws -> String {
        let directory = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/.\(base).\(UInt64.random(in: 0...UInt64.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw WardenError.storage("cannot create '\(path)': \(String(cString: strerror(errno)))")
        }
        var ok = fchmod(fd, mode) == 0
        var offset = 0
        while ok && offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                write(fd, raw.baseAddress!.advanced(by: offset), raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                ok = false
            } else {
                offset += written
            }
        }
        let savedErrno = errno
        if ok && durable { ok = fsync(fd) == 0 }
        close(fd)
        guard ok else {
            unlink(temporary)
            throw WardenError.storage("cannot write '\(path)': \(String(cString: strerror(savedErrno)))")
        }
        return temporary
    }

    /// Renames a file from ``stage(_:besides:mode:)`` over `path` and fsyncs the directory.
    public static func commit(staged temporary: String, to path: String, durable: Bool = true) throws {
        guard rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw WardenError.storage("cannot write '\(path)': \(message)")
        }
        guard durable else { return }
        let directory = (path as NSString).deletingLastPathComponent
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Removes a staged file that will not be committed.
    public static func discard(staged temporary: String) {
        unlink(temporary)
    }

    /// Creates `path` (and parents) as a directory with `mode` if it does not exist, and tightens an existing one.
    public static func ensureDirectory(_ path: String, mode: mode_t = 0o700) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: Int(mode)])
        } catch {
            throw WardenError.storage("cannot create directory '\(path)': \(error.localizedDescription)")
        }
        _ = chmod(path, mode)
    }

    /// Owner and group of the file at `path`, or nil if it cannot be inspected.
    public static func owner(of path: String) -> (uid: uid_t, gid: gid_t)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (info.st_uid, info.st_gid)
    }

    /// The permission bits of the file at `path`, or nil if it cannot be inspected.
    public static func mode(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }
}
