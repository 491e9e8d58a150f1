@testable import EdgeAgent
import Foundation
import Testing
import WardenTestSupport

@Suite("OTA downloads: only the current image's download is kept")
struct OTADownloadPruneTests {
    @Test("opening a download discards what replaced assignments left (image, .part, .state, strays) and keeps the current one's files")
    func pruneKeepsOnlyTheCurrentImage() throws {
        let dir = try TemporaryDirectory()
        let current = String(repeating: "a", count: 64)
        let replaced = String(repeating: "b", count: 64)
        let finished = String(repeating: "c", count: 64)
        for (name, size) in [
            (current + ".part", 4096), (current + ".state", 40), (replaced + ".part", 8192), (replaced + ".state", 40),
            (finished, 1000), ("stray.tmp", 7),
        ] {
            _ = try dir.write(name, String(repeating: "x", count: size))
        }
        let pruned = OTAEngine.pruneDownloads(in: dir.path, keeping: current)
        #expect(pruned.files == 4 && pruned.bytes == 8192 + 40 + 1000 + 7, "\(pruned)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(left == [current + ".part", current + ".state"])
        // Nothing left to prune; a missing directory is not an error.
        #expect(OTAEngine.pruneDownloads(in: dir.path, keeping: current) == (0, 0))
        #expect(OTAEngine.pruneDownloads(in: dir.path + "/missing", keeping: current) == (0, 0))
    }
}
