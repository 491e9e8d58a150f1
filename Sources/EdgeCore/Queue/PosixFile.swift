#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// File-scope shims: inside `PosixFile`, the methods `write`, `pwrite`, `pread` shadow the C
// functions, and the module that provides them differs between Linux (Glibc) and Darwin.
private func sysWrite(_ fd: Int32, _ buf: UnsafeRawPointer, _ n: Int) -> Int { write(fd, buf, n) }
private func sysPwrite(_ fd: Int32, _ buf: UnsafeRawPointer, _ n: Int, _ off: off_t) -> Int { pwrite(fd, buf, n, off) }
private func sysPread(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ n: Int, _ off: off_t) -> Int { pread(fd, buf, n, off) }
private func sysRename(_ from: String, _ to: String) -> Int32 { rename(from, to) }
private func sysDataSync(_ fd: Int32) -> Int32 {
    #if os(Linux)
    return fdatasync(fd)
    #else
    return fsync(fd)
    #endif
}

/// Injects I/O failures in tests: called before each write with the file path and byte count;
/// returning an errno makes that write fail with it (for example `EROFS` or `ENOSPC`).
public typealias WriteFaultInjector = @Sendable (_ path: String, _ bytes: Int) -> Int32?

/// Maps an errno of a failed storage call to an ``EdgeError`` naming the path.
func storageError(_ op: String, _ path: String, _ err: Int32) -> EdgeError {
    let text = String(cString: strerror(err))
    switch err {
    case EROFS, ENOSPC, EDQUOT, EFBIG, EACCES, EPERM, ENOTDIR, EISDIR:
        return EdgeError(.storageUnavailable, "\(path): cannot \(op): \(text)")
    default:
        return EdgeError(.io, "\(path): cannot \(op): \(text)")
    }
}

/// A thin owner of a POSIX file descriptor with errors that name the file.
///
/// Not `Sendable`: it belongs to the one ``DurableQueue`` that opened it.
final class PosixFile {
    let path: String
    private(set) var fd: Int32
    let faults: WriteFaultInjector?

    init(path: String, flags: Int32, mode: mode_t = 0o600, faults: WriteFaultInjector? = nil) throws {
        self.path = path
        self.faults = faults
        let fd = open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw storageError("open", path, errno) }
        self.fd = fd
    }

    deinit {
        if fd >= 0 { _ = close(fd) }
    }

    var size: Int {
        var st = stat()
        return fstat(fd, &st) == 0 ? Int(st.st_size) : 0
    }

    /// Writes all bytes at the current end of file.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if let faults, let err = faults(path, bytes.count) { throw storageError("write", path, err) }
        guard let base = bytes.baseAddress else { return }
        var off = 0
        while off < bytes.count {
            let n = sysWrite(fd, base + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw storageError("write", path, errno)
            }
            off += n
        }
    }

    /// Writes at an absolute offset.
    func pwrite(_ bytes: [UInt8], at offset: Int) throws {
        if let faults, let err = faults(path, bytes.count) { throw storageError("write", path, err) }
        try bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = sysPwrite(fd, buf.baseAddress! + off, buf.count - off, off_t(offset + off))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw storageError("write", path, errno)
                }
                off += n
            }
        }
    }

    /// Reads up to `count` bytes at `offset`; fewer at the end of file.
    func pread(count: Int, at offset: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        try out.withUnsafeMutableBytes { buf in
            while got < count {
                let n = sysPread(fd, buf.baseAddress! + got, count - got, off_t(offset + got))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw storageError("read", path, errno)
                }
                if n == 0 { break }
                got += n
            }
        }
        if got < count { out.removeSubrange(got...) }
        return out
    }

    func sync() throws {
        if sysDataSync(fd) != 0 { throw storageError("sync", path, errno) }
    }

    func truncate(to size: Int) throws {
        if ftruncate(fd, off_t(size)) != 0 { throw storageError("truncate", path, errno) }
        if lseek(fd, off_t(size), SEEK_SET) < 0 { throw storageError("seek", path, errno) }
    }

    func seekToEnd() {
        _ = lseek(fd, 0, SEEK_END)
    }

    /// Takes an exclusive advisory lock without waiting.
    func lockExclusive() throws {
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EWOULDBLOCK {
                throw EdgeError(.io, "\(path): the queue is in use by another process")
            }
            throw storageError("lock", path, errno)
        }
    }

    func closeNow() {
        if fd >= 0 { _ = close(fd) }
        fd = -1
    }
}

/// Directory helpers.
enum PosixDirectory {
    static func create(_ path: String) throws {
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw storageError("create directory", path, errno) }
        var st = stat()
        guard stat(path, &st) == 0 else { throw storageError("stat", path, errno) }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw EdgeError(.storageUnavailable, "\(path): is not a directory")
        }
    }

    /// Makes a directory's entries (created, renamed, removed files) durable.
    static func sync(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw storageError("open directory", path, errno) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw storageError("sync directory", path, errno) }
    }

    static func list(_ path: String) throws -> [String] {
        guard let d = opendir(path) else { throw storageError("list", path, errno) }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT { throw storageError("remove", path, errno) }
    }

    static func rename(_ from: String, _ to: String) throws {
        if sysRename(from, to) != 0 { throw storageError("rename", from, errno) }
    }
}
