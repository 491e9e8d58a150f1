import EdgeCore
import Foundation
import Testing

/// The NOAA Mauna Loa weekly CO₂ fixture: observed rows and the real gaps (empty values).
struct CO2Series {
    var ts: [Double] = []
    var value: [Double?] = []

    static func load() throws -> CO2Series {
        var s = CO2Series()
        let text = try Repo.fixture("mauna-loa-co2-weekly.csv")
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false)
            guard f.count == 2, f[0].count == 8 else { continue }
            let d = f[0]
            let iso = "\(d.prefix(4))-\(d.dropFirst(4).prefix(2))-\(d.suffix(2))T00:00:00Z"
            guard let ts = Timestamp.parse(iso[...]) else { continue }
            s.ts.append(ts)
            s.value.append(f[1].isEmpty ? nil : Double(f[1]))
        }
        return s
    }

    var observed: [TimedValue] {
        zip(ts, value).compactMap { t, v in v.map { TimedValue(ts: t, value: $0) } }
    }
}

/// Filters checked against filterpy, pykalman and numpy on the same inputs, to 1e-9.
@Suite struct ReferenceTests {
    static let week = 7 * 86_400.0

    @Test("the CO₂ fixture is weekly with real gaps")
    func fixtureShape() throws {
        let s = try CO2Series.load()
        #expect(s.ts.count > 2000)
        #expect(s.value.filter { $0 == nil }.count == 59)
        #expect(zip(s.ts, s.ts.dropFirst()).allSatisfy { ($1 - $0).truncatingRemainder(dividingBy: Self.week) == 0 && $1 > $0 })
    }

    @Test("1-D Kalman on NOAA CO₂ with its gaps matches pykalman (masked observations) within 1e-9")
    func kalmanMatchesPykalman() throws {
        let s = try CO2Series.load()
        let qStep = 0.08, r = 0.35
        let t0 = s.ts[0]
        var index: [Int] = [], z: [Double] = []
        for (t, v) in zip(s.ts, s.value) {
            if let v {
                index.append(Int(((t - t0) / Self.week).rounded()))
                z.append(v)
            }
        }
        let steps = Int(((s.ts.last! - t0) / Self.week).rounded()) + 1
        let reference = try #require(
            try runPython("edge_filters_reference.py", input: [
                "mode": "kalman1d_pykalman", "q_step": qStep, "r": r, "p0": r, "steps": steps, "index": index, "z": z,
            ]) as? [Double])
        var f = KalmanFilter1D(q: qStep / Self.week, r: r)
        let ours = s.observed.compactMap { f.process($0)?.value }
        #expect(ours.count == reference.count)
        let worst = zip(ours, reference).map { abs($0 - $1) }.max() ?? .infinity
        print("CO2 kalman vs pykalman: \(ours.count) outputs, max |diff| = \(worst)")
        #expect(worst <= 1e-9, "max |swift - pykalman| = \(worst)")
        // Negative control: ignoring the gaps (one step per observation) does not match.
        var naive = KalmanFilter1D(q: qStep, r: r, timeScaled: false)
        let naiveOut = s.observed.compactMap { naive.process($0)?.value }
        #expect((zip(naiveOut, reference).map { abs($0 - $1) }.max() ?? 0) > 1e-6)
    }

    @Test("1-D Kalman with irregular timestamps matches filterpy within 1e-9")
    func kalmanMatchesFilterpy() throws {
        var rng = SplitMix64(seed: 3)
        var t = 1_700_000_000.0
        var values: [TimedValue] = []
        for i in 0..<2000 {
            t += rng.uniform(0.2, 30)
            values.append(TimedValue(ts: t, value: 20 + sin(Double(i) / 50) + rng.gaussian()))
        }
        let q = 0.003, r = 1.2, p0 = 4.0
        let reference = try #require(
            try runPython("edge_filters_reference.py", input: [
                "mode": "kalman1d_filterpy", "q": q, "r": r, "p0": p0, "ts": values.map(\.ts), "z": values.map(\.value),
            ]) as? [Double])
        var f = KalmanFilter1D(q: q, r: r, p0: p0)
        let ours = values.compactMap { f.process($0)?.value }
        let worst = zip(ours, reference).map { abs($0 - $1) }.max() ?? .infinity
        print("kalman vs filterpy (irregular ts): max |diff| = \(worst)")
        #expect(ours.count == reference.count && worst <= 1e-9, "max diff \(worst)")
    }

    @Test("GPS constant-velocity Kalman with gating and restarts matches filterpy within 1e-9")
    func gpsMatchesFilterpy() throws {
        var trace = AcceptanceTests.gpsTrace(seed: 21, count: 1500)
        // Add a long gap (restart) and a lasting displacement (restart after max_rejects).
        for i in 700..<1500 { trace.ts[i] += 400 }
        let k = GPSKalmanFilter.earthRadius * Double.pi / 180
        for i in 1100..<1500 { trace.raw[i].lat += 500 / k }
        let spec = GPSFilterSpec()
        let reference = try #require(
            try runPython("edge_filters_reference.py", input: [
                "mode": "gps_filterpy", "r": spec.measurementSigma * spec.measurementSigma,
                "accel": spec.accelerationSigma * spec.accelerationSigma, "vel": spec.velocitySigma * spec.velocitySigma,
                "gate": spec.gate, "max_rejects": spec.maxRejects, "reset_after": spec.resetAfter,
                "ts": trace.ts, "lat": trace.raw.map(\.lat), "lon": trace.raw.map(\.lon),
            ]) as? [String: Any])
        let refLat = try #require(reference["lat"] as? [Double])
        let refLon = try #require(reference["lon"] as? [Double])
        let refOutcome = try #require(reference["outcome"] as? [String])
        var f = spec.make()
        var worst = 0.0
        var outcomes: [String] = []
        for (i, (t, p)) in zip(trace.ts, trace.raw).enumerated() {
            let (out, outcome) = f.process(ts: t, fix: p)
            worst = max(worst, abs(out.lat - refLat[i]), abs(out.lon - refLon[i]))
            outcomes.append("\(outcome)")
        }
        print("gps vs filterpy: max |diff| = \(worst) deg, \(outcomes.filter { $0 == "rejected" }.count) rejected, \(outcomes.filter { $0 == "reset" }.count) resets")
        #expect(outcomes == refOutcome)
        #expect(worst <= 1e-9, "max |Δ| = \(worst)°")
        #expect(outcomes.filter { $0 == "rejected" }.count > 30)
        #expect(outcomes.filter { $0 == "reset" }.count >= 3)
    }

    @Test("EMA, median and Hampel match numpy on NOAA CO₂ with injected spikes")
    func smoothersMatchNumpy() throws {
        var values = try CO2Series.load().observed
        var rng = SplitMix64(seed: 5)
        for i in stride(from: 50, to: values.count, by: 97) { values[i].value += rng.uniform(-40, 40) }
        let reference = try #require(
            try runPython("edge_filters_reference.py", input: [
                "mode": "smoothers_numpy", "alpha": 0.2, "median_window": 6, "hampel_window": 9, "hampel_sigmas": 3.0,
                "z": values.map(\.value),
            ]) as? [String: [Double]])
        func run(_ f: some ScalarFilter) -> [Double] {
            var f = f
            return values.compactMap { f.process($0)?.value }
        }
        let cases: [(String, [Double])] = [
            ("ema", run(EMAFilter(alpha: 0.2))), ("median", run(MedianFilter(window: 6))),
            ("hampel", run(HampelFilter(window: 9, nSigmas: 3))),
        ]
        for (name, ours) in cases {
            let ref = try #require(reference[name])
            let worst = zip(ours, ref).map { abs($0 - $1) }.max() ?? .infinity
            print("\(name) vs numpy: max |diff| = \(worst)")
            #expect(ours.count == ref.count && worst <= 1e-9, "\(name): max diff \(worst)")
        }
        // The Hampel filter removed the injected spikes.
        var h = HampelFilter(window: 9, nSigmas: 3)
        for v in values { _ = h.process(v) }
        #expect(h.replaced >= values.count / 97 - 2)
    }

    @Test("NOAA CO₂ gaps become typed sensor-silent gaps with the right start and duration")
    func co2Gaps() throws {
        let s = try CO2Series.load()
        // Expected: each run of empty weeks is one gap from the last observation to the next one.
        var expected: [(start: Double, duration: Double)] = []
        var last: Double?
        var inGap = false
        for (t, v) in zip(s.ts, s.value) {
            if v == nil { inGap = true; continue }
            if inGap, let l = last { expected.append((l, t - l)) }
            inGap = false
            last = t
        }
        let config = PipelineConfig(sensors: [
            SensorConfig(name: "co2", silentAfter: 8 * 86_400, compression: [.swingingDoor(deviation: 0.5, maxInterval: nil)])
        ])
        let out = runPipeline(config, scalarSamples(s.observed))
        let gaps = out.gaps.filter { $0.kind == .sensorSilent }
        #expect(gaps.count == expected.count && !gaps.isEmpty)
        #expect(gaps.map(\.start) == expected.map(\.start))
        #expect(gaps.map(\.duration) == expected.map(\.duration))
        let stats = try #require(out.stats.first)
        #expect(stats.maxError <= 0.5 + 1e-12 && stats.maxError > 0.1)
        #expect(stats.compressionRatio > 1.5)
    }
}
