import EdgeAgent
import Foundation
import Testing
import WardenCore
import WardenTestSupport
import WardenUpdate

/// ``HTTPFetcher`` against a hostile little HTTP server (python3) on 127.0.0.1: redirects, endless bodies, stalls.
@Suite(.serialized) struct HTTPFetcherTests {
    static let server = """
        import http.server, sys, time
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            def log_message(self, *args): pass
            def do_GET(self):
                port = self.server.server_address[1]
                if self.path == "/m/ok.json":
                    self.send_response(200); self.send_header("Content-Length", "5"); self.end_headers(); self.wfile.write(b"hello")
                elif self.path == "/m/same.json":
                    self.send_response(302); self.send_header("Location", "http://127.0.0.1:%d/m/ok.json" % port); self.end_headers()
                elif self.path == "/m/scheme.json":
                    self.send_response(302); self.send_header("Location", "https://127.0.0.1:%d/m/ok.json" % port); self.end_headers()
                elif self.path == "/m/file.json":
                    self.send_response(302); self.send_header("Location", "file:///etc/passwd"); self.end_headers()
                elif self.path == "/m/declared.json":
                    self.send_response(200); self.send_header("Content-Length", "100000"); self.end_headers(); self.wfile.write(b"x" * 100000)
                elif self.path == "/m/endless.json":
                    self.send_response(200); self.end_headers()
                    try:
                        for _ in range(10000): self.wfile.write(b"x" * 65536)
                    except Exception: pass
                elif self.path == "/m/stall.json":
                    self.send_response(200); self.send_header("Content-Length", "10"); self.end_headers(); self.wfile.write(b"ab"); self.wfile.flush(); time.sleep(30)
                elif self.path == "/m/error.json":
                    self.send_response(500); self.end_headers()
                else:
                    self.send_response(404); self.end_headers()
        http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
        """

    final class Server: @unchecked Sendable {
        // @unchecked: immutable after init.
        let dir: TemporaryDirectory
        let port: Int
        let process: SpawnedProcess

        init() throws {
            dir = try TemporaryDirectory()
            let script = try dir.write("server.py", HTTPFetcherTests.server)
            port = try MosquittoProcess.freeLoopbackPort()
            process = try SpawnedProcess(try TUFClientTests.Repository.which("python3"), [script, String(port)], output: dir.file("log"))
            let deadline = Date().addingTimeInterval(15)
            while !MosquittoProcess.canConnect(port: port) {
                guard Date() < deadline, process.isRunning else { throw TestSupportError("the test HTTP server did not start") }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }

        deinit { process.stop(SIGKILL, grace: 0) }

        func fetcher(idleTimeout: TimeInterval = 15, totalTimeout: TimeInterval = 60) throws -> HTTPFetcher {
            try HTTPFetcher(metadataBaseURL: URL(string: "http://127.0.0.1:\(port)/m")!, idleTimeout: idleTimeout, totalTimeout: totalTimeout)
        }
    }

    @Test func fetchesFollowsSameSchemeRedirectsAndMapsMissingToNil() async throws {
        let server = try Server()
        let fetcher = try server.fetcher()
        #expect(try await fetcher.fetch(.metadata, path: "ok.json", maxLength: 100) == Array("hello".utf8))
        #expect(try await fetcher.fetch(.metadata, path: "same.json", maxLength: 100) == Array("hello".utf8))
        #expect(try await fetcher.fetch(.metadata, path: "2.root.json", maxLength: 100) == nil)
        await #expect(throws: WardenError.storage("")) { try await fetcher.fetch(.metadata, path: "error.json", maxLength: 100) }
        // No target store was configured.
        await #expect(throws: WardenError.notFound("")) { try await fetcher.fetch(.target, path: "ok.json", maxLength: 100) }
    }

    @Test func refusesRedirectsToAnotherScheme() async throws {
        let server = try Server()
        let fetcher = try server.fetcher()
        do {
            let bytes = try await fetcher.fetch(.metadata, path: "scheme.json", maxLength: 100)
            Issue.record("an http → https redirect was followed: \(bytes?.count ?? -1) bytes")
        } catch let error as WardenError {
            #expect(error.code == .badInput && error.message.contains("redirects to a https URL"), "\(error.message)")
        }
        // FoundationNetworking resolves a `file:` Location against the current origin (here it becomes
        // http://127.0.0.1:PORT/etc/passwd, a 404): the local file is never read.
        let local = try? await fetcher.fetch(.metadata, path: "file.json", maxLength: 100_000)
        #expect(local == nil || local == .some(nil))
    }

    @Test func stopsReadingPastTheLimit() async throws {
        let server = try Server()
        let fetcher = try server.fetcher()
        for path in ["declared.json", "endless.json"] {
            let started = Date()
            do {
                _ = try await fetcher.fetch(.metadata, path: path, maxLength: 4096)
                Issue.record("\(path): an over-long body was accepted")
            } catch let error as WardenError {
                #expect(error.code == .badInput && error.message.contains("4096-byte limit"), "\(path): \(error.message)")
            }
            // The endless body is ~650 MB: refusing it must not mean reading it.
            #expect(Date().timeIntervalSince(started) < 10)
        }
    }

    @Test func aStalledTransferTimesOut() async throws {
        let server = try Server()
        let fetcher = try server.fetcher(idleTimeout: 1, totalTimeout: 3)
        let started = Date()
        await #expect(throws: WardenError.storage("")) { try await fetcher.fetch(.metadata, path: "stall.json", maxLength: 100) }
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func refusesUnsafePathsAndNonHTTPBases() async throws {
        #expect(throws: WardenError.badInput("")) { try HTTPFetcher(metadataBaseURL: URL(string: "file:///etc")!) }
        #expect(throws: WardenError.badInput("")) { try HTTPFetcher(metadataBaseURL: URL(string: "ftp://host/m")!) }
        let fetcher = try HTTPFetcher(metadataBaseURL: URL(string: "http://127.0.0.1:9/m")!)
        for path in ["../x.json", "a//b", "/etc/passwd", "a b"] {
            await #expect(throws: WardenError.badInput(""), "\(path)") { try await fetcher.fetch(.metadata, path: path, maxLength: 10) }
        }
    }
}
