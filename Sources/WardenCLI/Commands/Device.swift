import ArgumentParser
import Foundation
import WardenAuthority
import WardenBroker
import WardenCore
import WardenPKI
import WardenStore

extension WardenRoot {
    /// `warden device …`
    struct Device: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "device",
            abstract: "Enroll, inspect and revoke devices.",
            subcommands: [Enroll.self, List.self, Show.self, Revoke.self, Token.self, Config.self, Telemetry.self, Timeline.self])
    }
}

typealias Device = WardenRoot.Device

extension WardenRoot.Device {
    /// `warden device enroll`
    struct Enroll: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "enroll",
            abstract: "Issue a device certificate from a CSR the device generated itself.",
            discussion: """
                Single: warden device enroll ID --csr FILE [--group G]... [--validity 90d] [--out FILE]
                Batch:  warden device enroll --batch FILE.csv [--jobs N] [--out-dir DIR] [--report FILE]
                A batch file has rows 'id,csr_path[,group1;group2]'. Re-running a batch skips rows already \
                enrolled with the same key.
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Device id (lowercase a-z, 0-9, '-', 3-63 characters).") var id: String?
        @Option(help: "PKCS#10 CSR file (PEM or DER).") var csr: String?
        @Option(help: "Group for policy; repeatable.") var group: [String] = []
        @Option(help: "Certificate validity, e.g. 90d (default from the device profile).") var validity: String?
        @Option(help: "Write the leaf + issuing chain PEM here (default stdout).") var out: String?
        @Option(help: "Batch CSV file: id,csr_path[,group].") var batch: String?
        @Option(help: "Batch: signing threads (default: all cores).") var jobs: Int?
        @Option(help: "Batch: also write each new chain to DIR/<id>.crt.pem (the registry keeps them: device show ID --pem).") var outDir: String?
        @Option(help: "Batch: per-row report CSV (default stdout).") var report: String?

        func validate() throws {
            if batch != nil {
                guard id == nil, csr == nil, out == nil else {
                    throw ValidationError("--batch cannot be combined with an ID, --csr or --out")
                }
                if let jobs, jobs < 1 || jobs > 256 { throw ValidationError("--jobs must be between 1 and 256") }
            } else {
                guard id != nil, csr != nil else { throw ValidationError("give an ID and --csr FILE, or --batch FILE.csv") }
                guard outDir == nil, report == nil, jobs == nil else {
                    throw ValidationError("--jobs, --out-dir and --report apply only to --batch")
                }
            }
        }

        func execute() async throws {
            let validity = try validity.map { try WardenDuration(parsing: $0) }
            if let batch {
                try await BatchEnroll(global: global, file: batch, jobs: jobs, outDir: outDir, report: report, validity: validity).run()
                return
            }
            guard let id, let csr else { return }
            let deviceID = try DeviceID(id)
            let csrBytes = try SecureFile.read(csr, limit: CSRValidator.maximumSize, what: "CSR file")
            let authority = try global.authority()
            // The chain file is staged before the registry write and committed after it: a failing output path
            // leaves no registry row, and a refused enrollment leaves no file.
            var staged: String?
            do {
                let issued = try authority.enroll(
                    deviceID, csr: csrBytes, csrSource: csr, groups: group, validity: validity, now: Date(),
                    beforeRecord: { issued in
                        if let out { staged = try SecureFile.stage(Array(issued.chainPEM.utf8), besides: out) }
                    })
                if let staged, let out {
                    try SecureFile.commit(staged: staged, to: out)
                    Console.error("enrolled \(deviceID) serial \(issued.serial); chain written to \(out)")
                } else {
                    Console.out(issued.chainPEM, terminator: "")
                }
                staged = nil
                for note in await BrokerPush.afterEnroll(authority: authority, deviceID: deviceID.rawValue, groups: group).notes {
                    Console.error(note)
                }
            } catch {
                if let staged { SecureFile.discard(staged: staged) }
                throw error
            }
        }
    }

    /// `warden device list`
    struct List: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List enrolled devices.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Only devices with this status: active or revoked.") var status: String?
        @Flag(help: "Machine-readable output.") var json = false

        func execute() async throws {
            let wanted = try status.map { text in
                guard let value = DeviceStatus(rawValue: text) else {
                    throw WardenError.badInput("status '\(text)' is not one of: \(DeviceStatus.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return value
            }
            let registry = try global.registry()
            let devices = try registry.devices(status: wanted)
            if json {
                Console.out(try Console.json(devices))
                return
            }
            Console.out("ID".padding(toLength: 24, withPad: " ", startingAt: 0) + "STATUS   GROUPS               CERT EXPIRES")
            for device in devices {
                Console.out(
                    device.id.padding(toLength: 24, withPad: " ", startingAt: 0)
                        + device.status.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
                        + (device.groups.isEmpty ? "-" : device.groups.joined(separator: ",")).padding(toLength: 21, withPad: " ", startingAt: 0)
                        + Console.date(device.certificateNotAfter))
            }
            Console.error("\(devices.count) device(s)")
        }
    }

    /// `warden device show`
    struct Show: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one device and its certificates.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Device id.") var id: String
        @Flag(help: "Machine-readable output.") var json = false
        @Flag(help: "Print the device's current certificate chain (leaf + issuing CA) as PEM.") var pem = false

        struct Output: Encodable {
            let device: DeviceRecord
            let certificates: [Certificate]
            /// Whether the device holds a broker session now (from its birth / Last Will, kept by `warden serve`).
            let connected: Bool
            /// When a presence message of the device was last received; absent if it never announced itself.
            let lastSeen: Date?
            /// Telemetry records the authority keeps for the device (`warden device telemetry`).
            let telemetryRecords: Int
            /// When its telemetry was last stored; absent if none was.
            let lastTelemetry: Date?
            enum CodingKeys: String, CodingKey {
                case device, certificates, connected
                case lastSeen = "last_seen"
                case telemetryRecords = "telemetry_records"
                case lastTelemetry = "last_telemetry"
            }
            struct Certificate: Encodable {
                let serial: String
                let notBefore: Date
                let notAfter: Date
                let sha256: String
                let revoked: Bool
                let revocationReason: String?
            }
        }

        func execute() async throws {
            let deviceID = try DeviceID(id)
            let registry = try global.registry()
            guard let device = try registry.device(deviceID.rawValue) else {
                throw WardenError.notFound("device '\(deviceID)' is not enrolled")
            }
            let certificates = try registry.certificates(of: deviceID.rawValue).map {
                Output.Certificate(
                    serial: $0.serial, notBefore: $0.notBefore, notAfter: $0.notAfter, sha256: $0.sha256,
                    revoked: $0.revokedAt != nil,
                    revocationReason: $0.revocationReason.flatMap { RevocationReason(rawValue: $0)?.name })
            }
            if pem {
                guard let current = try registry.certificates(of: deviceID.rawValue).first(where: { $0.serial == device.currentSerial }) else {
                    throw WardenError.internal("device '\(deviceID)' has no current certificate")
                }
                Console.out(try CertificateAuthority.chainPEM(leafDER: Array(current.der), layout: global.wardenHome.ca), terminator: "")
                return
            }
            let presence = try registry.presence(of: deviceID.rawValue)
            let telemetry = try registry.telemetrySummary(of: deviceID.rawValue)
            if json {
                Console.out(
                    try Console.json(
                        Output(
                            device: device, certificates: certificates, connected: presence?.connected ?? false, lastSeen: presence?.lastSeen,
                            telemetryRecords: telemetry?.kept ?? 0, lastTelemetry: telemetry?.lastReceived)))
                return
            }
            Console.out("device:   \(device.id)")
            Console.out("status:   \(device.status.rawValue)\(device.revokedAt.map { " since \(Console.date($0))" } ?? "")")
            Console.out("groups:   \(device.groups.isEmpty ? "-" : device.groups.joined(separator: ", "))")
            Console.out("enrolled: \(Console.date(device.createdAt))")
            Console.out("key:      sha256:\(device.publicKeyFingerprint)")
            Console.out(
                "broker:   \(presence?.connected == true ? "connected" : "not connected")"
                    + (presence.map { ", last seen \(Console.date($0.lastSeen))" } ?? ", never seen"))
            for certificate in certificates {
                Console.out(
                    "cert:     serial \(certificate.serial) valid \(Console.date(certificate.notBefore)) .. \(Console.date(certificate.notAfter))"
                        + (certificate.revoked ? " REVOKED (\(certificate.revocationReason ?? "unspecified"))" : ""))
            }
        }
    }

    /// `warden device token`
    struct Token: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "token",
            abstract: "Issue a one-time EST bootstrap token for a device that is not enrolled yet.",
            discussion: "The device enrolls itself with HTTP Basic auth ID:TOKEN on /.well-known/est/simpleenroll. The token is shown once; only its hash is stored.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Device id.") var id: String
        @Option(help: "Lifetime of the token.") var ttl: String = "24h"

        func execute() async throws {
            let deviceID = try DeviceID(id)
            let lifetime = try WardenDuration(parsing: ttl)
            let token = try global.authority().issueBootstrapToken(deviceID, lifetime: lifetime, now: Date())
            Console.out(token)
            Console.error("one-time token for \(deviceID), valid \(lifetime); it is not stored and cannot be shown again")
        }
    }

    /// `warden device revoke`
    struct Revoke: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Revoke a device: registry and CRL in one step.",
            discussion: "Reasons (RFC 5280 §5.3.1): \(Revoke.reasons.map(\.name).joined(separator: ", ")).")

        /// Reasons a complete CRL may carry (removeFromCRL belongs to delta CRLs only).
        static let reasons = RevocationReason.allCases.filter(\.isValidInCompleteCRL)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Device id.") var id: String
        @Option(help: "Revocation reason, e.g. keyCompromise.") var reason: String

        func execute() async throws {
            let deviceID = try DeviceID(id)
            guard let code = RevocationReason(name: reason), code.isValidInCompleteCRL else {
                throw WardenError.badInput(
                    "reason '\(reason)' is not one of: \(Self.reasons.map(\.name).joined(separator: ", "))")
            }
            let authority = try global.authority()
            let now = Date()
            let result = try authority.revoke(deviceID, reason: code, now: now)
            Console.out(
                "revoked \(deviceID) (\(code.name)): \(result.serials.count) certificate(s); CRL #\(result.crlNumber) written to \(result.crlPath)")
            do {
                for note in try await BrokerPush.afterRevoke(authority: authority, deviceID: deviceID.rawValue, now: now).notes {
                    Console.out(note)
                }
            } catch let error as WardenError {
                throw WardenError.storage("\(deviceID) is revoked in the registry and the CRL, but the broker was not updated: \(error.message)")
            }
        }
    }
}
