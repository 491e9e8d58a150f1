/// An asynchronous MQTT v5 client over libmosquitto, with mutual TLS.
///
/// One `MQTTClient` is one connection: call ``connect()`` once, use it, then ``disconnect()`` (or drop the last
/// reference). When the connection ends for any reason, ``messages`` and ``disconnections`` finish and every
/// outstanding call throws; create a new client to reconnect. Nothing reconnects behind the caller's back.
///
/// ```swift
/// let client = try MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: 8883, clientID: "warden-admin",
///                                               tls: MQTTTLS(caFile: ca, certFile: cert, keyFile: key)))
/// try await client.connect()
/// _ = try await client.subscribe("d/+/up/events")
/// let code = try await client.publish(MQTTMessage(topic: "d/dev-1/down/config", payload: bytes, qos: 1))
/// for await message in client.messages { … }
/// ```
///
/// Every awaited call is bounded: ``connect()`` by ``MQTTConfiguration/connectTimeout``, the others by
/// ``MQTTConfiguration/operationTimeout``. Cancelling the calling task makes the call throw `CancellationError`
/// promptly; an already written PUBLISH/SUBSCRIBE is not recalled.
///
/// Set the environment variable `WARDEN_MQTT_DEBUG` to copy libmosquitto's log lines to standard error.
public final class MQTTClient: Sendable {
    private let connection: MosquittoConnection

    /// Every PUBLISH received from the broker, in arrival order. Single consumer. Finishes when the connection ends.
    /// Buffers up to ``MQTTConfiguration/messageBufferSize`` messages; see ``droppedMessageCount``.
    public let messages: AsyncStream<MQTTMessage>

    /// Yields once if the broker drops the connection (not after ``disconnect()``), then finishes.
    ///
    /// The value is the MQTT v5 DISCONNECT reason code when the broker sent one (≥ 128, e.g. 142 session taken
    /// over, 139 server shutting down, or 0 normal disconnection), otherwise libmosquitto's return code for the
    /// lost socket (1…127, e.g. 7 connection lost, 19 keep-alive timeout).
    public let disconnections: AsyncStream<Int>

    /// Creates a client and applies the configuration to a libmosquitto handle. Nothing is sent until ``connect()``.
    /// - Throws: ``MQTTError`` `.invalidArgument` for an unusable configuration (bad port, unreadable TLS file,
    ///   NUL in a string, invalid Last Will topic…), `.tls` if libmosquitto rejects the TLS settings.
    public init(_ configuration: MQTTConfiguration) throws {
        let (messages, messageSink) = AsyncStream.makeStream(
            of: MQTTMessage.self, bufferingPolicy: .bufferingOldest(max(1, configuration.messageBufferSize)))
        let (disconnections, disconnectionSink) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .bufferingNewest(8))
        self.messages = messages
        self.disconnections = disconnections
        self.connection = try MosquittoConnection(configuration, messages: messageSink, disconnections: disconnectionSink)
    }

    deinit {
        connection.close()
    }

    /// The configuration the client was created with.
    public var configuration: MQTTConfiguration { connection.configuration }

    /// Whether CONNACK accepted the connection and it has not ended since.
    public var isConnected: Bool { connection.isConnected }

    /// Outstanding waiters and bookkeeping entries (internal, for leak tests).
    var bookkeepingCount: Int { connection.bookkeepingCount }

    /// Received messages dropped because ``messages`` was full.
    public var droppedMessageCount: Int { connection.droppedMessageCount }

    /// Connects: TCP, TLS handshake (with hostname verification unless disabled), CONNECT, and waits for CONNACK.
    /// - Throws: ``MQTTError`` `.connectionRefused` with the CONNACK v5 reason code (e.g. 135 not authorised,
    ///   134 bad user name or password); `.tls` for certificate, key, CA or handshake failures (including a
    ///   client certificate the broker rejects); `.network` when nothing accepts the TCP connection; `.timeout`
    ///   after ``MQTTConfiguration/connectTimeout``; `.invalidState` if this client was already used.
    ///   After a failure the client is closed.
    public func connect() async throws {
        try await connection.connect()
    }

    /// Publishes a message.
    /// - Returns: for QoS 1 the PUBACK v5 reason code (0 success, 16 no matching subscribers, 135 not authorised,
    ///   …); for QoS 2 the reason code of PUBREC/PUBCOMP; for QoS 0, 0 once the packet has been written to the socket.
    /// - Throws: ``MQTTError`` `.invalidArgument` (topic, QoS, sizes), `.disconnected`, `.timeout`; `CancellationError`.
    @discardableResult
    public func publish(_ message: MQTTMessage) async throws -> Int {
        try await connection.publish(message)
    }

    /// Subscribes to one topic filter.
    /// - Returns: the SUBACK v5 reason code: the granted QoS (0, 1, 2) on success, or a failure code ≥ 128
    ///   (135 not authorised, 143 topic filter invalid, …). A failure code is returned, not thrown.
    /// - Throws: ``MQTTError`` `.invalidArgument`, `.disconnected`, `.timeout`; `CancellationError`.
    @discardableResult
    public func subscribe(_ filter: String, qos: Int = 1) async throws -> Int {
        try await connection.subscribe(filter, qos: qos)
    }

    /// Unsubscribes from one topic filter and waits for UNSUBACK. (libmosquitto 2.0 does not hand UNSUBACK reason
    /// codes to the client, so none is returned.)
    /// - Throws: ``MQTTError`` `.invalidArgument`, `.disconnected`, `.timeout`; `CancellationError`.
    public func unsubscribe(_ filter: String) async throws {
        try await connection.unsubscribe(filter)
    }

    /// Sends DISCONNECT (reason 0, so the broker discards the Last Will), stops the network thread and finishes
    /// the streams. Outstanding calls throw `.disconnected`. Waits at most ``MQTTConfiguration/operationTimeout``
    /// for the network thread; idempotent.
    public func disconnect() async {
        await connection.disconnect()
    }
}
