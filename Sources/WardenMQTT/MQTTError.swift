/// A failure reported by ``MQTTClient``.
///
/// Like `WardenError`, equality compares only ``code`` and ``reasonCode``, so tests can match the kind of failure
/// (for example "refused with 135") without depending on the wording of ``message``.
public struct MQTTError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The stable category of the failure.
    public enum Code: String, Sendable, CaseIterable {
        /// The broker answered CONNECT with a CONNACK whose MQTT v5 reason code is a failure (≥ 128);
        /// ``MQTTError/reasonCode`` holds it (e.g. 134 bad user name or password, 135 not authorised).
        case connectionRefused = "connection_refused"
        /// TLS failed: a certificate or key file could not be loaded, the handshake failed, the server
        /// certificate did not verify against the CA file or did not match the host name, or the broker
        /// rejected the client certificate.
        case tls = "tls"
        /// The broker did not answer within the configured timeout.
        case timeout = "timeout"
        /// The TCP connection could not be made (nothing listening, host unknown, network unreachable).
        case network = "network"
        /// The connection was lost or closed while the operation was outstanding, or the client is not connected.
        /// ``MQTTError/reasonCode`` holds the v5 DISCONNECT reason code or libmosquitto's return code when known.
        case disconnected = "disconnected"
        /// The broker or libmosquitto reported a protocol violation or an unexpected condition.
        case protocolError = "protocol"
        /// An argument was rejected before anything was sent (bad topic, QoS, payload too large, NUL in a string).
        case invalidArgument = "invalid_argument"
        /// The call does not fit the client's lifecycle (for example `connect()` on a client that was already used).
        case invalidState = "invalid_state"
    }

    /// The stable category.
    public let code: Code
    /// The MQTT v5 reason code (CONNACK, DISCONNECT) or libmosquitto return code involved, when there is one.
    public let reasonCode: Int?
    /// One sentence for a human.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, reasonCode: Int? = nil, _ message: String) {
        self.code = code
        self.reasonCode = reasonCode
        self.message = message
    }

    /// The message, prefixed with the code.
    public var description: String {
        if let reasonCode { return "mqtt \(code.rawValue) (\(reasonCode)): \(message)" }
        return "mqtt \(code.rawValue): \(message)"
    }

    /// Compares ``code`` and ``reasonCode``; the message is ignored.
    public static func == (lhs: MQTTError, rhs: MQTTError) -> Bool {
        lhs.code == rhs.code && lhs.reasonCode == rhs.reasonCode
    }
}
