import ArgumentParser
import Foundation
import WardenCore
import WardenStore

extension WardenRoot.Device {
    /// `warden device telemetry ID [--since 3h] [--limit N] [--json]`
    struct Telemetry: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "telemetry",
            abstract: "Show the telemetry the authority received from a device, and its counters.",
            discussion: """
                'warden serve' stores every record of the device's telemetry batches (d/<id>/up/telemetry) once, keyed \
                by its queue id (boot epoch, sequence); redeliveries are dropped and counted as duplicates, malformed \
                batches are counted and not stored. Records are kept 7 days, at most 100,000 per device. Shows the \
                newest --limit records received within --since, oldest first.
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Device id.") var id: String
        @Option(help: "Only records received within this long (e.g. 30m, 3h, 2d).") var since: String?
        @Option(help: "Most records to show (1-100000).") var limit: Int = 100
        @Flag(help: "Machine-readable output.") var json = false

        struct Output: Encodable {
            let device: String
            let stored: Int
            let duplicates: Int
            let malformedBatches: Int
            let kept: Int
            let lastReceived: Date?
            let records: [Record]
            enum CodingKeys: String, CodingKey {
                case device, stored, duplicates, kept, records
                case malformedBatches = "malformed_batches"
                case lastReceived = "last_received"
            }
            struct Record: Encodable {
                let boot: UInt32
                let seq: UInt64
                let receivedAt: Date
                /// The record as the device queued it (UTF-8 text, normally one JSON object).
                let record: String?
                /// The record bytes in base64 when they are not UTF-8.
                let recordBase64: String?
                enum CodingKeys: String, CodingKey {
                    case boot, seq, record
                    case receivedAt = "received_at"
                    case recordBase64 = "record_base64"
                }
            }
        }

        func execute() async throws {
            let deviceID = try DeviceID(id)
            guard (1...100_000).contains(limit) else { throw WardenError.badInput("--limit must be 1-100000, not \(limit)") }
            let window = try since.map { try WardenDuration(parsing: $0) }
            let registry = try global.registry()
            guard try registry.device(deviceID.rawValue) != nil else {
                throw WardenError.notFound("device '\(deviceID)' is not enrolled")
            }
            let summary = try registry.telemetrySummary(of: deviceID.rawValue)
            let entries = try registry.telemetry(
                of: deviceID.rawValue, since: window.map { Date().addingTimeInterval(-$0.timeInterval) }, limit: limit)
            let records = entries.map { entry -> Output.Record in
                let text = String(decoding: entry.payload, as: UTF8.self)
                let valid = text.utf8.elementsEqual(entry.payload)
                return Output.Record(
                    boot: entry.bootEpoch, seq: entry.sequence, receivedAt: entry.receivedAt, record: valid ? text : nil,
                    recordBase64: valid ? nil : Data(entry.payload).base64EncodedString())
            }
            if json {
                Console.out(
                    try Console.json(
                        Output(
                            device: deviceID.rawValue, stored: summary?.stored ?? 0, duplicates: summary?.duplicates ?? 0,
                            malformedBatches: summary?.malformedBatches ?? 0, kept: summary?.kept ?? 0,
                            lastReceived: summary?.lastReceived, records: records)))
                return
            }
            for record in records {
                Console.out("\(Console.date(record.receivedAt)) \(deviceID)/\(record.boot)/\(record.seq) \(record.record ?? "base64:" + (record.recordBase64 ?? ""))")
            }
            Console.out(
                "telemetry: \(summary?.stored ?? 0) stored, \(summary?.duplicates ?? 0) duplicate(s) dropped, "
                    + "\(summary?.malformedBatches ?? 0) malformed batch(es), \(summary?.kept ?? 0) kept"
                    + (summary?.lastReceived.map { ", last received \(Console.date($0))" } ?? ", none received"))
        }
    }
}
