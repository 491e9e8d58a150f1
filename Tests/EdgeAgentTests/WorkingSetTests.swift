@testable import EdgeAgent
import Foundation
import Testing

@Suite("working-set trim: start-up pages go back to the kernel, the process keeps working")
struct WorkingSetTests {
    @Test("a trim pages out read-only file mappings only, lowers the resident set, and code and data still work after it")
    func trimKeepsTheProcessWorking() throws {
        // Touch a good amount of code and some heap first, so there is something to hand back.
        let before = try #require(WorkingSet.residentKiB())
        var table: [String: Int] = [:]
        for i in 0..<5_000 { table["key-\(i)"] = i }
        let formatted = String(format: "%08.3f", 3.14159)

        let trim = WorkingSet.trim()
        #expect(trim.advisedBytes > 1_000_000, "the binary's and libraries' read-only mappings were advised: \(trim)")
        #expect(trim.refused == 0, "this kernel has MADV_PAGEOUT: \(trim)")
        #expect(trim.residentAfter < trim.residentBefore, "the resident set shrank: \(trim)")
        #expect(before > 0)

        // Code runs again (paged back in), and heap and writable data were not touched.
        #expect(table.count == 5_000 && table["key-4242"] == 4242)
        #expect(formatted == "0003.142")
        let json = try JSONSerialization.data(withJSONObject: ["after": "trim"])
        #expect(String(decoding: json, as: UTF8.self) == #"{"after":"trim"}"#)
        // A second trim right away finds little left to drop, and never fails.
        let again = WorkingSet.trim()
        #expect(again.refused == 0 && again.residentAfter <= again.residentBefore + 1024)
    }

    @Test("in a writable private file mapping only pages still shared with the file count as clean; a page copied on write is kept")
    func copiedPagesAreNeverAdvised() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let path = NSTemporaryDirectory() + "working-set-\(UUID().uuidString)"
        defer { unlink(path) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(repeating: 0x41, count: 4 * page)))
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        let base = try #require(mmap(nil, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0))
        try #require(base != MAP_FAILED)
        defer { munmap(base, 4 * page) }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        // Page 0 and 2 read (resident, the file's own pages), page 1 written (a private copy), page 3 untouched.
        #expect(bytes[0] == 0x41 && bytes[2 * page] == 0x41)
        bytes[page] = 0x42
        let start = Int(bitPattern: base)
        let pagemap = open("/proc/self/pagemap", O_RDONLY)
        try #require(pagemap >= 0)
        defer { close(pagemap) }
        let runs = WorkingSet.cleanFilePages(in: start..<start + 4 * page, pagemap: pagemap)
        // (Page 3 may be mapped too: the kernel's fault-around maps the neighbours of a read page.)
        func clean(_ index: Int) -> Bool { runs.contains { $0.contains(start + index * page) } }
        #expect(clean(0) && !clean(1) && clean(2), "clean runs: \(runs)")
        let mappings = WorkingSet.fileMappings()
        #expect(mappings.contains(WorkingSet.FileMapping(range: start..<start + 4 * page, writable: true)), "\(mappings.count) mappings")

        WorkingSet.trim()
        func resident(_ index: Int) -> Bool {
            var entry: UInt64 = 0
            _ = pread(pagemap, &entry, 8, off_t((start / page + index) * 8))
            return entry & (1 << 63) != 0
        }
        #expect(!resident(0) && !resident(2), "the clean file pages were handed back")
        #expect(resident(1), "the page copied on write was not advised (it would have to go to swap)")
        #expect(bytes[page] == 0x42, "the private copy survived the trim")
        #expect(bytes[0] == 0x41 && bytes[3 * page] == 0x41, "file pages read back")
    }
}
