import Foundation
import Synchronization
import WardenAuthority
import WardenCore
import WardenPKI
import WardenStore
import WardenTestSupport

@testable import WardenServer

/// A real Warden home (CA made with `CAInitializer`, registry, service certificate) and a running
/// ``AuthorityHTTPServer`` on 127.0.0.1 with kernel-chosen ports, driven by real clients (curl, openssl).
final class ServerHarness: Sendable {
    let directory: TemporaryDirectory
    let authority: Authority
    let httpsPort: Int
    let httpPort: Int
    let rootPath: String
    let issuingPath: String
    let server: Task<Void, any Error>

    static let passphrase = Array("server harness passphrase".utf8)

    private init(
        directory: TemporaryDirectory, authority: Authority, httpsPort: Int, httpPort: Int, server: Task<Void, any Error>
    ) throws {
        self.directory = directory
        self.authority = authority
        self.httpsPort = httpsPort
        self.httpPort = httpPort
        self.server = server
        rootPath = authority.home.ca.rootCertificate
        issuingPath = try directory.write("issuing.pem", try authority.ca.issuingPEM)
    }

    /// Creates the home and CA, starts the server and waits until both listeners are bound.
    static func start() async throws -> ServerHarness {
        let directory = try TemporaryDirectory()
        let home = WardenHome(path: directory.file("home"))
        _ = try CAInitializer.initialize(
            layout: home.ca, organization: "Warden Server Test", rootValidity: WardenDuration(seconds: 10 * 365 * 86_400),
            issuingValidity: WardenDuration(seconds: 5 * 365 * 86_400), passphrase: passphrase, now: Date(), keyIterations: 1000)
        let authority = try Authority.open(home: home, passphrase: passphrase, actor: "test:server")
        let credential = try authority.ca.issueServiceCertificate(
            commonName: "warden-api", purposes: [.server], dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"],
            validity: WardenDuration(seconds: 86_400), now: Date())
        var server = try AuthorityHTTPServer(
            authority: authority, host: "127.0.0.1", httpsPort: 0, httpPort: 0, serverChainPEM: credential.chainPEM,
            serverKeyPEM: credential.privateKeyPEM)
        let ports = Mutex<(https: Int?, http: Int?)>((nil, nil))
        server.onListening = { port, tls in
            ports.withLock { if tls { $0.https = port } else { $0.http = port } }
        }
        let running = server
        let task = Task { try await running.run(handlingSignals: false) }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if case (let https?, let http?) = ports.withLock({ $0 }) {
                return try ServerHarness(directory: directory, authority: authority, httpsPort: https, httpPort: http, server: task)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        task.cancel()
        throw TestSupportError("the server did not start listening within 30 s")
    }

    /// Stops the server by cancelling its task and waits for it to finish.
    func stop() async {
        server.cancel()
        _ = await server.result
    }

    var https: String { "https://127.0.0.1:\(httpsPort)" }
    var http: String { "http://127.0.0.1:\(httpPort)" }

    /// What curl saw.
    struct HTTPResult: Sendable {
        /// curl's exit status (0 = transfer done, whatever the HTTP status).
        var exit: Int32
        /// HTTP status, 0 if there was none (e.g. the handshake was refused).
        var status: Int
        /// Response body.
        var body: [UInt8]
        /// curl's stderr.
        var stderr: String
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Runs curl against the server (TLS trust = the Warden root), time-bounded.
    func curl(_ arguments: [String], url: String) async throws -> HTTPResult {
        let output = directory.file("curl-\(UUID().uuidString).out")
        let result = try await Self.launch(
            "curl", ["-sS", "--max-time", "20", "--cacert", rootPath, "-o", output, "-w", "%{http_code}"] + arguments + [url])
        let body = (try? Data(contentsOf: URL(fileURLWithPath: output))).map { Array($0) } ?? []
        return HTTPResult(
            exit: result.status, status: Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, body: body,
            stderr: result.stderr)
    }

    /// Runs a command on a dispatch thread, so blocking on the child never starves the server's tasks.
    static func launch(_ executable: String, _ arguments: [String]) async throws -> WardenProcess.Result {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try WardenProcess.launch(executable, arguments) })
            }
        }
    }

    /// Runs openssl, time-bounded by the server's own timeouts.
    func openssl(_ arguments: [String]) async throws -> WardenProcess.Result { try await Self.launch("openssl", arguments) }

    /// A device key and a base64 DER CSR file for `commonName`, as an EST client sends it.
    func csr(_ commonName: String, name: String? = nil) async throws -> (key: String, csrBase64: String) {
        let (key, csr) = try DeviceKeys.make(commonName, in: directory, name: name ?? "\(commonName)-\(UUID().uuidString.prefix(8))")
        let der = csr + ".der"
        let converted = try await openssl(["req", "-in", csr, "-outform", "DER", "-out", der])
        guard converted.status == 0 else { throw TestSupportError("openssl req -outform DER failed: \(converted.stderr)") }
        let encoded = Data(try Data(contentsOf: URL(fileURLWithPath: der))).base64EncodedString(options: [.lineLength64Characters])
        return (key, try directory.write(URL(fileURLWithPath: der).lastPathComponent + ".b64", encoded + "\n"))
    }

    /// Enrolls `id` directly through the authority (CLI path) and returns its key and certificate chain files.
    func enrollDirectly(_ id: String) throws -> (key: String, chain: String, serial: String) {
        let (key, csr) = try DeviceKeys.make(id, in: directory, name: "\(id)-direct")
        let issued = try authority.enroll(
            try DeviceID(id), csr: Array(try Data(contentsOf: URL(fileURLWithPath: csr))), csrSource: csr, groups: [], validity: nil,
            now: Date())
        return (key, try directory.write("\(id)-chain.pem", issued.chainPEM), issued.serial)
    }

    /// Decodes an EST certs-only body (base64 PKCS#7) and writes its certificates as PEM with openssl.
    func certificates(fromEST body: [UInt8], name: String) async throws -> String {
        let cleaned = String(decoding: body, as: UTF8.self).filter { !$0.isWhitespace }
        guard let der = Data(base64Encoded: cleaned) else { throw TestSupportError("EST body is not base64: \(cleaned.prefix(80))") }
        let p7 = try directory.write("\(name).p7.der", Array(der))
        let pem = directory.file("\(name).pem")
        let printed = try await openssl(["pkcs7", "-inform", "DER", "-in", p7, "-print_certs", "-out", pem])
        guard printed.status == 0 else { throw TestSupportError("openssl pkcs7 failed: \(printed.stderr)") }
        return pem
    }

    /// The server's /metrics text.
    func metrics() async throws -> String { try await curl([], url: https + "/metrics").text }
}
