import Foundation
import Testing
import WardenCore
import WardenHTTPClient
import WardenTestSupport

/// ``HTTPSClient`` behaviour not covered through ``HTTPFetcher``: cancellation of a blocked transfer, redirects never
/// followed by POST, header validation.
@Suite(.serialized) struct HTTPSClientTests {
    @Test(.timeLimit(.minutes(1))) func cancellingTheTaskAbortsABlockedTransferPromptly() async throws {
        let server = try HTTPFetcherTests.Server()
        let client = try HTTPSClient(idleTimeout: nil)
        let started = Date()
        let task = Task { try await client.get("http://127.0.0.1:\(server.port)/m/stall.json", maxBytes: 100, timeout: .seconds(25)) }
        try await Task.sleep(for: .milliseconds(500))
        task.cancel()
        let result = await task.result
        // CancellationError (not the deadline's WardenError.storage) proves the cancel aborted the transfer; the bound is
        // loose because suites running in parallel may starve this test's own task on a 2-core machine.
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(Date().timeIntervalSince(started) < 20, "the transfer stopped before its 25 s deadline")
    }

    @Test func postRefusesHeaderInjectionAndNonHTTPURLs() async throws {
        let client = try HTTPSClient()
        await #expect(throws: WardenError.badInput("")) {
            try await client.post(
                "http://127.0.0.1:9/x", body: [], contentType: "text/plain", headers: [("X-A", "1\r\nX-Injected: 2")], maxBytes: 10,
                timeout: .seconds(1))
        }
        await #expect(throws: WardenError.badInput("")) {
            try await client.post("ftp://127.0.0.1/x", body: [], contentType: "text/plain", maxBytes: 10, timeout: .seconds(1))
        }
        await #expect(throws: WardenError.badInput("")) {
            try await client.get("https://user:secret@127.0.0.1/x", maxBytes: 10, timeout: .seconds(1))
        }
    }

    @Test func getFollowsSameSchemeRedirectsButReportsTheFinalResponse() async throws {
        let server = try HTTPFetcherTests.Server()
        let client = try HTTPSClient()
        let response = try await client.get("http://127.0.0.1:\(server.port)/m/same.json", maxBytes: 100, timeout: .seconds(10))
        #expect(response.status == 200 && response.body == Array("hello".utf8))
        #expect(response.header("content-length") == "5")
        let missing = try await client.get("http://127.0.0.1:\(server.port)/m/none.json", maxBytes: 100, timeout: .seconds(10))
        #expect(missing.status == 404)
    }
}
