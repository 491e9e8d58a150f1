@testable import EdgeAgent
import Foundation
import Synchronization
import Testing

@Suite("agent features: topic routing, health board, session control")
struct AgentFeatureTests {
    @Test("topic filters follow MQTT 5 §4.7, including $ topics and a trailing #")
    func topicFilters() {
        #expect(TopicFilter.matches("d/gw-1/down/#", "d/gw-1/down/ota/block"))
        #expect(TopicFilter.matches("d/gw-1/down/#", "d/gw-1/down"))
        #expect(TopicFilter.matches("warden/tuf/+", "warden/tuf/timestamp.json"))
        #expect(!TopicFilter.matches("warden/tuf/+", "warden/tuf/a/b"))
        #expect(!TopicFilter.matches("d/gw-1/down/#", "d/gw-2/down/ota/block"))
        #expect(!TopicFilter.matches("#", "$SYS/broker/uptime"))
        #expect(!TopicFilter.matches("+/x", "$SYS/x"))
        #expect(TopicFilter.matches("$SYS/#", "$SYS/x"))
        #expect(!TopicFilter.matches("a/b", "a/b/c"))
        #expect(!TopicFilter.matches("a/b/c", "a/b"))
        #expect(TopicFilter.matches("a//c", "a//c"))
    }

    @Test("the health board counts failures, reports degraded until the subsystem recovers, and bumps its generation only on change")
    func healthBoard() throws {
        let health = AgentHealth(clock: { Date(timeIntervalSince1970: 1_000) })
        health.ok("telemetry")
        let g0 = health.generation
        health.ok("telemetry")
        #expect(health.generation == g0)
        health.degraded("ota", reason: String(repeating: "x", count: 500))
        health.degraded("ota", reason: String(repeating: "x", count: 500))
        #expect(health.entry("ota")?.failures == 2)
        #expect(health.entry("ota")?.reason?.count == 200)
        let report = try JSONSerialization.jsonObject(with: Data(health.report())) as? [String: Any]
        #expect(report?["status"] as? String == "degraded")
        health.ok("ota")
        let healed = try JSONSerialization.jsonObject(with: Data(health.report())) as? [String: Any]
        #expect(healed?["status"] as? String == "ok")
        #expect(health.entry("ota")?.failures == 2)
    }

    @Test("a staged identity is used once, its outcome reported once, and reconnect requests bump the epoch")
    func sessionControl() {
        let control = SessionControl()
        let e0 = control.epoch
        control.requestReconnect()
        #expect(control.epoch == e0 + 1)
        let outcomes = OutcomeBox()
        control.tryIdentity(.init(certFile: "next.crt", keyFile: "next.key")) { outcomes.add($0) }
        #expect(control.epoch == e0 + 2)
        #expect(outcomes.values.isEmpty)
        #expect(control.identity(default: ("a.crt", "a.key")).certFile == "next.crt")

        // Every failed attempt reaches the failure observers; the staged identity's outcome is reported once.
        let failures = Mutex<[String]>([])
        control.observeConnectionFailures { error in failures.withLock { $0.append(error) } }
        control.connectFailed(identity: .init(certFile: "next.crt", keyFile: "next.key"), error: "TLS alert")
        control.connectFailed(identity: .init(certFile: "a.crt", keyFile: "a.key"), error: "refused")
        #expect(outcomes.values == [.failed("TLS alert")])
        #expect(failures.withLock { $0 } == ["TLS alert", "refused"])
        #expect(control.identity(default: ("a.crt", "a.key")).certFile == "a.crt", "back to the configured identity")
    }
}

private final class OutcomeBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [SessionControl.TrialOutcome] = []
    func add(_ value: SessionControl.TrialOutcome) { lock.withLock { stored.append(value) } }
    var values: [SessionControl.TrialOutcome] { lock.withLock { stored } }
}
