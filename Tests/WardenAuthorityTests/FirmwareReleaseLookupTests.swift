import Foundation
import Testing
import WardenAuthority
import WardenCore
import WardenTestSupport

@Suite("firmware release lookup (the block service's hot path)")
struct FirmwareReleaseLookupTests {
    @Test("finds published releases, sees a new one after firmware add, and answers nil without a repository or release")
    func lookup() throws {
        let directory = try TemporaryDirectory()
        let repository = FirmwareRepository(home: WardenHome(path: directory.file("home")), keyIterations: 1000)
        let lookup = FirmwareReleaseLookup(repository: repository)
        #expect(try lookup.release(name: "gw", version: "1.0.0") == nil, "no repository yet")
        let passphrase = Array("correct horse battery staple".utf8)
        _ = try repository.initialize(passphrase: passphrase, registry: nil, actor: "test", now: Date())
        let first = try directory.write("a.bin", (0..<5_000).map { UInt8(truncatingIfNeeded: $0) })
        let added = try repository.add(
            image: first, name: "gw", version: "1.0.0", hardware: ["board-a"], blockSize: 4096, passphrase: passphrase,
            registry: nil, actor: "test", now: Date())
        #expect(try lookup.release(name: "gw", version: "1.0.0") == added)
        #expect(try lookup.release(name: "gw", version: "1.1.0") == nil)
        let second = try directory.write("b.bin", (0..<6_000).map { UInt8(truncatingIfNeeded: $0 &* 3) })
        let newer = try repository.add(
            image: second, name: "gw", version: "1.1.0", hardware: ["board-a"], blockSize: 4096, passphrase: passphrase,
            registry: nil, actor: "test", now: Date())
        #expect(try lookup.release(name: "gw", version: "1.1.0") == newer, "a new timestamp invalidates the cache")
        #expect(try lookup.release(name: "gw", version: "1.0.0") == added)
    }
}
