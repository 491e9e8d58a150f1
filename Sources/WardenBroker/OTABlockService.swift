import Foundation
import WardenCore
import WardenMQTT
import WardenPKI
import WardenUpdate

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Serves firmware blocks over MQTT (`firmware/OTA-PROTOCOL.md`): devices publish block requests on
/// `d/<id>/up/ota/get`, the service answers on `d/<id>/down/ota/block` with one message per block, each carrying
/// the Merkle proof that lets the device verify it alone, then a `done` status.
///
/// Images are read from one directory where they are stored under their SHA-256 (lowercase hex), as
/// `warden firmware add` stores them. An image is hashed in full when first requested: a file whose content does
/// not match its name is never served. Each block is re-checked against its leaf hash just before it is sent, so
/// storage corruption after indexing is refused (`unavailable`) rather than sent.
///
/// Limits, so that a retry storm cannot flood the broker: a per-device token bucket on requests (excess requests
/// are dropped, with at most one `rate_limited` answer per device per second); at most
/// ``Limits/maxBlocksPerRequest`` blocks per request; one queue per device (a new request supersedes the device's
/// pending one, so retries never stack); at most ``Limits/maxQueuedDevices`` devices queued at once (`busy`
/// otherwise); a bounded window of concurrent publishes, served round-robin across devices.
public actor OTABlockService {
    /// The service's tunables.
    public struct Limits: Sendable {
        /// Most blocks sent for one request; the device asks again for the rest after `done`.
        public var maxBlocksPerRequest = 1024
        /// Sustained requests per second per device.
        public var requestsPerSecond = 4.0
        /// Requests a device may send in a burst.
        public var requestBurst = 8.0
        /// Most devices with blocks queued at once.
        public var maxQueuedDevices = 10_000
        /// Concurrent publishes to the broker.
        public var publishWindow = 16
        /// QoS of block and status messages (1: the broker acknowledges each, which paces the service).
        public var qos = 1
        /// Images kept open and indexed.
        public var maxCachedImages = 8

        /// The defaults.
        public init() {}
    }

    /// Whether a device may fetch an image.
    public enum Decision: Sendable, Equatable {
        /// Serve it.
        case allow
        /// Refuse, with a reason for the log.
        case deny(String)
    }

    /// Decides whether `device` may fetch the image with SHA-256 `target`.
    public typealias Authorizer = @Sendable (_ device: String, _ target: [UInt8]) async -> Decision
    /// Resolves `name@version` to an image SHA-256 for `device`, or nil if unknown.
    public typealias Resolver = @Sendable (_ device: String, _ name: String, _ version: String) async -> [UInt8]?
    /// Handles a status report published on `d/<device>/up/ota/status` (after the same rate limit as requests).
    public typealias StatusHandler = @Sendable (_ device: String, _ payload: [UInt8]) async -> Void

    /// Counters since start.
    public struct Statistics: Sendable, Equatable {
        /// Requests received (any outcome).
        public var requests = 0
        /// Requests dropped by the rate limit.
        public var rateLimited = 0
        /// Requests answered with a refusal (bad request, not found, forbidden, unavailable, busy).
        public var refused = 0
        /// Blocks published.
        public var blocksSent = 0
        /// Payload bytes published (blocks and status messages).
        public var bytesSent = 0
        /// Blocks withheld because the stored image no longer matched its index.
        public var corruptBlocks = 0
    }

    /// An indexed, open image; immutable, shared with the publishing tasks.
    final class Image: Sendable {
        let sha256: [UInt8]
        let index: BlockIndex
        let fd: Int32

        init(path: String, sha256: [UInt8], blockSize: Int) throws {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw WardenError.notFound("image '\(path)' cannot be opened") }
            do {
                var hasher = IncrementalSHA256()
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                var offset: off_t = 0
                while true {
                    let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, offset) }
                    if got < 0, errno == EINTR { continue }
                    guard got >= 0 else { throw WardenError.storage("image '\(path)' cannot be read") }
                    if got == 0 { break }
                    buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
                    offset += off_t(got)
                }
                guard hasher.finalize() == sha256 else {
                    throw WardenError(.verificationFailed, "image '\(path)' does not match its SHA-256 name")
                }
                index = try BlockIndex(contentsOf: path, blockSize: blockSize)
            } catch {
                close(fd)
                throw error
            }
            self.fd = fd
            self.sha256 = sha256
        }

        deinit { close(fd) }

        /// The bytes of block `number`, or nil if they cannot be read or no longer match the index.
        func block(_ number: Int) -> [UInt8]? {
            let range = index.byteRange(ofBlock: number)
            var bytes = [UInt8](repeating: 0, count: range.count)
            var done = 0
            while done < range.count {
                let got = bytes.withUnsafeMutableBytes {
                    pread(fd, $0.baseAddress!.advanced(by: done), range.count - done, off_t(range.lowerBound + done))
                }
                if got < 0, errno == EINTR { continue }
                guard got > 0 else { return nil }
                done += got
            }
            let leaf = bytes.withUnsafeBytes { BlockIndex.leafHash($0) }
            return leaf[...] == index.leafHash(ofBlock: number) ? bytes : nil
        }
    }

    struct ImageKey: Hashable {
        let sha256: [UInt8]
        let blockSize: Int
    }

    /// The blocks still to send to one device.
    struct Queue {
        /// Unique per queue (request ids are the device's choice and may repeat).
        let generation: UInt64
        let requestID: UInt64
        let image: Image
        let blocks: [UInt32]
        var next = 0
        /// Blocks handed to the publisher and not yet acknowledged by the broker: `done` waits for them, so it
        /// reaches the device after the request's last block.
        var inFlight = 0
    }

    /// One unit of work for the publisher.
    enum Job: Sendable {
        case block(device: String, generation: UInt64, requestID: UInt64, image: Image, number: Int)
        case status(device: String, message: OTAWire.StatusMessage)
    }

    struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
        var lastRefusal: ContinuousClock.Instant?
    }

    let configuration: MQTTConfiguration
    let imageDirectory: String
    let limits: Limits
    let authorize: Authorizer
    let resolve: Resolver
    let onStatus: StatusHandler?
    let onEvent: @Sendable (String) -> Void

    var images: [ImageKey: Task<Loaded, Never>] = [:]
    var imageUse: [ImageKey] = []
    var queues: [String: Queue] = [:]
    var ring: [String] = []
    var cursor = 0
    var statuses: [Job] = []
    var generations: UInt64 = 0
    var buckets: [String: Bucket] = [:]
    var stats = Statistics()
    var wake: AsyncStream<Void>.Continuation?
    var connectedClient: MQTTClient?

    /// Creates a service that will connect with `configuration` (a Warden service identity allowed to subscribe to
    /// `d/+/up/ota/get` and publish to `d/+/down/ota/#`).
    /// - Parameters:
    ///   - imageDirectory: where images are stored as `<sha256 hex>` (`$WARDEN_HOME/firmware`).
    ///   - authorize: called once per accepted request; default allows every device.
    ///   - resolve: maps `name@version` requests to an image hash; default resolves nothing (`not_found`).
    ///   - onStatus: if given, the service also subscribes to `d/+/up/ota/status` and hands each report to it.
    ///   - onEvent: one line per noteworthy event (refusals, corrupt images, reconnects), for the log.
    public init(
        configuration: MQTTConfiguration, imageDirectory: String, limits: Limits = Limits(),
        authorize: @escaping Authorizer = { _, _ in .allow },
        resolve: @escaping Resolver = { _, _, _ in nil },
        onStatus: StatusHandler? = nil,
        onEvent: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.onStatus = onStatus
        self.configuration = configuration
        self.imageDirectory = imageDirectory
        self.limits = limits
        self.authorize = authorize
        self.resolve = resolve
        self.onEvent = onEvent
    }

    /// Counters since start.
    public var statistics: Statistics { stats }

    /// Whether the service is connected and subscribed.
    public var isConnected: Bool { connectedClient?.isConnected ?? false }

    /// Connects, subscribes and serves until cancelled; reconnects (after `retryDelay`) whenever the broker goes
    /// away, dropping queued work (devices ask again).
    public func run(retryDelay: Duration = .seconds(1)) async throws {
        while !Task.isCancelled {
            do {
                try await serveOnce()
            } catch is CancellationError {
                break
            } catch {
                onEvent("OTA block service: \(error); reconnecting")
            }
            reset()
            try await Task.sleep(for: retryDelay)
        }
    }

    /// One connection's lifetime.
    func serveOnce() async throws {
        let client = try MQTTClient(configuration)
        try await client.connect()
        defer { connectedClient = nil }
        let granted = try await client.subscribe(OTATopics.requestFilter, qos: 1)
        guard granted < 0x80 else {
            await client.disconnect()
            throw WardenError.policy(
                "the broker refused \(configuration.clientID) the subscription to \(OTATopics.requestFilter) (reason \(granted)); regenerate the broker setup with 'warden broker config'")
        }
        if onStatus != nil {
            let status = try await client.subscribe(OTATopics.statusFilter, qos: 1)
            guard status < 0x80 else {
                await client.disconnect()
                throw WardenError.policy("the broker refused \(configuration.clientID) the subscription to \(OTATopics.statusFilter) (reason \(status))")
            }
        }
        connectedClient = client
        onEvent("OTA block service subscribed to \(OTATopics.requestFilter)")
        let (signals, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        wake = continuation
        let messages = client.messages
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                for await message in messages { await self.handle(message, client: client) }
                throw WardenError.storage("the broker closed the OTA block service's connection")
            }
            group.addTask { [self] in
                try await self.publishLoop(client: client, signals: signals)
            }
            defer { group.cancelAll() }
            try await group.next()
        }
        await client.disconnect()
    }

    func reset() {
        queues.removeAll()
        ring.removeAll()
        statuses.removeAll()
        wake?.finish()
        wake = nil
    }

    /// Handles one request message.
    func handle(_ message: MQTTMessage, client: MQTTClient) async {
        let statusDevice = OTATopics.device(in: message.topic, leaf: "status")
        guard let device = OTATopics.device(in: message.topic, leaf: "get") ?? statusDevice else { return }
        stats.requests += 1
        // The rate limit comes first, so a storm of garbage costs one dictionary lookup per message.
        let now = ContinuousClock.now
        var bucket = buckets[device] ?? Bucket(tokens: limits.requestBurst, updated: now)
        let elapsed = Double((now - bucket.updated).components.attoseconds) / 1e18 + Double((now - bucket.updated).components.seconds)
        bucket.tokens = min(limits.requestBurst, bucket.tokens + elapsed * limits.requestsPerSecond)
        bucket.updated = now
        guard bucket.tokens >= 1 else {
            stats.rateLimited += 1
            if bucket.lastRefusal.map({ now - $0 >= .seconds(1) }) ?? true {
                bucket.lastRefusal = now
                let wait = UInt32(max(1, (1 - bucket.tokens) / limits.requestsPerSecond * 1000))
                statuses.append(.status(device: device, message: OTAWire.StatusMessage(
                    requestID: 0, targetSHA256: nil, code: .rateLimited, retryAfterMilliseconds: wait)))
                wake?.yield()
            }
            buckets[device] = bucket
            return
        }
        bucket.tokens -= 1
        buckets[device] = bucket
        if buckets.count > 4 * limits.maxQueuedDevices { pruneBuckets(now: now) }
        if statusDevice != nil {
            await onStatus?(device, message.payload)
            return
        }

        let request: OTAWire.BlockRequest
        do {
            request = try OTAWire.BlockRequest(decoding: message.payload)
        } catch {
            return refuse(device, requestID: 0, target: nil, .badRequest, "\(error)")
        }
        let hash: [UInt8]
        switch request.target {
        case .sha256(let value): hash = value
        case .nameVersion(let name, let version):
            guard let value = await resolve(device, name, version) else {
                return refuse(device, requestID: request.requestID, target: nil, .notFound, "no image for \(name)@\(version)")
            }
            hash = value
        }
        if case .deny(let reason) = await authorize(device, hash) {
            return refuse(device, requestID: request.requestID, target: hash, .forbidden, reason)
        }
        let image: Image
        switch await load(sha256: hash, blockSize: request.blockSize) {
        case .image(let loaded): image = loaded
        case .missing: return refuse(device, requestID: request.requestID, target: hash, .notFound, "no image \(Digest.hex(hash))")
        case .corrupt: return refuse(device, requestID: request.requestID, target: hash, .unavailable, "image \(Digest.hex(hash)) fails its integrity check")
        }
        guard request.selection.upperBound <= UInt64(image.index.blockCount) else {
            return refuse(device, requestID: request.requestID, target: hash, .badRequest, "blocks beyond the image's \(image.index.blockCount)")
        }
        guard queues[device] != nil || queues.count < limits.maxQueuedDevices else {
            stats.refused += 1
            statuses.append(.status(device: device, message: OTAWire.StatusMessage(
                requestID: request.requestID, targetSHA256: hash, code: .busy, retryAfterMilliseconds: 1000)))
            wake?.yield()
            return
        }
        let blocks = request.selection.blocks(limit: limits.maxBlocksPerRequest)
        if queues[device] == nil { ring.append(device) }
        generations += 1
        queues[device] = Queue(generation: generations, requestID: request.requestID, image: image, blocks: blocks)
        wake?.yield()
    }

    func refuse(_ device: String, requestID: UInt64, target: [UInt8]?, _ code: OTAWire.StatusCode, _ reason: String) {
        stats.refused += 1
        onEvent("OTA request from \(device) refused (\(code)): \(reason)")
        statuses.append(.status(device: device, message: OTAWire.StatusMessage(requestID: requestID, targetSHA256: target, code: code)))
        wake?.yield()
    }

    func pruneBuckets(now: ContinuousClock.Instant) {
        buckets = buckets.filter { now - $0.value.updated < .seconds(60) }
    }

    /// What loading an image gave.
    enum Loaded: Sendable {
        case image(Image)
        case missing
        case corrupt
    }

    /// The indexed image, loading it once (concurrent requests share the load).
    func load(sha256: [UInt8], blockSize: Int) async -> Loaded {
        let key = ImageKey(sha256: sha256, blockSize: blockSize)
        if let task = images[key] {
            imageUse.removeAll { $0 == key }
            imageUse.append(key)
            return await task.value
        }
        let path = imageDirectory + "/" + Digest.hex(sha256)
        let log = onEvent
        let task = Task.detached { () -> Loaded in
            do {
                return .image(try Image(path: path, sha256: sha256, blockSize: blockSize))
            } catch let error as WardenError where error.code == .verificationFailed {
                log("OTA image \(Digest.hex(sha256)) not served: \(error)")
                return .corrupt
            } catch let error as WardenError where error.code != .notFound {
                log("OTA image \(Digest.hex(sha256)) not served: \(error)")
                return .missing
            } catch {
                return .missing
            }
        }
        images[key] = task
        imageUse.append(key)
        while imageUse.count > limits.maxCachedImages { images[imageUse.removeFirst()] = nil }
        let loaded = await task.value
        if case .image = loaded {} else {
            images[key] = nil
            imageUse.removeAll { $0 == key }
        }
        return loaded
    }

    /// The next job, round-robin across devices; status answers first. A drained queue yields its `done` once
    /// all its blocks were acknowledged by the broker.
    func nextJob() -> Job? {
        if !statuses.isEmpty { return statuses.removeFirst() }
        var scanned = 0
        while scanned < ring.count {
            if cursor >= ring.count { cursor = 0 }
            let device = ring[cursor]
            guard var queue = queues[device] else {
                ring.remove(at: cursor)
                continue
            }
            if queue.next >= queue.blocks.count {
                if queue.inFlight == 0 {
                    queues[device] = nil
                    ring.remove(at: cursor)
                    return .status(device: device, message: OTAWire.StatusMessage(
                        requestID: queue.requestID, targetSHA256: queue.image.sha256, code: .done, count: UInt32(queue.blocks.count)))
                }
                cursor += 1
                scanned += 1
                continue
            }
            let number = Int(queue.blocks[queue.next])
            queue.next += 1
            queue.inFlight += 1
            queues[device] = queue
            cursor += 1
            return .block(device: device, generation: queue.generation, requestID: queue.requestID, image: queue.image, number: number)
        }
        return nil
    }

    /// The broker acknowledged a block (or it was given up).
    func blockFinished(device: String, generation: UInt64) {
        guard var queue = queues[device], queue.generation == generation else { return }
        queue.inFlight -= 1
        queues[device] = queue
        if queue.inFlight == 0, queue.next >= queue.blocks.count { wake?.yield() }
    }

    /// A stored block no longer matches its index: stop serving that image.
    func imageCorrupted(_ image: Image, device: String, requestID: UInt64, number: Int) {
        stats.corruptBlocks += 1
        onEvent("OTA image \(Digest.hex(image.sha256)) block \(number) does not match its index; the image is withdrawn")
        for (key, _) in images where key.sha256 == image.sha256 { images[key] = nil }
        imageUse.removeAll { $0.sha256 == image.sha256 }
        var answered = false
        for (other, queue) in queues where queue.image === image {
            queues[other] = nil
            answered = answered || other == device
            statuses.append(.status(device: other, message: OTAWire.StatusMessage(
                requestID: queue.requestID, targetSHA256: image.sha256, code: .unavailable)))
        }
        if !answered {
            statuses.append(.status(device: device, message: OTAWire.StatusMessage(
                requestID: requestID, targetSHA256: image.sha256, code: .unavailable)))
        }
        wake?.yield()
    }

    func sent(bytes: Int, block: Bool) {
        stats.bytesSent += bytes
        if block { stats.blocksSent += 1 }
    }

    /// Publishes jobs with at most ``Limits/publishWindow`` publishes outstanding.
    func publishLoop(client: MQTTClient, signals: AsyncStream<Void>) async throws {
        let window = max(1, limits.publishWindow)
        let qos = limits.qos
        try await withThrowingTaskGroup(of: Void.self) { group in
            var outstanding = 0
            var iterator = signals.makeAsyncIterator()
            while !Task.isCancelled {
                guard let job = nextJob() else {
                    guard await iterator.next() != nil else { return }
                    continue
                }
                if outstanding >= window {
                    try await group.next()
                    outstanding -= 1
                }
                outstanding += 1
                group.addTask { [self] in
                    switch job {
                    case .block(let device, let generation, let requestID, let image, let number):
                        guard let data = image.block(number) else {
                            await self.imageCorrupted(image, device: device, requestID: requestID, number: number)
                            return
                        }
                        let header = OTAWire.BlockHeader(
                            requestID: requestID, targetSHA256: image.sha256, blockSize: image.index.blockSize,
                            blockIndex: UInt32(number), blockCount: UInt32(image.index.blockCount))
                        let payload = try data.withUnsafeBytes {
                            try OTAWire.BlockMessage.encode(header: header, proof: image.index.proof(forBlock: number), data: $0)
                        }
                        _ = try await client.publish(MQTTMessage(topic: OTATopics.blocks(device: device), payload: payload, qos: qos))
                        await self.sent(bytes: payload.count, block: true)
                        await self.blockFinished(device: device, generation: generation)
                    case .status(let device, let message):
                        let payload = message.encoded()
                        _ = try await client.publish(MQTTMessage(topic: OTATopics.blocks(device: device), payload: payload, qos: qos))
                        await self.sent(bytes: payload.count, block: false)
                    }
                }
            }
        }
    }
}
