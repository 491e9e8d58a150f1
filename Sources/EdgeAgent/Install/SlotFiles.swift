import Foundation
import WardenCore
import WardenPKI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The POSIX file operations of the slot store: streamed hashing and copying (an image never sits in memory),
/// fsync of files and directories, removal, and the store's lock.
enum SlotFiles {
    /// Read/write chunk size.
    static let chunk = 1 << 20

    static func errorText() -> String { String(cString: strerror(errno)) }

    /// Opens `path` read-only; nil with `errno` set on failure.
    static func openForReading(_ path: String) -> Int32? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        return fd >= 0 ? fd : nil
    }

    /// Size of a regular file open as `fd`; nil if it is not a regular file.
    static func regularFileSize(_ fd: Int32) -> Int? {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(info.st_size)
    }

    /// SHA-256 and byte count of everything in `fd` from offset 0, reading at most `limit + 1` bytes (so an
    /// over-long file is detected without reading all of it). Calls `sink` with every chunk read.
    static func hash(_ fd: Int32, limit: Int, what: String, sink: (UnsafeRawBufferPointer) throws -> Void = { _ in }) throws -> (sha256: [UInt8], count: Int) {
        var hasher = IncrementalSHA256()
        var buffer = [UInt8](repeating: 0, count: chunk)
        var offset = 0
        while offset <= limit {
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(offset)) }
            if got < 0 {
                if errno == EINTR { continue }
                throw WardenError.storage("cannot read \(what): \(errorText())")
            }
            if got == 0 { break }
            try buffer.withUnsafeBytes { raw in
                let slice = UnsafeRawBufferPointer(rebasing: raw[0..<got])
                hasher.update(slice)
                try sink(slice)
            }
            offset += got
        }
        return (hasher.finalize(), offset)
    }

    /// Why the file at `path` does not match `manifest` (length, SHA-256), or nil if it does.
    static func mismatch(of path: String, against manifest: SlotManifest) -> String? {
        guard let fd = openForReading(path) else { return "'\(path)' cannot be opened: \(errorText())" }
        defer { close(fd) }
        guard let size = regularFileSize(fd) else { return "'\(path)' is not a regular file" }
        guard size == manifest.length else { return "'\(path)' is \(size) bytes, the manifest says \(manifest.length)" }
        guard let result = try? hash(fd, limit: manifest.length, what: "'\(path)'") else { return "'\(path)' cannot be read" }
        guard result.count == manifest.length else { return "'\(path)' is \(result.count) bytes, the manifest says \(manifest.length)" }
        guard Digest.hex(result.sha256) == manifest.sha256 else { return "'\(path)' does not match the manifest's SHA-256" }
        return nil
    }

    /// Writes all of `bytes` to `fd`.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: String) throws {
        var written = 0
        while written < bytes.count {
            let result = write(fd, bytes.baseAddress!.advanced(by: written), bytes.count - written)
            if result < 0 {
                if errno == EINTR { continue }
                throw WardenError.storage("cannot write \(what): \(errorText())")
            }
            written += result
        }
    }

    /// fsyncs the directory at `path`.
    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw WardenError.storage("cannot open directory '\(path)': \(errorText())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw WardenError.storage("cannot fsync directory '\(path)': \(errorText())") }
    }

    /// Removes the file at `path`; a missing file is fine.
    static func remove(_ path: String) throws {
        guard unlink(path) == 0 || errno == ENOENT else {
            throw WardenError.storage("cannot remove '\(path)': \(errorText())")
        }
    }

    /// Removes crash leftovers in `directory`: `image.tmp` and `SecureFile`'s staging files (`.NAME.RANDOM.tmp`).
    /// Returns the removed names.
    static func removeLeftovers(in directory: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var removed: [String] = []
        for name in names where name == "image.tmp" || (name.hasPrefix(".") && name.hasSuffix(".tmp")) {
            if unlink(directory + "/" + name) == 0 { removed.append(name) }
        }
        return removed.sorted()
    }

    /// Runs `body` holding an exclusive `flock` on `path` (created if needed). The lock dies with the process, so a
    /// `kill -9` never leaves the store locked.
    /// - Throws: ``WardenError`` `.storage` if another process holds it (after waiting up to `wait` seconds).
    static func withLock<T>(_ path: String, wait: Double = 10, _ body: () throws -> T) throws -> T {
        try FileLock.withLock(
            path, wait: .milliseconds(Int64(wait * 1000)), busy: "the slot store is locked by another process ('\(path)')", body)
    }
}
