import Foundation
import WardenCore
import WardenHTTPClient
import WardenPKI

/// The agent's EST client (RFC 7030) for `warden serve`: `cacerts`, `simpleenroll` with a bootstrap token and
/// `simplereenroll` with the current certificate (mutual TLS).
///
/// HTTPS trusts ONLY `trustFile` (the fleet CA). Every returned certificate is checked with
/// ``ESTIssuedCertificate/verify(certsOnlyBase64:privateKeyPEM:deviceID:trustPEM:trustSource:intermediatesDER:now:)``
/// before it is handed back: our key, our name, a chain to `trustFile`. The bootstrap token is sent only in the
/// `Authorization` header and never appears in an error.
public struct ESTClient: Sendable {
    /// `https://HOST:PORT/.well-known/est`.
    public let baseURL: String
    /// PEM file of the trusted fleet CA(s): the TLS anchor and the anchor issued certificates must chain to.
    public let trustFile: String
    /// The longest one request may take.
    public var timeout: Duration = .seconds(30)

    /// A client for the authority at `estURL` (`https://HOST:PORT`, with or without `/.well-known/est`).
    /// - Throws: `.badInput` for a URL that is not https with a host, or an unreadable trust file.
    public init(estURL: String, trustFile: String) throws {
        var base = estURL
        while base.hasSuffix("/") { base.removeLast() }
        if !base.hasSuffix("/.well-known/est") { base += "/.well-known/est" }
        guard let components = URLComponents(string: base), components.scheme?.lowercased() == "https",
            let host = components.host, !host.isEmpty, components.user == nil, components.password == nil
        else {
            throw WardenError.badInput("--est-url '\(estURL.prefix(200))' must be an https URL with a host")
        }
        guard FileManager.default.isReadableFile(atPath: trustFile) else {
            throw WardenError.badInput("trust file '\(trustFile)' cannot be read")
        }
        self.baseURL = base
        self.trustFile = trustFile
    }

    /// `GET /cacerts`: the authority's CA certificates (DER), used as untrusted intermediates. With `certFile` and
    /// `keyFile` the request is made over mutual TLS, which proves the authority accepts that credential.
    /// - Throws: `.storage` for transport failures or a non-200 answer, `.badInput` for a malformed body.
    public func caCertificates(certFile: String? = nil, keyFile: String? = nil) async throws -> [[UInt8]] {
        let client = try HTTPSClient(options: TLSOptions(caFile: trustFile, certFile: certFile, keyFile: keyFile))
        let response = try await client.get(
            baseURL + "/cacerts", maxBytes: ESTIssuedCertificate.maximumResponseBytes, timeout: timeout)
        guard response.status == 200 else { throw Self.refusal(response, operation: "cacerts") }
        return try ESTIssuedCertificate.certificates(certsOnlyBase64: response.body, source: "the EST cacerts response")
    }

    /// `POST /simpleenroll` with HTTP Basic `deviceID:token` and the CSR; returns the verified certificate.
    /// - Throws: `.policyViolation` when the authority refuses the token or CSR (HTTP 401/403) or returns a certificate
    ///   that is not ours, `.alreadyExists` when the device is already enrolled (409), `.verificationFailed` when the
    ///   certificate does not chain to the trust file, `.storage` for transport failures.
    public func simpleEnroll(
        csr: [UInt8], csrSource: String, deviceID: DeviceID, token: String, privateKeyPEM: String, now: Date = Date()
    ) async throws -> ESTIssuedCertificate {
        let request = try ESTRequestBody.simpleEnroll(csr: csr, source: csrSource)
        let intermediates = try await caCertificates()
        let credential = Data("\(deviceID.rawValue):\(token)".utf8).base64EncodedString()
        let client = try HTTPSClient(options: TLSOptions(caFile: trustFile))
        let response = try await client.post(
            baseURL + "/simpleenroll", body: request.body, contentType: "application/pkcs10",
            headers: [("Authorization", "Basic " + credential)], maxBytes: ESTIssuedCertificate.maximumResponseBytes,
            timeout: timeout)
        guard response.status == 200 else { throw Self.refusal(response, operation: "simpleenroll") }
        return try await ESTIssuedCertificate.verify(
            certsOnlyBase64: response.body, privateKeyPEM: privateKeyPEM, deviceID: deviceID, trustPEM: try trustPEM(),
            trustSource: trustFile, intermediatesDER: intermediates, now: now)
    }

    /// `POST /simplereenroll` over mutual TLS with the current certificate and key; `csr` is for the NEW key
    /// `newPrivateKeyPEM`. Returns the verified new certificate.
    /// - Throws: like ``simpleEnroll(csr:csrSource:deviceID:token:privateKeyPEM:now:)``; a revoked or unknown
    ///   device is refused with `.policyViolation` (HTTP 401/403) or `.storage` (the handshake is refused).
    public func simpleReenroll(
        csr: [UInt8], csrSource: String, deviceID: DeviceID, newPrivateKeyPEM: String, currentCertFile: String,
        currentKeyFile: String, now: Date = Date()
    ) async throws -> ESTIssuedCertificate {
        let request = try ESTRequestBody.simpleEnroll(csr: csr, source: csrSource)
        let intermediates = try await caCertificates()
        let client = try HTTPSClient(options: TLSOptions(caFile: trustFile, certFile: currentCertFile, keyFile: currentKeyFile))
        let response = try await client.post(
            baseURL + "/simplereenroll", body: request.body, contentType: "application/pkcs10",
            maxBytes: ESTIssuedCertificate.maximumResponseBytes, timeout: timeout)
        guard response.status == 200 else { throw Self.refusal(response, operation: "simplereenroll") }
        return try await ESTIssuedCertificate.verify(
            certsOnlyBase64: response.body, privateKeyPEM: newPrivateKeyPEM, deviceID: deviceID, trustPEM: try trustPEM(),
            trustSource: trustFile, intermediatesDER: intermediates, now: now)
    }

    /// The device id a CSR file names (its single CN).
    /// - Throws: `.badInput` when the file is not one PKCS#10 request naming a valid device id.
    public static func deviceID(csr: [UInt8], source: String) throws -> DeviceID {
        let name = try ESTRequestBody.simpleEnroll(csr: csr, source: source).commonName
        do {
            return try DeviceID(name)
        } catch let error as WardenError {
            throw WardenError.badInput("CSR '\(source)': \(error.message)")
        }
    }

    func trustPEM() throws -> [UInt8] { try SecureFile.read(trustFile, what: "trust file") }

    /// The error for a non-200 answer: the status and the first line of the server's message (at most 200 characters).
    static func refusal(_ response: HTTPResponse, operation: String) -> WardenError {
        let line = response.text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        let message = String(line.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(200).map(Character.init))
        let text = "the authority refused \(operation) (HTTP \(response.status))\(message.isEmpty ? "" : ": \(message)")"
        switch response.status {
        case 401, 403: return WardenError.policy(text)
        case 409: return WardenError.alreadyExists(text)
        case 400: return WardenError.badInput(text)
        default: return WardenError.storage(text)
        }
    }
}
