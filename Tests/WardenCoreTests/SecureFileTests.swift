import Foundation
import Testing
import WardenCore

@Suite("SecureFile")
struct SecureFileTests {
    let dir: String = {
        let path = NSTemporaryDirectory() + "securefile-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    @Test("atomic write sets the mode and leaves no temporary file")
    func atomicWrite() throws {
        let path = dir + "/key.pem"
        try SecureFile.writeAtomically(Array("secret".utf8), to: path, mode: 0o600)
        #expect(SecureFile.mode(of: path) == 0o600)
        #expect(try SecureFile.readText(path) == "secret")
        try SecureFile.writeAtomically(Array("second".utf8), to: path, mode: 0o600)
        #expect(try SecureFile.readText(path) == "second")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["key.pem"])
    }

    @Test("reads are bounded")
    func bounded() throws {
        let path = dir + "/big"
        try Data(count: 2048).write(to: URL(fileURLWithPath: path))
        #expect(throws: WardenError.badInput("")) { try SecureFile.read(path, limit: 1024) }
        #expect(try SecureFile.read(path, limit: 2048).count == 2048)
        #expect(throws: WardenError.notFound("")) { try SecureFile.read(dir + "/missing") }
    }

    @Test("writing into a missing directory fails cleanly")
    func missingDirectory() {
        #expect(throws: WardenError.storage("")) {
            try SecureFile.writeAtomically([1, 2, 3], to: dir + "/no/such/dir/file")
        }
    }
}
