import Foundation
import WardenCore
import WardenMQTT
import WardenPKI
import WardenTestSupport
import WardenUpdate

/// A simulated device downloading one image over MQTT with `BlockDownload`, as the agent will: subscribe to its
/// block topic, ask for its missing-block bitmap, verify each block on arrival, ask again after `done` or silence.
struct OTATestDownloader {
    /// What happened during one download.
    struct Report: Sendable {
        var device: String
        var stored = 0
        var duplicates = 0
        /// Each rejected block: the index it claimed and how many blocks were still missing at that moment.
        var rejections: [(index: Int?, missingAtThatTime: Int, reason: String)] = []
        var requests = 0
        var statuses: [OTAWire.StatusCode] = []
        var dropped = 0
        var seconds = 0.0
    }

    enum Event: Sendable {
        case message(MQTTMessage)
        case tick
        case closed
    }

    let device: String
    let certificate: String
    let key: String
    let caFile: String
    let port: Int
    let target: BlockTarget
    let destination: String
    /// Called once after `after` blocks were stored (to inject a fault mid-download).
    var midway: (after: Int, action: @Sendable () async throws -> Void)?
    var deadline: Duration = .seconds(240)

    /// Downloads the image to `destination` and finishes it (whole-image hash, fsync, rename).
    func run() async throws -> Report {
        var report = Report(device: device)
        let started = ContinuousClock.now
        let client = try MQTTClient(MQTTConfiguration(
            host: "127.0.0.1", port: port, clientID: device,
            tls: MQTTTLS(caFile: caFile, certFile: certificate, keyFile: key), connectTimeout: .seconds(20),
            operationTimeout: .seconds(30), messageBufferSize: 50_000))
        try await client.connect()
        let granted = try await client.subscribe(OTATopics.blocks(device: device), qos: 1)
        guard granted < 0x80 else { throw TestSupportError("\(device): block topic subscription refused (\(granted))") }

        let (events, sink) = AsyncStream<Event>.makeStream()
        let messages = client.messages
        let forwarder = Task {
            for await message in messages { sink.yield(.message(message)) }
            sink.yield(.closed)
        }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                sink.yield(.tick)
            }
        }
        defer {
            forwarder.cancel()
            ticker.cancel()
            sink.finish()
        }

        let download = try BlockDownload(target: target, destination: destination)
        var requestID: UInt64 = 0
        var lastProgress = ContinuousClock.now
        var doneAt: ContinuousClock.Instant?
        var notBefore = ContinuousClock.now
        var midwayDone = midway == nil

        func ask() async throws {
            requestID += 1
            report.requests += 1
            guard let request = download.request(requestID: requestID) else { return }
            _ = try await client.publish(MQTTMessage(topic: OTATopics.request(device: device), payload: try request.encoded(), qos: 1))
            lastProgress = .now
            doneAt = nil
        }

        try await ask()
        for await event in events {
            guard ContinuousClock.now - started < deadline else {
                throw TestSupportError("\(device): download not complete within \(deadline): \(download.missingCount) blocks missing")
            }
            switch event {
            case .closed:
                throw TestSupportError("\(device): connection closed with \(download.missingCount) blocks missing")
            case .tick:
                let now = ContinuousClock.now
                let quietAfterDone = doneAt.map { now - $0 > .milliseconds(400) && now - lastProgress > .milliseconds(400) } ?? false
                if now >= notBefore, quietAfterDone || now - lastProgress > .seconds(5) { try await ask() }
            case .message(let message):
                switch try OTAWire.Response(decoding: message.payload) {
                case .block(let block):
                    switch download.accept(block) {
                    case .stored:
                        report.stored += 1
                        lastProgress = .now
                    case .duplicate:
                        report.duplicates += 1
                    case .rejected(let index, let reason):
                        report.rejections.append((index, download.missingCount, reason))
                    }
                case .status(let status):
                    report.statuses.append(status.code)
                    switch status.code {
                    case .done where status.requestID == requestID: doneAt = .now
                    case .done: break
                    case .rateLimited, .busy: notBefore = .now + .milliseconds(Int(status.retryAfterMilliseconds))
                    default: throw TestSupportError("\(device): the service answered \(status.code)")
                    }
                }
                if !midwayDone, let midway, report.stored >= midway.after {
                    midwayDone = true
                    try await midway.action()
                }
            }
            if download.isComplete { break }
        }
        report.dropped = client.droppedMessageCount
        await client.disconnect()
        try download.finish()
        report.seconds = Double((ContinuousClock.now - started).components.seconds)
            + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
        return report
    }
}
