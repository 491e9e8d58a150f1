import Foundation
import Testing
import WardenAuthority
import WardenCore
import WardenTestSupport

@testable import WardenServer

/// One `openssl s_client` session kept open, to which HTTP/1.1 requests are written one at a time.
final class SClientSession: @unchecked Sendable {
    // @unchecked: the Process and pipe are only touched by the test that owns the session, sequentially.
    let process = Process()
    let input = Pipe()
    let outputPath: String

    init(port: Int, chain: String, key: String, root: String, directory: TemporaryDirectory) throws {
        outputPath = directory.file("s_client-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-cert", chain, "-key", key, "-CAfile", root, "-quiet", "-ign_eof",
        ]
        process.standardInput = input
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Writes one request on the open connection.
    func send(_ path: String) {
        input.fileHandleForWriting.write(Data("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
    }

    /// Waits until the output holds `count` occurrences of `text`, at most `seconds`.
    func waitFor(_ text: String, count: Int = 1, seconds: Double = 60) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if output.components(separatedBy: text).count - 1 >= count { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Ends the session (only this process, by its pid). SIGKILL, because a child of a process that once ran a
    /// signal-handling ServiceGroup inherits SIGTERM as ignored.
    func close() {
        try? input.fileHandleForWriting.close()
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

@Suite("Revocation reaches live keep-alive connections", .serialized, .timeLimit(.minutes(3)))
struct KeepAliveRevocationTests {
    @Test("openssl s_client: 200 on an open mTLS connection, then 403 on the same connection right after revoke")
    func revokeDuringSession() async throws {
        let harness = try await ServerHarness.start()
        do {
            let device = try harness.enrollDirectly("sensor-live-1")
            let session = try SClientSession(
                port: harness.httpsPort, chain: device.chain, key: device.key, root: harness.rootPath, directory: harness.directory)
            defer { session.close() }
            session.send("/healthz")
            #expect(try await session.waitFor("HTTP/1.1 200"), "\(session.output)")
            _ = try harness.authority.revoke(try DeviceID("sensor-live-1"), reason: .keyCompromise, now: Date())
            session.send("/healthz")
            #expect(try await session.waitFor("HTTP/1.1 403"), "\(session.output)")
            #expect(session.output.contains("device 'sensor-live-1' is revoked") || session.output.contains("is not valid"))
        } catch {
            Issue.record(error)
        }
        await harness.stop()
    }
}
