import Foundation
import Testing
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A failing subsystem degrades and reports its health; it never takes the agent down (issue 7). Real
/// `warden serve --broker`, Mosquitto and `warden-agent run` processes.
@Suite("fault isolation: a failing subsystem degrades, the agent keeps working, and it recovers", .serialized)
struct FaultIsolationTests {
    /// The latest retained health report the observer saw, as JSON.
    static func latestHealth(_ log: String, device: String) -> [String: Any]? {
        let prefix = "d/\(device)/up/health "
        guard let line = RecorderFixture.text(log).split(separator: "\n").last(where: { $0.hasPrefix(prefix) }) else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(line.dropFirst(prefix.count).utf8)) as? [String: Any]
    }

    static func state(_ report: [String: Any]?, _ subsystem: String) -> String? {
        ((report?["subsystems"] as? [String: Any])?[subsystem] as? [String: Any])?["state"] as? String
    }

    @Test("a stray file where the recorder directory belongs: recorder degraded on d/<id>/up/health while presence, telemetry and timeline queries keep working; removing the file → recorder ok, status ok, without a restart")
    func recorderDiskFault() throws {
        let id = "gw-fault"
        let fleet = try RecorderFixture(id: id, observer: "obs-fault")
        var rows = "ts,sensor,value\n"
        for i in 0..<30 { rows += "\(1_700_000_000 + i * 10),fuel,\(40 - i)\n" }
        let csv = try fleet.dir.write("fuel.csv", rows)
        // The cause: the recorder directory cannot be created (a regular file is in the way; chmod would not stop root).
        let blocker = fleet.state + "/recorder"
        try Data("stray".utf8).write(to: URL(fileURLWithPath: blocker))

        let observerLog = fleet.dir.file("observer.log")
        _ = try fleet.observe(["d/\(id)/up/health"], log: "observer.log")
        let agentLog = fleet.dir.file("agent.log")
        let agent = try fleet.startAgent(log: "agent.log", extra: ["--replay", csv])
        #expect(RecorderFixture.waitUntil(timeout: 15) { fleet.connected() == true }, "presence: \(RecorderFixture.text(agentLog))")
        let queuedLine = RecorderFixture.text(agentLog).split(separator: "\n").first { $0.hasPrefix("replay: queued ") }
        let queued = queuedLine.flatMap { Int($0.split(separator: " ")[2]) } ?? -1
        #expect(queued > 0)
        // Telemetry is counted where it lands: the authority's registry (deduplicated ingest of the batches).
        func telemetry() -> Int { fleet.telemetryRecords() ?? -1 }
        #expect(RecorderFixture.waitUntil(timeout: 15) { telemetry() >= queued }, "telemetry \(telemetry()) of \(queued)")

        // The health report names the recorder degraded, with the reason; the other subsystems are fine.
        #expect(RecorderFixture.waitUntil(timeout: 10) { Self.state(Self.latestHealth(observerLog, device: id), "recorder") == "degraded" },
            "\(RecorderFixture.text(observerLog))")
        let degraded = Self.latestHealth(observerLog, device: id)
        #expect(degraded?["status"] as? String == "degraded")
        #expect(Self.state(degraded, "telemetry") == "ok")
        #expect(Self.state(degraded, "recorder-query") == "ok")
        let reason = ((degraded?["subsystems"] as? [String: Any])?["recorder"] as? [String: Any])?["reason"] as? String
        #expect(reason?.contains("not a directory") == true, "\(String(describing: reason))")

        // Remote queries still work: the entries wait in memory while the disk fails.
        let timeline = try fleet.warden.run(["device", "timeline", id, "--since", "1h", "--timeout", "10"])
        #expect(timeline.status == 0 && timeline.stderr.isEmpty, "\(timeline.stderr)")
        #expect(TimelineTests.lines(timeline.stdout).contains { $0.source == "device" && $0.kind == "connect" }, "\(timeline.stdout)")
        #expect(TimelineTests.lines(timeline.stdout).contains { $0.source == "device" && $0.kind == "health" && $0.rest.contains("degraded") }, "\(timeline.stdout) \(RecorderFixture.text(agentLog).suffix(1500))")

        // Remove the cause: the recorder recovers on its own, the board goes back to ok, the agent never restarted.
        try FileManager.default.removeItem(atPath: blocker)
        #expect(RecorderFixture.waitUntil(timeout: 10) { Self.latestHealth(observerLog, device: id)?["status"] as? String == "ok" },
            "\(RecorderFixture.text(observerLog))")
        #expect(Self.state(Self.latestHealth(observerLog, device: id), "recorder") == "ok")
        #expect(agent.isRunning)
        #expect(RecorderFixture.text(agentLog).components(separatedBy: "connected to 127.0.0.1").count - 1 == 1, "one session throughout")
        #expect(RecorderFixture.waitUntil(timeout: 5) { FileManager.default.fileExists(atPath: blocker + "/segment-0.log") })
        // What was held in memory reached the disk.
        agent.signal(SIGTERM)
        #expect(agent.wait() == 0)
        let segment = try #require(FileManager.default.contents(atPath: blocker + "/segment-0.log"))
        #expect(String(decoding: segment, as: UTF8.self).contains("connected to 127.0.0.1"))
    }

    @Test("a policy that refuses the recorder's subscription: recorder-query degraded (SUBACK 135) while presence and telemetry work and timeline reports the device unreachable; after the policy allows it and the agent reconnects → ok and answered")
    func refusedSubscription() throws {
        let id = "gw-subref"
        let observer = "obs-subref"
        let fleet = try RecorderFixture(id: id, observer: observer, receiveDown: false)
        var rows = "ts,sensor,value\n"
        for i in 0..<10 { rows += "\(1_700_000_000 + i * 10),fuel,\(40 - i)\n" }
        let csv = try fleet.dir.write("fuel.csv", rows)
        let observerLog = fleet.dir.file("observer.log")
        _ = try fleet.observe(["d/\(id)/up/health"], log: "observer.log")
        let agentLog = fleet.dir.file("agent.log")
        let agent = try fleet.startAgent(log: "agent.log", extra: ["--replay", csv])
        #expect(RecorderFixture.waitUntil(timeout: 15) { fleet.connected() == true }, "presence: \(RecorderFixture.text(agentLog))")
        #expect(RecorderFixture.waitUntil(timeout: 15) { (fleet.telemetryRecords() ?? 0) >= 10 },
            "telemetry delivered despite the refused subscription")
        #expect(RecorderFixture.waitUntil(timeout: 10) { Self.state(Self.latestHealth(observerLog, device: id), "recorder-query") == "degraded" },
            "\(RecorderFixture.text(observerLog))")
        let degraded = Self.latestHealth(observerLog, device: id)
        let reason = ((degraded?["subsystems"] as? [String: Any])?["recorder-query"] as? [String: Any])?["reason"] as? String
        #expect(reason?.contains("SUBACK 135") == true, "\(String(describing: reason))")
        #expect(Self.state(degraded, "telemetry") == "ok" && Self.state(degraded, "recorder") == "ok")
        let unanswered = try fleet.warden.run(["device", "timeline", id, "--since", "1h", "--timeout", "2"])
        #expect(unanswered.status == 0 && unanswered.stderr.contains("did not answer"), "\(unanswered.stderr)")
        #expect(TimelineTests.lines(unanswered.stdout).contains { $0.kind == "device.enroll" })

        // The cause removed: the policy allows the down/ tree again; the next connection's subscription succeeds.
        let allowed = try fleet.warden.run(["policy", "apply", try fleet.dir.write("allowed.json", RecorderFixture.policy(observer: observer))])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        // Make the agent reconnect: the broker dies (kill -9 by PID) and serve restarts it.
        let pidText = try String(contentsOfFile: fleet.brokerDir + "/mosquitto.pid", encoding: .utf8)
        let brokerPID = try #require(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(brokerPID, SIGKILL)
        #expect(RecorderFixture.waitUntil(timeout: 20) {
            RecorderFixture.text(agentLog).components(separatedBy: "connected to 127.0.0.1").count - 1 >= 2
        }, "reconnected: \(RecorderFixture.text(agentLog))")
        // A fresh observer (the broker restart dropped the first one); the health report is retained.
        let afterLog = fleet.dir.file("observer2.log")
        _ = try fleet.observe(["d/\(id)/up/health"], log: "observer2.log")
        #expect(RecorderFixture.waitUntil(timeout: 10) { Self.latestHealth(afterLog, device: id)?["status"] as? String == "ok" },
            "\(RecorderFixture.text(afterLog))")
        #expect(Self.state(Self.latestHealth(afterLog, device: id), "recorder-query") == "ok")
        #expect(agent.isRunning)
        var answered = try fleet.warden.run(["device", "timeline", id, "--since", "1h", "--timeout", "5"])
        if answered.stderr.contains("did not answer") {
            // The observer may have seen the health report before the agent's subscription completed; ask once more.
            answered = try fleet.warden.run(["device", "timeline", id, "--since", "1h", "--timeout", "5"])
        }
        #expect(answered.status == 0 && answered.stderr.isEmpty, "\(answered.stderr)")
        #expect(TimelineTests.lines(answered.stdout).contains { $0.source == "device" && $0.kind == "fault" || ($0.source == "device" && $0.kind == "health" && $0.rest.contains("SUBACK 135")) },
            "the refusal is in the recorder: \(answered.stdout)")
        agent.signal(SIGTERM)
        #expect(agent.wait() == 0)
    }
}
