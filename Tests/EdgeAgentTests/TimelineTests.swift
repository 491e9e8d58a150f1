import Foundation
import Testing
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `warden device timeline` against a real `warden serve --broker` (Mosquitto) and a real `warden-agent run`.
@Suite("warden device timeline: the device's flight recorder merged with the authority's events", .serialized)
struct TimelineTests {
    struct Output: Decodable {
        let device: String
        let reachable: Bool
        let complete: Bool
        let note: String?
        let events: [Event]
    }

    struct Event: Decodable {
        let time: String
        let unix_ms: Int64
        let source: String
        let kind: String
        let subsystem: String
        let message: String
    }

    /// The text lines as (time, source, kind, rest).
    static func lines(_ stdout: String) -> [(time: String, source: String, kind: String, rest: String)] {
        stdout.split(separator: "\n").map { line in
            let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true).map(String.init)
            return (fields[0], fields.count > 1 ? fields[1] : "", fields.count > 2 ? fields[2] : "", fields.count > 3 ? fields[3].trimmingCharacters(in: .whitespaces) : "")
        }
    }

    @Test("offline: authority events only + unreachable note (exit 0); online: device connect/decision entries and the authority's enroll/config/presence in time order; --until, --json, bad input; after SIGTERM the recorder kept the earlier session across a restart")
    func timeline() throws {
        let fleet = try RecorderFixture(id: "gw-1")
        let warden = fleet.warden

        // Never connected: the authority's events alone, and a note that the device did not answer.
        let offline = try warden.run(["device", "timeline", "gw-1", "--since", "1h", "--timeout", "2"])
        #expect(offline.status == 0, "\(offline.stderr)")
        let offlineLines = Self.lines(offline.stdout)
        #expect(offlineLines.contains { $0.source == "authority" && $0.kind == "device.enroll" }, "\(offline.stdout)")
        #expect(offlineLines.contains { $0.source == "authority" && $0.kind == "device.config" })
        #expect(!offlineLines.contains { $0.source == "device" })
        #expect(offline.stderr.contains("gw-1 did not answer within 2 s"), "\(offline.stderr)")

        // Online: the agent answers from its recorder.
        let started = Date()
        let agent = try fleet.startAgent(log: "agent.log")
        #expect(RecorderFixture.waitUntil(timeout: 15) { fleet.connected() == true }, "connected: \(RecorderFixture.text(fleet.dir.file("agent.log")))")
        // Health changes are sampled every second: give the first one time to land.
        Thread.sleep(forTimeInterval: 1.5)
        let online = try warden.run(["device", "timeline", "gw-1", "--since", "1h", "--timeout", "10", "--json"])
        #expect(online.status == 0, "\(online.stderr)")
        #expect(online.stderr.isEmpty, "\(online.stderr)")
        let output = try JSONDecoder().decode(Output.self, from: Data(online.stdout.utf8))
        #expect(output.device == "gw-1" && output.reachable && output.complete && output.note == nil)
        let events = output.events
        #expect(events.map(\.unix_ms) == events.map(\.unix_ms).sorted(), "merged in time order")
        let enroll = try #require(events.firstIndex { $0.source == "authority" && $0.kind == "device.enroll" })
        let configured = try #require(events.firstIndex { $0.source == "authority" && $0.kind == "device.config" })
        let accepted = try #require(events.firstIndex { $0.source == "device" && $0.kind == "decision" && $0.subsystem == "config" })
        let connect = try #require(events.firstIndex { $0.source == "device" && $0.kind == "connect" && $0.message.hasPrefix("connected to 127.0.0.1") })
        #expect(enroll < configured && configured < accepted && accepted < connect, "\(events.map { "\($0.source) \($0.kind)" })")
        #expect(events.contains { $0.source == "authority" && $0.kind == "presence.online" })
        #expect(events.contains { $0.source == "device" && $0.kind == "health" && $0.subsystem == "telemetry" && $0.message == "new → ok" },
            "\(events.map { "\($0.kind) \($0.subsystem) \($0.message)" })")
        #expect(events[connect].unix_ms >= Int64(started.timeIntervalSince1970 * 1000) - 1000)

        // Three timelines at once share the one recorder identity (the broker takes the client id from the
        // certificate): they take turns instead of taking each other's session over, and all three are answered.
        let concurrent = try (0..<3).map { index in
            try warden.start(["device", "timeline", "gw-1", "--since", "1h", "--timeout", "10", "--json"], output: fleet.dir.file("concurrent-\(index).json"))
        }
        for (index, process) in concurrent.enumerated() {
            #expect(process.wait() == 0, "timeline \(index)")
            let answer = try? JSONDecoder().decode(Output.self, from: Data(RecorderFixture.text(fleet.dir.file("concurrent-\(index).json")).utf8))
            #expect(answer?.reachable == true && answer?.complete == true, "timeline \(index): \(RecorderFixture.text(fleet.dir.file("concurrent-\(index).json")))")
        }

        // The same as text: one line per event, in time order, both sources.
        let text = try warden.run(["device", "timeline", "gw-1", "--since", "1h", "--timeout", "10"])
        #expect(text.status == 0 && text.stderr.isEmpty, "\(text.stderr)")
        let textLines = Self.lines(text.stdout)
        #expect(textLines.map(\.time) == textLines.map(\.time).sorted())
        #expect(textLines.contains { $0.source == "device" && $0.kind == "connect" && $0.rest.hasPrefix("session: connected to") })
        #expect(textLines.contains { $0.source == "authority" && $0.kind == "device.enroll" })

        // --until before the agent started: the device answers, with none of its entries in range.
        let before = ISO8601DateFormatter().string(from: started.addingTimeInterval(-1))
        let early = try warden.run(["device", "timeline", "gw-1", "--since", "1h", "--until", before, "--timeout", "10", "--json"])
        #expect(early.status == 0, "\(early.stderr)")
        let earlyOutput = try JSONDecoder().decode(Output.self, from: Data(early.stdout.utf8))
        #expect(earlyOutput.reachable && !earlyOutput.events.contains { $0.source == "device" })
        #expect(earlyOutput.events.contains { $0.kind == "device.enroll" })

        // The warden-recorder identity is least privilege: it may read answers, not telemetry or presence.
        func subscribeAsRecorder(_ topic: String) throws -> String {
            let r = try WardenProcess.launch("/usr/bin/mosquitto_sub", [
                "-h", "127.0.0.1", "-p", String(fleet.port), "-V", "mqttv5", "-q", "1", "-t", topic, "-d", "-W", "2",
                "--cafile", fleet.brokerDir + "/ca.pem", "--cert", fleet.brokerDir + "/recorder.crt.pem", "--key", fleet.brokerDir + "/recorder.key.pem",
            ])
            return r.stdout + r.stderr
        }
        #expect(try subscribeAsRecorder("d/+/up/recorder/#").contains("Subscribed (mid: 1): 1\n"))
        #expect(try subscribeAsRecorder("d/+/up/telemetry").contains("Subscribed (mid: 1): 135"))
        #expect(try subscribeAsRecorder("d/gw-1/up/presence").contains("Subscribed (mid: 1): 135"))

        // Bad input: one line, exit 2, no query.
        let badSince = try warden.run(["device", "timeline", "gw-1", "--since", "yesterday-ish"])
        #expect(badSince.status == 2 && badSince.oneLineError && badSince.stderr.contains("--since"), "\(badSince.stderr)")
        let reversed = try warden.run(["device", "timeline", "gw-1", "--since", "1h", "--until", "2h"])
        #expect(reversed.status == 2 && reversed.oneLineError, "\(reversed.stderr)")
        let unknown = try warden.run(["device", "timeline", "gw-404", "--since", "1h"])
        #expect(unknown.status == 2 && unknown.stderr.contains("not enrolled"), "\(unknown.stderr)")
        let badLimit = try warden.run(["device", "timeline", "gw-1", "--limit", "0"])
        #expect(badLimit.status == 64, "\(badLimit.stderr)")

        // A limit: the newest entries, and a note that some were left out.
        let limited = try warden.run(["device", "timeline", "gw-1", "--since", "1h", "--limit", "2", "--timeout", "10", "--json"])
        let limitedOutput = try JSONDecoder().decode(Output.self, from: Data(limited.stdout.utf8))
        #expect(limitedOutput.events.filter { $0.source == "device" }.count == 2)
        #expect(limited.stderr.contains("showing the newest 2"), "\(limited.stderr)")

        // SIGTERM: offline again → authority events (now with presence.offline) and the unreachable note.
        agent.signal(SIGTERM)
        #expect(agent.wait() == 0)
        #expect(RecorderFixture.waitUntil(timeout: 10) { fleet.connected() == false })
        let stopped = try warden.run(["device", "timeline", "gw-1", "--since", "1h", "--timeout", "2"])
        #expect(stopped.status == 0 && stopped.stderr.contains("did not answer"), "\(stopped.stderr)")
        #expect(Self.lines(stopped.stdout).contains { $0.kind == "presence.offline" }, "\(stopped.stdout)")
        #expect(!Self.lines(stopped.stdout).contains { $0.source == "device" })

        // Restarted, the agent still has the first session in its ring: two connects and the orderly disconnect.
        _ = try fleet.startAgent(log: "agent2.log")
        #expect(RecorderFixture.waitUntil(timeout: 15) { fleet.connected() == true })
        let again = try warden.run(["device", "timeline", "gw-1", "--since", "1h", "--timeout", "10", "--json"])
        let againEvents = try JSONDecoder().decode(Output.self, from: Data(again.stdout.utf8)).events.filter { $0.source == "device" }
        #expect(againEvents.filter { $0.kind == "connect" }.count == 2, "\(againEvents.map(\.message))")
        #expect(againEvents.contains { $0.kind == "disconnect" && $0.message.hasPrefix("offline announced") })
    }
}
