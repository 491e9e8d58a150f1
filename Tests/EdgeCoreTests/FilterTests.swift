import EdgeCore
import Foundation
import Testing

@Suite struct FilterTests {
    static func run(_ f: some ScalarFilter, _ values: [TimedValue]) -> [TimedValue] {
        var f = f
        var out = values.compactMap { f.process($0) }
        if let last = f.flush() { out.append(last) }
        return out
    }

    static func series(_ v: [Double], dt: Double = 1) -> [TimedValue] {
        v.enumerated().map { TimedValue(ts: Double($0.offset) * dt, value: $0.element) }
    }

    @Test("median removes a single spike and keeps a step")
    func median() {
        let out = Self.run(MedianFilter(window: 3), Self.series([1, 1, 50, 1, 1, 5, 5, 5])).map(\.value)
        #expect(out == [1, 1, 1, 1, 1, 1, 5, 5])
    }

    @Test("EMA with a time constant weighs by elapsed time")
    func emaTau() {
        var f = EMAFilter(tau: 10)
        _ = f.process(TimedValue(ts: 0, value: 0))
        let a = f.process(TimedValue(ts: 10, value: 1))!.value
        #expect(abs(a - (1 - exp(-1))) < 1e-12)
        var g = EMAFilter(alpha: 0.5)
        _ = g.process(TimedValue(ts: 0, value: 0))
        #expect(g.process(TimedValue(ts: 100, value: 1))!.value == 0.5)
    }

    @Test("Hampel replaces outliers by the window median and leaves clean data alone")
    func hampel() {
        var rng = SplitMix64(seed: 1)
        var v = (0..<200).map { _ in 10 + rng.gaussian() * 0.1 }
        v[100] = 30
        v[150] = -5
        let out = Self.run(HampelFilter(window: 7, nSigmas: 3), Self.series(v)).map(\.value)
        #expect(abs(out[100] - 10) < 0.5 && abs(out[150] - 10) < 0.5)
        let changed = zip(out, v).filter { $0 != $1 }.count
        #expect(changed >= 2 && changed < 10)
    }

    @Test("rate limit clamps a jump to max_rate·Δt and converges")
    func rateLimit() {
        let out = Self.run(RateLimitFilter(maxRate: 2), Self.series([0, 10, 10, 10, 10, 10, 10])).map(\.value)
        #expect(out == [0, 2, 4, 6, 8, 10, 10])
    }

    @Test("deadband suppresses changes below the band, reports the rest, and honours the heartbeat")
    func deadband() {
        let out = Self.run(DeadbandFilter(band: 1), Self.series([0, 0.5, 0.9, 1.2, 1.5, 0.1]))
        #expect(out.map(\.value) == [0, 1.2, 0.1])
        var f = DeadbandFilter(band: 1, maxSilence: 10)
        let hb = [0.0, 0, 0, 0].enumerated().compactMap { f.process(TimedValue(ts: Double($0.offset) * 6, value: $0.element)) }
        #expect(hb.map(\.ts) == [0, 12])
        #expect(f.measuredMaxError == 0)
    }

    @Test("hysteresis switch: needs the far threshold and the dwell to change state")
    func hysteresisDwell() {
        var s = HysteresisSwitch(direction: .below, on: 15, off: 20, minDwell: 30)
        #expect(s.update(ts: 0, value: 14) == nil)
        #expect(s.update(ts: 20, value: 16) == nil)  // excursion resets the dwell
        #expect(s.update(ts: 30, value: 14) == nil)
        #expect(s.update(ts: 59, value: 14) == nil)
        #expect(s.update(ts: 60, value: 14) == .on)
        #expect(s.update(ts: 70, value: 19) == nil)  // inside the band: stays on
        #expect(s.update(ts: 200, value: 19) == nil)
        #expect(s.update(ts: 210, value: 21) == nil)
        #expect(s.update(ts: 240, value: 21) == .off)
        var hot = HysteresisSwitch(direction: .above, on: 80, off: 75)
        #expect(hot.update(ts: 0, value: 81) == .on)
        #expect(hot.update(ts: 1, value: 77) == nil)
        #expect(hot.update(ts: 2, value: 74) == .off)
    }

    @Test("swinging door: reconstruction stays within the deviation and compresses a smooth signal",
          arguments: [0.05, 0.5, 2.0])
    func swingingDoorBound(deviation: Double) {
        var rng = SplitMix64(seed: UInt64(deviation * 100))
        var t = 0.0
        let input = (0..<5000).map { i in
            t += rng.uniform(0.5, 1.5)
            return TimedValue(ts: t, value: 20 * sin(Double(i) / 300) + rng.gaussian() * 0.2)
        }
        var f = SwingingDoorFilter(deviation: deviation)
        var kept = input.compactMap { f.process($0) }
        if let last = f.flush() { kept.append(last) }
        #expect(kept.first == input.first && kept.last == input.last)
        // Independent check: linear interpolation between kept points.
        var j = 0
        var worst = 0.0
        for p in input {
            while j + 1 < kept.count && kept[j + 1].ts < p.ts { j += 1 }
            let a = kept[j], b = kept[min(j + 1, kept.count - 1)]
            let line = b.ts == a.ts ? a.value : a.value + (b.value - a.value) * (p.ts - a.ts) / (b.ts - a.ts)
            worst = max(worst, abs(p.value - line))
        }
        #expect(worst <= deviation + 1e-9, "max error \(worst) > \(deviation)")
        #expect(abs(worst - f.measuredMaxError) < 1e-9)
        // Compression only pays once the deviation exceeds the noise (σ = 0.2).
        if deviation >= 0.5 { #expect(kept.count < input.count / 2) }
    }

    @Test("swinging door on a straight line keeps only the ends")
    func swingingDoorLine() {
        let out = Self.run(SwingingDoorFilter(deviation: 0.01), Self.series((0..<100).map { Double($0) * 0.5 }))
        #expect(out.map(\.ts) == [0, 99])
    }

    @Test("window aggregation: min, max, mean, count per aligned window", arguments: WindowStatistic.allCases)
    func window(stat: WindowStatistic) {
        let values = [1.0, 3, 2, 10, 20]  // ts 0,5,9 in window 0; ts 10, 15 in window 10 (dt 5 → 0,5,10,15,20)
        let input = [(0.0, 1.0), (5, 3), (9, 2), (10, 10), (15, 20), (31, 7)].map { TimedValue(ts: $0.0, value: $0.1) }
        _ = values
        let out = Self.run(WindowAggregator(seconds: 10, statistic: stat), input)
        #expect(out.map(\.ts) == [0, 10, 30])
        let expected: [Double] = switch stat {
        case .min: [1, 10, 7]
        case .max: [3, 20, 7]
        case .mean: [2, 15, 7]
        case .count: [3, 2, 1]
        }
        #expect(out.map(\.value) == expected)
    }

    @Test("1-D Kalman converges to a constant and its variance shrinks")
    func kalmanConverges() {
        var rng = SplitMix64(seed: 2)
        var f = KalmanFilter1D(q: 1e-6, r: 4)
        var last = 0.0
        for i in 0..<2000 { last = f.process(TimedValue(ts: Double(i), value: 50 + 2 * rng.gaussian()))!.value }
        #expect(abs(last - 50) < 0.3)
        #expect(f.p < 0.05)
    }
}
