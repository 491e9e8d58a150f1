import CMosquitto
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `mosquitto_lib_init` exactly once per process (Swift runs a global/static initialiser once, thread-safely).
/// libmosquitto is never de-initialised: other clients may still be alive when any one of them goes away.
enum MosquittoLibrary {
    static let initialised: Int32 = mosquitto_lib_init()

    static func ensureInitialised() throws {
        guard initialised == MosquittoReturn.success else {
            throw MQTTError(.protocolError, reasonCode: Int(initialised), "mosquitto_lib_init failed: \(MosquittoReturn.text(initialised))")
        }
    }
}

/// libmosquitto's `mosq_err_t` values as plain `Int32`, the type its functions return.
enum MosquittoReturn {
    static let success = Int32(MOSQ_ERR_SUCCESS.rawValue)
    static let noMemory = Int32(MOSQ_ERR_NOMEM.rawValue)
    static let protocolViolation = Int32(MOSQ_ERR_PROTOCOL.rawValue)
    static let invalid = Int32(MOSQ_ERR_INVAL.rawValue)
    static let noConnection = Int32(MOSQ_ERR_NO_CONN.rawValue)
    static let connectionLost = Int32(MOSQ_ERR_CONN_LOST.rawValue)
    static let tls = Int32(MOSQ_ERR_TLS.rawValue)
    static let payloadSize = Int32(MOSQ_ERR_PAYLOAD_SIZE.rawValue)
    static let errno = Int32(MOSQ_ERR_ERRNO.rawValue)
    static let lookup = Int32(MOSQ_ERR_EAI.rawValue)
    static let malformedUTF8 = Int32(MOSQ_ERR_MALFORMED_UTF8.rawValue)
    static let keepalive = Int32(MOSQ_ERR_KEEPALIVE.rawValue)
    static let tlsHandshake = Int32(MOSQ_ERR_TLS_HANDSHAKE.rawValue)

    static func text(_ rc: Int32) -> String { String(cString: mosquitto_strerror(rc)) }
}

/// The libmosquitto handle, its threaded network loop, and the bookkeeping that turns callbacks into resumed
/// continuations. Internal: `MQTTClient` is the public face, and no C type leaves this file.
///
/// Lifecycle (one connection per object): `idle → connecting → connected → closed`. Every path ends in `closed`:
/// a refused CONNACK, a TLS or network failure, the broker dropping us, `disconnect()`, or the owning client's
/// deinit. Closing finishes both streams and fails every outstanding operation.
///
/// Threads:
/// - one network thread per connection runs `mosquitto_loop_forever` and therefore every callback. It is
///   libmosquitto's threaded mode (`mosquitto_threaded_set(true)`, the same loop `mosquitto_loop_start` runs),
///   but on a thread we own: in 2.0.11 the `mosquitto_loop_start` thread can end on a TLS handshake failure
///   (e.g. server hostname mismatch) without calling the disconnect callback, which would leave `connect()`
///   waiting for its timeout. Owning the thread, we see `mosquitto_loop_forever`'s return code instead;
/// - a private serial `control` queue runs the calls that may block or must not overlap: the blocking
///   `mosquitto_connect_bind_v5` (TCP connect, TLS set-up) followed by starting the network thread, and later
///   `mosquitto_disconnect` + waiting for the network thread to end;
/// - callers' tasks call `mosquitto_publish_v5`/`subscribe_v5`/`unsubscribe_v5`, which libmosquitto documents
///   as safe while the threaded loop runs (it guards its queues with its own mutexes).
///
/// Callbacks reach this object through libmosquitto's userdata pointer (`Unmanaged.passUnretained`). That is
/// sound because the object cannot be deinitialised while the network thread runs: that thread's closure holds
/// a strong reference until `mosquitto_loop_forever` has returned, after which libmosquitto makes no more
/// callbacks. `mosquitto_destroy` runs in `deinit`, so only once no thread can be inside libmosquitto for us.
///
/// `@unchecked Sendable`: the only non-Sendable stored property is `handle` (an `OpaquePointer`). It is never
/// reassigned, and what is done with it from several threads is what libmosquitto's threaded mode supports
/// (see above); lifecycle calls are serialised on `control`. All Swift-side mutable state is in `state`, a `Mutex`.
final class MosquittoConnection: @unchecked Sendable {
    enum Key: Hashable, Sendable {
        case connect
        case message(Int32)
        case close(UInt64)
    }

    struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Int, any Error>
        var timer: Task<Void, Never>?
    }

    enum Phase: Sendable { case idle, connecting, connected, closed }

    struct State: ~Copyable {
        var phase: Phase = .idle
        /// `close()` was called (disconnect, deinit, or a failed connect).
        var closeRequested = false
        /// The control queue finished `disconnect` and the network thread ended.
        var closeDone = false
        var loopStarted = false
        var nextWaitID: UInt64 = 0
        var pending: [Key: Waiter] = [:]
        /// Results that arrived before their waiter registered (the PUBACK can beat the return of `mosquitto_publish_v5`).
        var early: [Key: Result<Int, MQTTError>] = [:]
        /// Message ids whose waiter gave up (timeout, cancellation): a late acknowledgement is dropped, not kept.
        var abandoned: Set<Key> = []
        var droppedMessages = 0
    }

    let configuration: MQTTConfiguration
    private let handle: OpaquePointer
    private let state = Mutex(State())
    private let control = DispatchQueue(label: "warden.mqtt.control")
    /// Signalled once when the network thread's `mosquitto_loop_forever` returns.
    private let loopEnded = DispatchSemaphore(value: 0)
    private let messageSink: AsyncStream<MQTTMessage>.Continuation
    private let disconnectionSink: AsyncStream<Int>.Continuation

    init(
        _ configuration: MQTTConfiguration,
        messages: AsyncStream<MQTTMessage>.Continuation,
        disconnections: AsyncStream<Int>.Continuation
    ) throws {
        try MosquittoLibrary.ensureInitialised()
        try Self.validate(configuration)
        guard let handle = configuration.clientID.withCString({ mosquitto_new($0, configuration.cleanStart, nil) }) else {
            throw MQTTError(.invalidArgument, "mosquitto_new failed for client id '\(configuration.clientID)' (errno \(errno))")
        }
        self.handle = handle
        self.configuration = configuration
        self.messageSink = messages
        self.disconnectionSink = disconnections
        do {
            try configure()
        } catch {
            // deinit still runs (all properties are initialised) and destroys the handle.
            throw error
        }
    }

    deinit {
        // The network thread (if any) held a strong reference until mosquitto_loop_forever returned.
        mosquitto_destroy(handle)
    }

    // MARK: Set-up

    private static func validate(_ c: MQTTConfiguration) throws {
        func noNUL(_ s: String, _ what: String) throws {
            if s.utf8.contains(0) { throw MQTTError(.invalidArgument, "\(what) contains a NUL byte") }
            if s.utf8.count > 65_535 { throw MQTTError(.invalidArgument, "\(what) is longer than 65535 bytes") }
        }
        try noNUL(c.host, "host")
        try noNUL(c.clientID, "client id")
        if c.host.isEmpty { throw MQTTError(.invalidArgument, "host is empty") }
        guard (1...65_535).contains(c.port) else { throw MQTTError(.invalidArgument, "port \(c.port) is not in 1…65535") }
        guard (5...65_535).contains(c.keepAlive) else {
            throw MQTTError(.invalidArgument, "keepAlive \(c.keepAlive) is not in 5…65535 seconds")
        }
        if let u = c.username { try noNUL(u, "username") }
        if let p = c.password {
            try noNUL(p, "password")
            if c.username == nil { throw MQTTError(.invalidArgument, "a password needs a username") }
        }
        if let tls = c.tls {
            for (path, what) in [(tls.caFile, "CA file"), (tls.certFile, "certificate file"), (tls.keyFile, "key file")] {
                try noNUL(path, what)
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw MQTTError(.invalidArgument, "\(what) '\(path)' is not a readable file")
                }
            }
        }
        guard c.connectTimeout > .zero, c.operationTimeout > .zero else {
            throw MQTTError(.invalidArgument, "timeouts must be positive")
        }
        guard c.messageBufferSize > 0 else { throw MQTTError(.invalidArgument, "messageBufferSize must be positive") }
        if let will = c.will { try validate(will) }
    }

    static func validate(_ m: MQTTMessage) throws {
        if m.topic.utf8.contains(0) { throw MQTTError(.invalidArgument, "topic contains a NUL byte") }
        guard mosquitto_pub_topic_check2(m.topic, m.topic.utf8.count) == MosquittoReturn.success, !m.topic.isEmpty else {
            throw MQTTError(.invalidArgument, "'\(m.topic)' is not a valid topic name (empty, wildcard, or too long)")
        }
        guard (0...2).contains(m.qos) else { throw MQTTError(.invalidArgument, "QoS \(m.qos) is not 0, 1 or 2") }
        guard m.payload.count <= MQTTMessage.maximumPayloadSize else {
            throw MQTTError(.invalidArgument, "payload of \(m.payload.count) bytes exceeds \(MQTTMessage.maximumPayloadSize)")
        }
        if let rt = m.responseTopic {
            guard !rt.isEmpty, !rt.utf8.contains(0), mosquitto_pub_topic_check2(rt, rt.utf8.count) == MosquittoReturn.success else {
                throw MQTTError(.invalidArgument, "response topic '\(rt)' is not a valid topic name")
            }
        }
        if let cd = m.correlationData, cd.count > 65_535 {
            throw MQTTError(.invalidArgument, "correlation data of \(cd.count) bytes exceeds 65535")
        }
    }

    /// The network thread: libmosquitto's blocking loop, which returns when the connection ends for good
    /// (we stop its automatic reconnection in didDisconnect).
    private func runNetworkLoop() {
        let rc = mosquitto_loop_forever(handle, Int32(configuration.keepAlive * 1000), 1)
        let savedErrno = errno
        let stillOpen = state.withLock { $0.phase == .connecting || $0.phase == .connected }
        if stillOpen {
            // The loop ended without a disconnect callback (e.g. a TLS handshake failure).
            didDisconnect(rc: rc == MosquittoReturn.success ? MosquittoReturn.connectionLost : rc, errno: savedErrno)
        }
        loopEnded.signal()
    }

    private func check(_ rc: Int32, _ what: String) throws {
        guard rc == MosquittoReturn.success else {
            let code: MQTTError.Code = rc == MosquittoReturn.tls ? .tls : .invalidArgument
            throw MQTTError(code, reasonCode: Int(rc), "\(what): \(MosquittoReturn.text(rc))")
        }
    }

    private func configure() throws {
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        // Threaded mode with an external thread: libmosquitto takes its locks and wakes the loop through its
        // socket pair when another thread queues a packet.
        try check(mosquitto_threaded_set(handle, true), "threaded mode")
        try check(mosquitto_int_option(handle, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5), "MQTT v5")
        if let tls = configuration.tls {
            // A NULL password callback would make OpenSSL prompt on the terminal for an encrypted key; this one
            // answers "no password", so an encrypted key fails fast with a TLS error instead.
            try check(
                mosquitto_tls_set(handle, tls.caFile, nil, tls.certFile, tls.keyFile) { _, _, _, _ in 0 },
                "TLS files")
            // cert_reqs 1 = SSL_VERIFY_PEER: the broker certificate must chain to caFile.
            try check(mosquitto_tls_opts_set(handle, 1, tls.minimumVersion.rawValue, nil), "TLS options")
            try check(mosquitto_tls_insecure_set(handle, tls.insecureSkipHostnameCheck), "TLS hostname check")
        }
        if let username = configuration.username {
            try check(mosquitto_username_pw_set(handle, username, configuration.password), "username")
        }
        if let will = configuration.will {
            var properties = try Self.properties(for: will)
            let rc = will.payload.withUnsafeBytes { bytes in
                mosquitto_will_set_v5(
                    handle, will.topic, Int32(bytes.count), bytes.baseAddress, Int32(will.qos), will.retain, properties)
            }
            // On success libmosquitto owns the property list; on failure it is ours to free.
            if rc != MosquittoReturn.success { mosquitto_property_free_all(&properties) }
            try check(rc, "Last Will")
        }
        // Diagnostics: with WARDEN_MQTT_DEBUG set, libmosquitto's own log lines go to standard error.
        if ProcessInfo.processInfo.environment["WARDEN_MQTT_DEBUG"] != nil {
            mosquitto_log_callback_set(handle) { _, _, level, text in
                if let text { FileHandle.standardError.write(Data("mosq[\(level)] \(String(cString: text))\n".utf8)) }
            }
        }
        mosquitto_connect_v5_callback_set(handle) { _, userdata, rc, _, _ in
            MosquittoConnection.from(userdata)?.didConnect(reasonCode: rc)
        }
        mosquitto_disconnect_v5_callback_set(handle) { _, userdata, rc, _ in
            let savedErrno = errno
            MosquittoConnection.from(userdata)?.didDisconnect(rc: rc, errno: savedErrno)
        }
        mosquitto_publish_v5_callback_set(handle) { _, userdata, mid, reasonCode, _ in
            MosquittoConnection.from(userdata)?.resolve(.message(mid), .success(Int(reasonCode)))
        }
        mosquitto_subscribe_v5_callback_set(handle) { _, userdata, mid, count, granted, _ in
            let result: Result<Int, MQTTError>
            if count >= 1, let granted {
                result = .success(Int(granted[0]))
            } else {
                result = .failure(MQTTError(.protocolError, "SUBACK without a reason code"))
            }
            MosquittoConnection.from(userdata)?.resolve(.message(mid), result)
        }
        mosquitto_unsubscribe_v5_callback_set(handle) { _, userdata, mid, _ in
            MosquittoConnection.from(userdata)?.resolve(.message(mid), .success(0))
        }
        mosquitto_message_v5_callback_set(handle) { _, userdata, message, properties in
            guard let message, let connection = MosquittoConnection.from(userdata) else { return }
            connection.didReceive(MosquittoConnection.message(from: message.pointee, properties: properties))
        }
    }

    private static func from(_ userdata: UnsafeMutableRawPointer?) -> MosquittoConnection? {
        guard let userdata else { return nil }
        return Unmanaged<MosquittoConnection>.fromOpaque(userdata).takeUnretainedValue()
    }

    /// Builds the v5 property list for a message; the caller frees it with `mosquitto_property_free_all`.
    private static func properties(for message: MQTTMessage) throws -> OpaquePointer? {
        var list: OpaquePointer? = nil
        if let responseTopic = message.responseTopic {
            let rc = mosquitto_property_add_string(&list, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), responseTopic)
            if rc != MosquittoReturn.success {
                mosquitto_property_free_all(&list)
                throw MQTTError(.invalidArgument, reasonCode: Int(rc), "response topic: \(MosquittoReturn.text(rc))")
            }
        }
        if let correlationData = message.correlationData {
            let rc = correlationData.withUnsafeBytes { bytes in
                mosquitto_property_add_binary(
                    &list, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), bytes.baseAddress, UInt16(bytes.count))
            }
            if rc != MosquittoReturn.success {
                mosquitto_property_free_all(&list)
                throw MQTTError(.invalidArgument, reasonCode: Int(rc), "correlation data: \(MosquittoReturn.text(rc))")
            }
        }
        return list
    }

    private static func message(from m: mosquitto_message, properties: OpaquePointer?) -> MQTTMessage {
        let topic = m.topic.map { String(cString: $0) } ?? ""
        var payload: [UInt8] = []
        if let bytes = m.payload, m.payloadlen > 0 {
            payload = [UInt8](UnsafeRawBufferPointer(start: bytes, count: Int(m.payloadlen)))
        }
        var responseTopic: String? = nil
        var text: UnsafeMutablePointer<CChar>? = nil
        if mosquitto_property_read_string(properties, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), &text, false) != nil,
            let text
        {
            responseTopic = String(cString: text)
            free(text)
        }
        var correlationData: [UInt8]? = nil
        var binary: UnsafeMutableRawPointer? = nil
        var length: UInt16 = 0
        if mosquitto_property_read_binary(
            properties, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), &binary, &length, false) != nil
        {
            correlationData = binary.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: Int(length))) } ?? []
            free(binary)
        }
        return MQTTMessage(
            topic: topic, payload: payload, qos: Int(m.qos), retain: m.retain,
            responseTopic: responseTopic, correlationData: correlationData)
    }

    // MARK: Operations

    var droppedMessageCount: Int { state.withLock { $0.droppedMessages } }

    var isConnected: Bool { state.withLock { $0.phase == .connected } }

    /// Waiters, early results and abandoned message ids currently held: 0 once nothing is outstanding.
    /// Lets tests prove that no continuation or bookkeeping entry leaks.
    var bookkeepingCount: Int { state.withLock { $0.pending.count + $0.early.count + $0.abandoned.count } }

    func connect() async throws {
        try state.withLock { s in
            guard s.phase == .idle, !s.closeRequested else {
                throw MQTTError(.invalidState, "connect() may be called once per MQTTClient; create a new client to reconnect")
            }
            s.phase = .connecting
        }
        control.async { [self] in
            guard state.withLock({ !$0.closeRequested }) else { return }
            // Blocking: DNS, TCP connect, TLS context set-up and the first handshake step. The CONNECT packet is
            // queued; the loop thread completes the handshake and delivers CONNACK to didConnect.
            let rc = mosquitto_connect_bind_v5(
                handle, configuration.host, Int32(configuration.port), Int32(configuration.keepAlive), nil, nil)
            let savedErrno = errno
            guard rc == MosquittoReturn.success else {
                state.withLock { $0.phase = .closed }
                resolve(.connect, .failure(Self.connectError(rc: rc, errno: savedErrno, tls: configuration.tls != nil)))
                return
            }
            state.withLock { $0.loopStarted = true }
            let network = Thread { [self] in runNetworkLoop() }
            network.name = "mosquitto loop"
            network.start()
        }
        do {
            _ = try await wait(
                for: .connect, timeout: configuration.connectTimeout,
                onTimeout: MQTTError(.timeout, "no CONNACK from \(configuration.host):\(configuration.port) within \(configuration.connectTimeout)"))
        } catch {
            close()
            throw error
        }
    }

    func publish(_ message: MQTTMessage) async throws -> Int {
        try Self.validate(message)
        try requireConnected()
        var properties = try Self.properties(for: message)
        defer { mosquitto_property_free_all(&properties) }
        var mid: Int32 = 0
        let rc = message.payload.withUnsafeBytes { bytes in
            mosquitto_publish_v5(
                handle, &mid, message.topic, Int32(bytes.count), bytes.baseAddress, Int32(message.qos), message.retain,
                properties)
        }
        try checkOperation(rc, "publish to '\(message.topic)'")
        return try await wait(
            for: .message(mid), timeout: configuration.operationTimeout,
            onTimeout: MQTTError(.timeout, "no acknowledgement for the publish to '\(message.topic)' within \(configuration.operationTimeout)"))
    }

    func subscribe(_ filter: String, qos: Int) async throws -> Int {
        guard !filter.isEmpty, !filter.utf8.contains(0), mosquitto_sub_topic_check2(filter, filter.utf8.count) == MosquittoReturn.success else {
            throw MQTTError(.invalidArgument, "'\(filter)' is not a valid topic filter")
        }
        guard (0...2).contains(qos) else { throw MQTTError(.invalidArgument, "QoS \(qos) is not 0, 1 or 2") }
        try requireConnected()
        var mid: Int32 = 0
        try checkOperation(mosquitto_subscribe_v5(handle, &mid, filter, Int32(qos), 0, nil), "subscribe to '\(filter)'")
        return try await wait(
            for: .message(mid), timeout: configuration.operationTimeout,
            onTimeout: MQTTError(.timeout, "no SUBACK for '\(filter)' within \(configuration.operationTimeout)"))
    }

    func unsubscribe(_ filter: String) async throws {
        guard !filter.isEmpty, !filter.utf8.contains(0), mosquitto_sub_topic_check2(filter, filter.utf8.count) == MosquittoReturn.success else {
            throw MQTTError(.invalidArgument, "'\(filter)' is not a valid topic filter")
        }
        try requireConnected()
        var mid: Int32 = 0
        try checkOperation(mosquitto_unsubscribe_v5(handle, &mid, filter, nil), "unsubscribe from '\(filter)'")
        _ = try await wait(
            for: .message(mid), timeout: configuration.operationTimeout,
            onTimeout: MQTTError(.timeout, "no UNSUBACK for '\(filter)' within \(configuration.operationTimeout)"))
    }

    /// Closes and waits (bounded by the operation timeout) until the network thread has ended.
    func disconnect() async {
        let id = state.withLock { s -> UInt64 in
            s.nextWaitID &+= 1
            return s.nextWaitID
        }
        close()
        _ = try? await wait(
            for: .close(id), timeout: configuration.operationTimeout, onTimeout: MQTTError(.timeout, "disconnect"))
    }

    private func requireConnected() throws {
        let phase = state.withLock { $0.phase }
        guard phase == .connected else {
            throw MQTTError(.disconnected, "the client is not connected")
        }
    }

    private func checkOperation(_ rc: Int32, _ what: String) throws {
        guard rc == MosquittoReturn.success else {
            let code: MQTTError.Code
            switch rc {
            case MosquittoReturn.noConnection, MosquittoReturn.connectionLost: code = .disconnected
            case MosquittoReturn.invalid, MosquittoReturn.payloadSize, MosquittoReturn.malformedUTF8: code = .invalidArgument
            default: code = .protocolError
            }
            throw MQTTError(code, reasonCode: Int(rc), "\(what): \(MosquittoReturn.text(rc))")
        }
    }

    static func connectError(rc: Int32, errno savedErrno: Int32, tls: Bool) -> MQTTError {
        switch rc {
        case MosquittoReturn.tls, MosquittoReturn.tlsHandshake:
            return MQTTError(.tls, reasonCode: Int(rc), "TLS failed (certificate, key, CA or handshake)")
        case MosquittoReturn.errno where savedErrno == EPROTO && tls:
            return MQTTError(.tls, reasonCode: Int(rc), "TLS handshake failed or was rejected by the broker")
        case MosquittoReturn.errno:
            return MQTTError(.network, reasonCode: Int(rc), String(cString: strerror(savedErrno)))
        case MosquittoReturn.lookup:
            return MQTTError(.network, reasonCode: Int(rc), "host name lookup failed")
        case MosquittoReturn.invalid:
            return MQTTError(.invalidArgument, reasonCode: Int(rc), MosquittoReturn.text(rc))
        case MosquittoReturn.connectionLost, MosquittoReturn.noConnection:
            return MQTTError(
                tls ? .tls : .network, reasonCode: Int(rc),
                tls ? "the broker closed the connection during the TLS handshake (client certificate rejected?)"
                    : "the broker closed the connection before CONNACK")
        default:
            return MQTTError(.protocolError, reasonCode: Int(rc), MosquittoReturn.text(rc))
        }
    }

    // MARK: Waiting

    /// Suspends until `key` is resolved by a callback, `timeout` passes, the task is cancelled, or the connection closes.
    private func wait(for key: Key, timeout: Duration, onTimeout: MQTTError) async throws -> Int {
        let id = state.withLock { s -> UInt64 in
            s.nextWaitID &+= 1
            return s.nextWaitID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
                let immediate: Result<Int, any Error>? = state.withLock { s in
                    if let result = s.early.removeValue(forKey: key) { return result.mapError { $0 } }
                    if case .close = key, s.closeDone { return .success(0) }
                    if Task.isCancelled {
                        if case .message = key { s.abandoned.insert(key) }
                        return .failure(CancellationError())
                    }
                    if case .close = key {} else if s.phase == .closed {
                        return .failure(MQTTError(.disconnected, "the connection closed"))
                    }
                    s.pending[key] = Waiter(id: id, continuation: continuation, timer: nil)
                    return nil
                }
                if let immediate {
                    continuation.resume(with: immediate)
                    return
                }
                let timer = Task { [self] in
                    do { try await Task.sleep(for: timeout) } catch { return }
                    fail(key, waitID: id, with: onTimeout)
                }
                state.withLock { s in
                    if s.pending[key]?.id == id { s.pending[key]?.timer = timer } else { timer.cancel() }
                }
            }
        } onCancel: {
            fail(key, waitID: id, with: CancellationError())
        }
    }

    /// Gives up on one waiter (timeout or cancellation); a late acknowledgement for it will be dropped.
    private func fail(_ key: Key, waitID: UInt64, with error: any Error) {
        let waiter = state.withLock { s -> Waiter? in
            guard let waiter = s.pending[key], waiter.id == waitID else { return nil }
            s.pending[key] = nil
            if case .message = key { s.abandoned.insert(key) }
            return waiter
        }
        guard let waiter else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume(throwing: error)
    }

    /// Delivers a result from a callback (loop thread) or the control queue.
    private func resolve(_ key: Key, _ result: Result<Int, MQTTError>) {
        let waiter = state.withLock { s -> Waiter? in
            if let waiter = s.pending.removeValue(forKey: key) { return waiter }
            if s.abandoned.remove(key) != nil { return nil }
            s.early[key] = result
            return nil
        }
        guard let waiter else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume(with: result.mapError { $0 })
    }

    // MARK: Callbacks (loop thread)

    private func didConnect(reasonCode: Int32) {
        if reasonCode == 0 {
            state.withLock { s in if s.phase == .connecting { s.phase = .connected } }
            resolve(.connect, .success(0))
        } else {
            state.withLock { $0.phase = .closed }
            let text = String(cString: mosquitto_reason_string(reasonCode))
            resolve(.connect, .failure(MQTTError(.connectionRefused, reasonCode: Int(reasonCode), "the broker refused the connection: \(text)")))
        }
    }

    private func didDisconnect(rc: Int32, errno savedErrno: Int32) {
        let (previous, closeRequested, waiters) = state.withLock { s -> (Phase, Bool, [Waiter]) in
            let previous = s.phase
            s.phase = .closed
            var waiters: [Waiter] = []
            for (key, waiter) in s.pending {
                if case .close = key { continue }
                waiters.append(waiter)
                s.pending[key] = nil
            }
            s.abandoned.removeAll()
            return (previous, s.closeRequested, waiters)
        }
        if !closeRequested {
            // Stop libmosquitto's loop from reconnecting on its own: this object is one connection.
            _ = mosquitto_disconnect(handle)
        }
        let error: MQTTError
        switch previous {
        case .connecting:
            error = Self.connectError(rc: rc, errno: savedErrno, tls: configuration.tls != nil)
            if waiters.isEmpty {
                // The connect waiter has not registered yet: resolve() keeps the result for it.
                resolve(.connect, .failure(error))
            }
        default:
            let reason = rc >= 128 ? String(cString: mosquitto_reason_string(rc)) : MosquittoReturn.text(rc)
            error = MQTTError(.disconnected, reasonCode: Int(rc), "the connection closed: \(reason)")
        }
        for waiter in waiters {
            waiter.timer?.cancel()
            waiter.continuation.resume(throwing: error)
        }
        if previous == .connected && !closeRequested {
            disconnectionSink.yield(Int(rc))
        }
        if previous != .idle {
            messageSink.finish()
            disconnectionSink.finish()
        }
    }

    private func didReceive(_ message: MQTTMessage) {
        if case .dropped = messageSink.yield(message) {
            state.withLock { $0.droppedMessages += 1 }
        }
    }

    // MARK: Closing

    /// Ends the connection: fails outstanding operations, finishes the streams and, on `control`, sends
    /// DISCONNECT and waits for the network thread to end. Idempotent; never blocks the caller.
    func close() {
        let waiters = state.withLock { s -> [Waiter]? in
            if s.closeRequested { return nil }
            s.closeRequested = true
            s.phase = .closed
            var waiters: [Waiter] = []
            for (key, waiter) in s.pending {
                if case .close = key { continue }
                waiters.append(waiter)
                s.pending[key] = nil
            }
            return waiters
        }
        guard let waiters else { return }
        for waiter in waiters {
            waiter.timer?.cancel()
            waiter.continuation.resume(throwing: MQTTError(.disconnected, "the client closed the connection"))
        }
        messageSink.finish()
        disconnectionSink.finish()
        control.async { [self] in
            _ = mosquitto_disconnect_v5(handle, 0, nil)
            if state.withLock({ $0.loopStarted }) {
                // The loop returns once DISCONNECT is written (or the socket is lost). A broker that stops reading
                // can delay this by up to the keep-alive interval; disconnect() does not wait that long.
                loopEnded.wait()
            }
            let closers = state.withLock { s -> [Waiter] in
                s.closeDone = true
                s.loopStarted = false
                var closers: [Waiter] = []
                for (key, waiter) in s.pending {
                    guard case .close = key else { continue }
                    closers.append(waiter)
                    s.pending[key] = nil
                }
                return closers
            }
            for waiter in closers {
                waiter.timer?.cancel()
                waiter.continuation.resume(returning: 0)
            }
        }
    }
}
