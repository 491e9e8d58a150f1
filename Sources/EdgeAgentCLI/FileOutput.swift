#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EdgeCore

private func sysWrite(_ fd: Int32, _ buf: UnsafeRawPointer, _ n: Int) -> Int { write(fd, buf, n) }
private func sysClose(_ fd: Int32) -> Int32 { close(fd) }

/// An unbuffered output file descriptor (stdout, stderr or a created file).
struct FileOutput {
    let fd: Int32
    let path: String

    static let standardOutput = FileOutput(fd: 1, path: "stdout")
    static let standardError = FileOutput(fd: 2, path: "stderr")

    /// Creates (or truncates) a file for writing.
    static func create(path: String) throws -> FileOutput {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw EdgeError(.io, "\(path): cannot create the output file (\(String(cString: strerror(errno))))")
        }
        return FileOutput(fd: fd, path: path)
    }

    /// Writes all of `text`; ignores errors on stderr, throws on anything else.
    @discardableResult
    func write(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { buf in
            var off = 0
            while off < buf.count {
                let n = sysWrite(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                off += n
            }
            return true
        }
    }

    func writeOrThrow(_ text: String) throws {
        guard write(text) else {
            throw EdgeError(.io, "\(path): write failed (\(String(cString: strerror(errno))))")
        }
    }

    func close() {
        if fd > 2 { _ = sysClose(fd) }
    }
}
