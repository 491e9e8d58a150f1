/// Mutual-TLS settings for an MQTT connection.
///
/// TLS 1.2 is the minimum version (1.3 is negotiated when both sides support it), the server certificate is
/// always verified against ``caFile``, and the server's name is checked against the certificate's SAN unless
/// ``insecureSkipHostnameCheck`` is set. Encrypted private keys are not supported: libmosquitto would prompt on
/// the terminal, so the key file must be unencrypted (and therefore readable only by the service).
public struct MQTTTLS: Sendable, Hashable {
    /// The lowest TLS version the client accepts.
    public enum MinimumVersion: String, Sendable, Hashable {
        /// TLS 1.2 (and 1.3).
        case tls12 = "tlsv1.2"
        /// TLS 1.3 only.
        case tls13 = "tlsv1.3"
    }

    /// PEM file with the CA certificate(s) that must have issued the broker's certificate.
    public var caFile: String
    /// PEM file with the client certificate presented to the broker.
    public var certFile: String
    /// PEM file with the client's unencrypted private key.
    public var keyFile: String
    /// The lowest accepted TLS version; `.tls12` by default.
    public var minimumVersion: MinimumVersion
    /// Skips checking that the broker's certificate names the host connected to. For tests only: without the
    /// check any certificate issued by ``caFile`` can impersonate the broker.
    public var insecureSkipHostnameCheck: Bool

    /// Creates mutual-TLS settings; hostname verification is on.
    public init(
        caFile: String, certFile: String, keyFile: String,
        minimumVersion: MinimumVersion = .tls12, insecureSkipHostnameCheck: Bool = false
    ) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.minimumVersion = minimumVersion
        self.insecureSkipHostnameCheck = insecureSkipHostnameCheck
    }
}

/// One MQTT application message, sent or received.
public struct MQTTMessage: Sendable, Hashable {
    /// The topic name (no wildcards when publishing).
    public var topic: String
    /// The payload bytes; at most ``MQTTMessage/maximumPayloadSize``.
    public var payload: [UInt8]
    /// Quality of service, 0, 1 or 2.
    public var qos: Int
    /// Whether the broker retains the message for future subscribers.
    public var retain: Bool
    /// MQTT v5 Response Topic property, for request/response.
    public var responseTopic: String?
    /// MQTT v5 Correlation Data property, for request/response; at most 65 535 bytes.
    public var correlationData: [UInt8]?

    /// The largest payload MQTT can carry (268 435 455 bytes, the protocol's "remaining length" limit, just
    /// under 256 MiB). Larger payloads are refused with ``MQTTError/Code/invalidArgument`` before anything is
    /// sent. Incoming payloads are bounded by the broker's `max_packet_size`/`message_size_limit`; libmosquitto
    /// itself accepts up to this size, so a client talking to an untrusted broker can be made to allocate it.
    public static let maximumPayloadSize = 268_435_455

    /// Creates a message.
    public init(
        topic: String, payload: [UInt8] = [], qos: Int = 1, retain: Bool = false,
        responseTopic: String? = nil, correlationData: [UInt8]? = nil
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.responseTopic = responseTopic
        self.correlationData = correlationData
    }
}

/// Everything needed to connect an ``MQTTClient``.
public struct MQTTConfiguration: Sendable {
    /// Broker host name or IP address. With TLS this is also the name checked against the broker certificate.
    public var host: String
    /// Broker TCP port.
    public var port: Int
    /// MQTT client identifier (at most 65 535 bytes of UTF-8, no NUL).
    public var clientID: String
    /// Mutual-TLS settings; `nil` connects in plain TCP (tests and loopback-only listeners).
    public var tls: MQTTTLS?
    /// Keep-alive interval in seconds, 5…65535. The broker drops the client after 1.5× this without traffic.
    public var keepAlive: Int
    /// MQTT v5 Clean Start. Note that no Session Expiry Interval is sent, so the broker ends the session when the
    /// network connection closes whatever this flag says.
    public var cleanStart: Bool
    /// User name for brokers that authenticate by password (with `use_identity_as_username` the certificate CN wins).
    public var username: String?
    /// Password; only sent together with ``username``.
    public var password: String?
    /// Last Will: published by the broker if the connection drops without a DISCONNECT.
    public var will: MQTTMessage?
    /// Upper bound for `connect()`: TCP connect, TLS handshake and CONNACK together.
    public var connectTimeout: Duration
    /// Upper bound for each acknowledged operation (PUBACK, SUBACK, UNSUBACK) and for `disconnect()`.
    public var operationTimeout: Duration
    /// How many received messages ``MQTTClient/messages`` buffers for a slow consumer; when full, newer
    /// messages are dropped and counted in ``MQTTClient/droppedMessageCount``.
    public var messageBufferSize: Int

    /// Creates a configuration.
    public init(
        host: String, port: Int, clientID: String, tls: MQTTTLS?, keepAlive: Int = 30, cleanStart: Bool = true,
        username: String? = nil, password: String? = nil, will: MQTTMessage? = nil,
        connectTimeout: Duration = .seconds(10), operationTimeout: Duration = .seconds(10),
        messageBufferSize: Int = 10_000
    ) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.tls = tls
        self.keepAlive = keepAlive
        self.cleanStart = cleanStart
        self.username = username
        self.password = password
        self.will = will
        self.connectTimeout = connectTimeout
        self.operationTimeout = operationTimeout
        self.messageBufferSize = messageBufferSize
    }
}
