import EdgeCore
import Foundation
import Testing

/// The acceptance scenarios: fuel without flapping, GPS with jump rejection.
@Suite struct AcceptanceTests {
    /// A slow fuel drain crossing 15 % at ~6 h, then a refuel to 90 % at 8 h. Sampled every 10 s.
    static func fuelTrace(seed: UInt64, gaussian: Bool) -> [TimedValue] {
        var rng = SplitMix64(seed: seed)
        var out: [TimedValue] = []
        let t0 = 1_700_000_000.0
        for i in 0..<(12 * 360) {
            let t = Double(i) * 10
            let hours = t / 3600
            let truth: Double
            if hours < 8 {
                truth = 40 - 25 * hours / 6
            } else if hours < 8.05 {
                truth = 6.67 + (90 - 6.67) * (hours - 8) / 0.05
            } else {
                truth = 90 - 2 * (hours - 8.05)
            }
            let noise = gaussian ? 1.5 * rng.gaussian() : rng.uniform(-3, 3)
            out.append(TimedValue(ts: t0 + t, value: truth + noise))
        }
        return out
    }

    @Test("shipped fuel pipeline raises once and clears on refuel", arguments: [
        (UInt64(1), false), (2, false), (3, false), (4, true), (5, true),
    ])
    func fuelDoesNotFlap(seed: UInt64, gaussian: Bool) throws {
        let config = try Repo.pipeline("fuel-level.json")
        let trace = Self.fuelTrace(seed: seed, gaussian: gaussian)
        let alerts = runPipeline(config, scalarSamples(trace)).alerts.filter { $0.rule == "low-fuel" }
        #expect(alerts.map(\.state) == [.raised, .cleared])
        let t0 = 1_700_000_000.0
        if alerts.count == 2 {
            // Raised close to the true crossing (6 h), cleared within minutes of the refuel (8 h).
            #expect(abs(alerts[0].ts - (t0 + 6 * 3600)) < 1800)
            #expect(alerts[1].ts >= t0 + 8 * 3600 && alerts[1].ts < t0 + 8 * 3600 + 900)
        }
    }

    @Test("a raw threshold on the same trace flaps dozens of times")
    func rawThresholdFlaps() throws {
        let raw = PipelineConfig(sensors: [
            SensorConfig(name: "fuel", rules: [RuleConfig(name: "raw", kind: .threshold(direction: .below, value: 15))])
        ])
        let alerts = runPipeline(raw, scalarSamples(Self.fuelTrace(seed: 1, gaussian: false))).alerts
        let raised = alerts.filter { $0.state == .raised }.count
        print("fuel: a raw threshold at 15 % raised \(raised) times on the trace where the shipped pipeline raises once")
        #expect(raised >= 24, "raw threshold raised \(raised) times")
    }

    /// A 1 Hz vehicle track with σ = 3 m noise and 5 % single-fix jumps of 10–100 m.
    static func gpsTrace(seed: UInt64, count: Int = 3600) -> (truth: [GeoPosition], raw: [GeoPosition], ts: [Double]) {
        var rng = SplitMix64(seed: seed)
        let lat0 = 47.3769, lon0 = 8.5417
        let k = GPSKalmanFilter.earthRadius * Double.pi / 180
        let cosLat = cos(lat0 * Double.pi / 180)
        var e = 0.0, n = 0.0, heading = 0.3
        var truth: [GeoPosition] = [], raw: [GeoPosition] = [], ts: [Double] = []
        for i in 0..<count {
            let speed = 12 + 4 * sin(Double(i) / 90)
            heading += 0.02 * sin(Double(i) / 40)
            e += speed * cos(heading)
            n += speed * sin(heading)
            var me = e + 3 * rng.gaussian(), mn = n + 3 * rng.gaussian()
            if rng.uniform(0, 1) < 0.05 {
                let d = rng.uniform(10, 100), a = rng.uniform(0, 2 * Double.pi)
                me += d * cos(a)
                mn += d * sin(a)
            }
            truth.append(GeoPosition(lat: lat0 + n / k, lon: lon0 + e / (k * cosLat)))
            raw.append(GeoPosition(lat: lat0 + mn / k, lon: lon0 + me / (k * cosLat)))
            ts.append(1_700_000_000 + Double(i))
        }
        return (truth, raw, ts)
    }

    static func rmse(_ a: [GeoPosition], _ b: [GeoPosition]) -> Double {
        let k = GPSKalmanFilter.earthRadius * Double.pi / 180
        var s = 0.0
        for (p, q) in zip(a, b) {
            let dn = (p.lat - q.lat) * k
            let de = (p.lon - q.lon) * k * cos(q.lat * Double.pi / 180)
            s += dn * dn + de * de
        }
        return (s / Double(a.count)).squareRoot()
    }

    @Test("shipped GPS pipeline halves the RMSE of a trace with 5 % jumps", arguments: [UInt64(11), 12, 13])
    func gpsJumpRejection(seed: UInt64) throws {
        let config = try Repo.pipeline("gps-track.json")
        let trace = Self.gpsTrace(seed: seed)
        let samples = zip(trace.ts, trace.raw).map { (0, Sample(ts: $0, reading: .position($1))) }
        let filtered = runPipeline(config, samples).positions.map(\.1)
        #expect(filtered.count == trace.raw.count)
        let rawError = Self.rmse(trace.raw, trace.truth)
        let filteredError = Self.rmse(filtered, trace.truth)
        print("gps seed \(seed): raw RMSE \(rawError) m, filtered RMSE \(filteredError) m")
        #expect(filteredError <= rawError / 2, "raw RMSE \(rawError) m, filtered \(filteredError) m")
    }

    @Test("the GPS filter restarts after a long gap instead of extrapolating")
    func gpsRecoversFromLongGap() {
        var f = GPSFilterSpec().make()
        let k = GPSKalmanFilter.earthRadius * Double.pi / 180
        var ts = 0.0
        // Drive east at 10 m/s for a minute.
        for i in 0..<60 {
            ts = Double(i)
            _ = f.process(ts: ts, fix: GeoPosition(lat: 47, lon: 8 + Double(i) * 10 / (k * cos(47 * Double.pi / 180))))
        }
        // Ten minutes of silence, then the vehicle is 2 km north (it turned in a tunnel).
        let far = GeoPosition(lat: 47 + 2000 / k, lon: 8.01)
        let (out, outcome) = f.process(ts: ts + 600, fix: far)
        #expect(outcome == .reset)
        #expect(out == far)
        // The next fix nearby is accepted, not rejected as a jump.
        let (_, next) = f.process(ts: ts + 601, fix: GeoPosition(lat: far.lat + 1 / k, lon: far.lon))
        #expect(next == .accepted)
    }

    @Test("a single jump is rejected, a lasting displacement is accepted after max_rejects")
    func gpsGateAndRestart() {
        var f = GPSKalmanFilter(measurementVariance: 9, accelerationVariance: 0.25, maxConsecutiveRejects: 3)
        let k = GPSKalmanFilter.earthRadius * Double.pi / 180
        for i in 0..<30 { _ = f.process(ts: Double(i), fix: GeoPosition(lat: 47, lon: 8)) }
        let jump = GeoPosition(lat: 47 + 80 / k, lon: 8)
        let (out, o1) = f.process(ts: 30, fix: jump)
        #expect(o1 == .rejected)
        #expect(abs(out.lat - 47) * k < 1)
        #expect(f.process(ts: 31, fix: GeoPosition(lat: 47, lon: 8)).1 == .accepted)
        // The vehicle was really moved 80 m (a ferry): after 3 rejections the filter follows it.
        #expect(f.process(ts: 32, fix: jump).1 == .rejected)
        #expect(f.process(ts: 33, fix: jump).1 == .rejected)
        #expect(f.process(ts: 34, fix: jump).1 == .reset)
        #expect(f.process(ts: 35, fix: jump).1 == .accepted)
    }

    @Test("sample-to-alert latency is measured and far below one second")
    func alertLatency() throws {
        let config = try Repo.pipeline("fuel-level.json")
        var p = Pipeline(config: config)
        var out: [EdgeRecord] = []
        var worst = 0.0
        for v in Self.fuelTrace(seed: 7, gaussian: false) {
            out.removeAll(keepingCapacity: true)
            let start = Date()
            p.push(sensor: 0, ts: v.ts, value: v.value, into: &out)
            if !out.alerts.isEmpty { worst = max(worst, Date().timeIntervalSince(start)) }
        }
        p.finish(into: &out)
        let measured = p.stats(sensor: 0).maxAlertLatency
        #expect(worst > 0 && worst < 1, "external measurement \(worst) s")
        #expect(measured > 0 && measured < 1, "pipeline measurement \(measured) s")
    }
}
