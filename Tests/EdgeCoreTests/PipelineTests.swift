import EdgeCore
import Foundation
import Testing

@Suite struct PipelineTests {
    static func config(_ json: String) throws -> PipelineConfig {
        try PipelineConfig.parse(Data(json.utf8), source: "test.json")
    }

    @Test("the shipped pipelines parse")
    func shippedParse() throws {
        let fuel = try Repo.pipeline("fuel-level.json")
        #expect(fuel.sensors.map(\.name) == ["fuel"])
        #expect(fuel.sensors[0].rules.map(\.name) == ["low-fuel", "fuel-sensor-stale"])
        let gps = try Repo.pipeline("gps-track.json")
        #expect(gps.sensors[0].kind == .position && gps.sensors[0].gps != nil)
    }

    @Test("invalid pipeline documents are rejected with the path at fault", arguments: [
        ("{", "not valid JSON"),
        ("[]", "$ must be an object"),
        (#"{"sensors":[{"name":"a"}]}"#, "$.version is required"),
        (#"{"version":2,"sensors":[{"name":"a"}]}"#, "$.version must be an integer between 1 and 1"),
        (#"{"version":1,"sensors":[]}"#, "$.sensors must list at least one sensor"),
        (#"{"version":1,"sensors":[{"name":"a"}],"extra":1}"#, "$.extra is not a known key"),
        (#"{"version":1,"sensors":[{"name":"a b"}]}"#, "$.sensors[0].name must be"),
        (#"{"version":1,"sensors":[{"name":"a"},{"name":"a"}]}"#, "'a' is used twice"),
        (#"{"version":1,"sensors":[{"name":"a","kind":"vector"}]}"#, "$.sensors[0].kind must be"),
        (#"{"version":1,"sensors":[{"name":"a","filters":[{"type":"median","window":0}]}]}"#, "filters[0].window must be an integer between 1 and 255"),
        (#"{"version":1,"sensors":[{"name":"a","filters":[{"type":"median","windw":3}]}]}"#, "filters[0].windw is not a known key"),
        (#"{"version":1,"sensors":[{"name":"a","filters":[{"type":"fft"}]}]}"#, "'fft' is not a filter"),
        (#"{"version":1,"sensors":[{"name":"a","filters":[{"type":"kalman","q":-1,"r":1}]}]}"#, "q must be positive"),
        (#"{"version":1,"sensors":[{"name":"a","filters":[{"type":"ema","alpha":0.5,"tau":3}]}]}"#, "'tau' is required, not both"),
        (#"{"version":1,"sensors":[{"name":"a","rules":[{"name":"r","type":"hysteresis","direction":"below","on":15,"off":10}]}]}"#, "off must be above 'on'"),
        (#"{"version":1,"sensors":[{"name":"a","rules":[{"name":"r","type":"threshold","direction":"sideways","value":1}]}]}"#, "direction must be 'below' or 'above'"),
        (#"{"version":1,"sensors":[{"name":"a","rules":[{"name":"r","type":"stale","after":1},{"name":"r","type":"stale","after":2}]}]}"#, "'r' is used twice"),
        (#"{"version":1,"sensors":[{"name":"a","gps":{}}]}"#, "gps is only allowed on a position sensor"),
        (#"{"version":1,"sensors":[{"name":"p","kind":"position","filters":[{"type":"median"}]}]}"#, "must be empty on a position sensor"),
        (#"{"version":1,"sensors":[{"name":"a","silent_after":"5"}]}"#, "silent_after must be a finite number"),
        (#"{"version":1,"reorder_window":-1,"sensors":[{"name":"a"}]}"#, "reorder_window must be between"),
    ])
    func invalidConfigs(json: String, message: String) {
        do {
            _ = try Self.config(json)
            Issue.record("accepted: \(json)")
        } catch let e as EdgeError {
            #expect(e.code == .invalidConfig)
            #expect(e.message.hasPrefix("test.json: "))
            #expect(e.message.contains(message), "\(e.message)")
            #expect(!e.message.contains("\n"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("an oversized pipeline document is refused")
    func oversized() {
        let big = Data(repeating: 0x20, count: PipelineConfig.maxDocumentSize + 1)
        #expect(throws: EdgeError(.invalidConfig, "")) { try PipelineConfig.parse(big) }
    }

    @Test("reorder window: out-of-order samples are sorted, late ones dropped, duplicates counted")
    func reorder() throws {
        let config = try Self.config(#"{"version":1,"reorder_window":5,"sensors":[{"name":"t"}]}"#)
        let ts: [Double] = [0, 2, 1, 4, 3, 10, 4.5, 20, 2, 20]
        let out = runPipeline(config, scalarSamples(ts.map { TimedValue(ts: $0, value: $0) }))
        #expect(out.values.map(\.ts) == [0, 1, 2, 3, 4, 4.5, 10, 20])
        let stats = try #require(out.stats.first)
        #expect(stats.late == 1 && stats.duplicates == 1 && stats.samplesIn == 10)
    }

    @Test("without a window, out-of-order samples are late")
    func noWindow() throws {
        let config = PipelineConfig(sensors: [SensorConfig(name: "t")])
        let out = runPipeline(config, scalarSamples([0, 1, 3, 2, 4].map { TimedValue(ts: $0, value: 0) }))
        #expect(out.values.map(\.ts) == [0, 1, 3, 4])
        #expect(out.stats.first?.late == 1)
    }

    @Test("gap kinds: sensor silent, filtered as unchanged, agent down")
    func gapKinds() throws {
        let config = PipelineConfig(sensors: [
            SensorConfig(name: "t", silentAfter: 60, unchangedAfter: 100, compression: [.deadband(band: 1, maxSilence: nil)])
        ])
        var p = Pipeline(config: config)
        var out: [EdgeRecord] = []
        // Every 10 s for 300 s, constant: the deadband suppresses all but the first.
        for i in 0...30 { p.push(sensor: 0, ts: Double(i) * 10, value: 5, into: &out) }
        p.push(sensor: 0, ts: 310, value: 9, into: &out)  // change: reported, unchanged gap 0 → 310
        // Silence of 200 s.
        p.push(sensor: 0, ts: 510, value: 9.2, into: &out)
        // The agent was down from 510 to 1000.
        p.agentBooted(at: 1000, into: &out)
        p.push(sensor: 0, ts: 1010, value: 20, into: &out)
        p.finish(into: &out)
        let gaps = out.gaps
        #expect(gaps.map(\.kind) == [.filteredUnchanged, .sensorSilent, .agentDown])
        #expect(gaps[0].start == 0 && gaps[0].duration == 310)
        #expect(gaps[1].start == 310 && gaps[1].duration == 200)
        #expect(gaps[2].start == 510 && gaps[2].duration == 490)
    }

    @Test("a sensor that stops is reported as an open gap at the end; stale rules raise and clear")
    func staleAndOpenGap() throws {
        let config = PipelineConfig(sensors: [
            SensorConfig(name: "a", silentAfter: 30, rules: [RuleConfig(name: "a-stale", kind: .stale(after: 60))]),
            SensorConfig(name: "b"),
        ])
        var samples: [(sensor: Int, sample: Sample)] = []
        for i in 0..<10 { samples.append((0, Sample(ts: Double(i), reading: .scalar(1)))) }
        for i in 0..<200 { samples.append((1, Sample(ts: Double(i), reading: .scalar(1)))) }
        samples.sort { $0.sample.ts < $1.sample.ts }
        samples.append((0, Sample(ts: 250, reading: .scalar(1))))
        let out = runPipeline(config, samples)
        #expect(out.alerts.map(\.state) == [.raised, .cleared])
        #expect(out.alerts.first?.ts == 69)
        #expect(out.alerts.last?.ts == 250)
        #expect(out.gaps.filter { $0.kind == .sensorSilent }.map(\.duration) == [241])
    }

    @Test("a timer tick raises a stale alert when every sensor is silent")
    func tickRaisesStale() {
        let config = PipelineConfig(sensors: [SensorConfig(name: "a", rules: [RuleConfig(name: "a-stale", kind: .stale(after: 60))])])
        var p = Pipeline(config: config)
        var out: [EdgeRecord] = []
        p.push(sensor: 0, ts: 100, value: 1, into: &out)
        p.tick(now: 150, into: &out)
        #expect(out.alerts.isEmpty)
        p.tick(now: 161, into: &out)
        #expect(out.alerts.map(\.state) == [.raised] && out.alerts.first?.ts == 160)
        p.tick(now: 120, into: &out)  // time never goes back
        p.tick(now: 500, into: &out)  // already raised: no repeat
        #expect(out.alerts.count == 1)
        p.push(sensor: 0, ts: 501, value: 1, into: &out)
        #expect(out.alerts.map(\.state) == [.raised, .cleared])
    }

    @Test("threshold rule raises and clears on every crossing")
    func thresholdRule() {
        let config = PipelineConfig(sensors: [
            SensorConfig(name: "t", rules: [RuleConfig(name: "hot", kind: .threshold(direction: .above, value: 80))])
        ])
        let out = runPipeline(config, scalarSamples(FilterTests.series([70, 81, 82, 79, 85, 60])))
        #expect(out.alerts.map(\.state) == [.raised, .cleared, .raised, .cleared])
        #expect(out.alerts.map(\.ts) == [1, 3, 4, 5])
    }

    @Test("values of the wrong kind are ignored by the core")
    func wrongKind() {
        let config = PipelineConfig(sensors: [SensorConfig(name: "t")])
        let out = runPipeline(config, [(0, Sample(ts: 0, reading: .position(GeoPosition(lat: 1, lon: 2))))])
        #expect(out.values.isEmpty && out.positions.isEmpty)
    }
}
