import Foundation
import WardenCore

#if canImport(Glibc)
import Glibc
#endif

/// Keeps the agent's resident memory to what its steady state uses.
///
/// Start-up runs a lot of code once: argument parsing, config and certificate verification, TLS set-up, slot
/// recovery. With the kernel's fault-around, every such call also maps its 64 KiB neighbourhood, so code that never
/// runs again stays resident for the agent's whole life (about 13 MiB of the release binary and its libraries).
/// ``trim()`` hands those pages back:
/// - `madvise(MADV_PAGEOUT)` on every **read-only, file-backed** mapping (code and constants of the binary and its
///   libraries), and on the pages of writable file mappings that are still the file's own (not copied on write;
///   read from `/proc/self/pagemap`). Those pages are clean, so the kernel drops them without writing anything, and
///   a page that is needed again is simply read back (from the page cache, usually). Pages that another process
///   also maps are left alone by the kernel.
/// - `malloc_trim(0)`: freed heap (after a firmware download, say) goes back to the system.
///
/// Anonymous memory and pages copied on write are never advised: paging them out would mean swap, not a clean drop.
/// Linux 5.4 or later; on an older kernel ``trim()`` does nothing and says so.
public enum WorkingSet {
    /// The outcome of one trim.
    public struct Trim: Sendable, Equatable {
        /// Resident set before and after, in KiB (`VmRSS`).
        public var residentBefore: Int
        /// Resident set after, in KiB.
        public var residentAfter: Int
        /// Bytes of mappings the kernel was asked to page out.
        public var advisedBytes: Int
        /// Mappings the kernel refused (an old kernel: no `MADV_PAGEOUT`).
        public var refused: Int
    }

    /// The system page size, bytes.
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Linux's `MADV_PAGEOUT` (since 5.4).
    static let pageOut: Int32 = 21

    /// Pages out the clean file-backed pages of this process and trims the heap. Never throws: a range the kernel
    /// refuses is counted in ``Trim/refused``.
    @discardableResult
    public static func trim() -> Trim {
        let before = residentKiB() ?? 0
        var advised = 0
        var refused = 0
        let pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)
        defer { if pagemap >= 0 { close(pagemap) } }
        for mapping in fileMappings() {
            // A writable private mapping (data next to constants; in a static binary, all of .rodata) mixes pages
            // still shared with the file and pages copied on write: only the former are handed back.
            let ranges = mapping.writable ? (pagemap >= 0 ? cleanFilePages(in: mapping.range, pagemap: pagemap) : []) : [mapping.range]
            for range in ranges {
                guard let start = UnsafeMutableRawPointer(bitPattern: range.lowerBound) else { continue }
                if madvise(start, range.count, pageOut) == 0 { advised += range.count } else { refused += 1 }
                // No read-around when a dropped page is needed again: read back that page only, not its 128 KiB
                // neighbourhood (which fault-around would then map too).
                _ = madvise(start, range.count, MADV_RANDOM)
            }
        }
        _ = mallocTrim?(0)
        return Trim(residentBefore: before, residentAfter: residentKiB() ?? 0, advisedBytes: advised, refused: refused)
    }

    /// Runs ``trim()`` after `first` and then every `interval` until the task is cancelled; `report` gets the first
    /// outcome (and any later one that the kernel refused).
    public static func run(first: Duration, interval: Duration, report: @Sendable (String) -> Void) async {
        var delay = first
        var reported = false
        while !Task.isCancelled {
            do { try await Task.sleep(for: delay) } catch { return }
            let outcome = trim()
            if outcome.refused > 0 && outcome.advisedBytes == 0 {
                report("memory: the kernel cannot page out start-up code (MADV_PAGEOUT needs Linux 5.4); not trimming")
                return
            }
            if !reported {
                reported = true
                report("memory: handed back start-up pages, resident \(mebibytes(outcome.residentBefore)) → \(mebibytes(outcome.residentAfter)) MiB")
            }
            delay = interval
        }
    }

    /// Caps glibc's malloc arenas at `count` (`mallopt(M_ARENA_MAX)`); call first thing, before threads allocate.
    /// glibc otherwise gives each thread that meets contention an arena of its own (up to 8 per core), each holding
    /// its own free memory; the agent allocates little and rarely in parallel. Returns false where there is no
    /// such knob (not glibc).
    @discardableResult
    public static func limitMallocArenas(_ count: Int32) -> Bool {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return false }
        let mallopt = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        return mallopt(-8 /* M_ARENA_MAX */, count) == 1
    }

    /// glibc's `malloc_trim`, looked up at run time: Glibc's Swift module leaves out <malloc.h>, and other C
    /// libraries (musl) have no such function.
    static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()

    /// A private mapping of a file.
    struct FileMapping: Equatable {
        var range: Range<Int>
        var writable: Bool
    }

    /// This process's private, readable mappings of files (`r--p`, `r-xp`, `rw-p`, `rwxp` with an inode and a path).
    static func fileMappings() -> [FileMapping] {
        guard let maps = procFile("/proc/self/maps") else { return [] }
        var mappings: [FileMapping] = []
        for line in maps.split(separator: "\n") {
            // 7f0c...-7f0c... r-xp 00000000 fe:01 1234   /usr/lib/x86_64-linux-gnu/libc.so.6
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1].hasPrefix("r"), fields[1].hasSuffix("p"), fields[4] != "0", fields[5].hasPrefix("/")
            else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let low = Int(bounds[0], radix: 16), let high = Int(bounds[1], radix: 16), high > low
            else { continue }
            mappings.append(FileMapping(range: low..<high, writable: fields[1].dropFirst().first == "w"))
        }
        return mappings
    }

    /// The runs of pages of `range` that are resident and still the file's own (page cache) pages, not private
    /// copies, from `/proc/self/pagemap` (bit 63 present, bit 61 file page; Documentation/admin-guide/mm/pagemap.rst).
    static func cleanFilePages(in range: Range<Int>, pagemap: Int32) -> [Range<Int>] {
        let page = pageSize
        guard page > 0 else { return [] }
        let pages = range.count / page
        var entries = [UInt64](repeating: 0, count: pages)
        let wanted = pages * MemoryLayout<UInt64>.size
        let read = entries.withUnsafeMutableBytes { pread(pagemap, $0.baseAddress, wanted, off_t(range.lowerBound / page * 8)) }
        guard read == wanted else { return [] }
        var runs: [Range<Int>] = []
        var runStart: Int?
        for index in 0...pages {
            let clean = index < pages && entries[index] & (1 << 63) != 0 && entries[index] & (1 << 61) != 0
            switch (clean, runStart) {
            case (true, nil): runStart = index
            case (false, let start?):
                runs.append(range.lowerBound + start * page..<range.lowerBound + index * page)
                runStart = nil
            default: break
            }
        }
        return runs
    }

    /// This process's `VmRSS` in KiB.
    public static func residentKiB() -> Int? {
        guard let status = procFile("/proc/self/status"),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
    }

    /// A whole `/proc` file. They report a size of 0, so they are read to the end rather than by their size.
    static func procFile(_ path: String, limit: Int = 4 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count < limit {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func mebibytes(_ kib: Int) -> String { String(format: "%.1f", Double(kib) / 1024) }
}
