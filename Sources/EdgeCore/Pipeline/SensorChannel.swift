/// The runtime state of one sensor inside a ``Pipeline``:
/// reorder window → gap detection → filters → rules → compression → records.
struct SensorChannel {
    let index: Int
    let isPosition: Bool
    var reorder: ReorderBuffer
    var gaps: GapDetector
    var filters: [any ScalarFilter]
    var rules: [AlertRule]
    var compression: [any ScalarFilter]
    var gps: GPSKalmanFilter?
    var stats = SensorStats()
    /// Monotonic time at which the sample being processed entered the pipeline.
    var entered: UInt64 = 0
    let hasRules: Bool
    let hasStaleRules: Bool
    let hasValueRules: Bool

    init(index: Int, config: SensorConfig, reorderWindow: Double) {
        self.index = index
        isPosition = config.kind == .position
        reorder = ReorderBuffer(window: reorderWindow)
        gaps = GapDetector(silentAfter: config.silentAfter, unchangedAfter: config.unchangedAfter)
        filters = config.filters.map { $0.make() }
        compression = config.compression.map { $0.make() }
        rules = config.rules.map { AlertRule(name: $0.name, kind: $0.kind) }
        gps = config.gps?.make()
        hasRules = !rules.isEmpty
        hasStaleRules = rules.contains { $0.staleAfter != nil }
        hasValueRules = rules.contains { $0.staleAfter == nil }
        stats.maxErrorBound = (filters + compression).map(\.errorBound).max() ?? 0
    }

    /// Processes one in-order sample.
    mutating func process(_ s: Sample, out: inout [EdgeRecord]) {
        if let gap = gaps.silence(before: s.ts) {
            endSegment(out: &out)
            out.append(.gap(sensor: index, gap))
        }
        gaps.observe(s.ts)
        if hasStaleRules {
            for i in rules.indices {
                if rules[i].sampleArrived() != nil {
                    alert(Alert(ts: s.ts, rule: rules[i].name, state: .cleared, value: nil), out: &out)
                }
            }
        }
        switch s.reading {
        case .scalar(let v):
            guard !isPosition else { return }
            runFilters(from: 0, TimedValue(ts: s.ts, value: v), out: &out)
        case .position(let fix):
            guard isPosition else { return }
            var position = fix
            if var f = gps {
                position = f.process(ts: s.ts, fix: fix).0
                gps = f
            }
            if let g = gaps.emitted(s.ts) { out.append(.gap(sensor: index, g)) }
            stats.valuesOut += 1
            out.append(.position(sensor: index, ts: s.ts, position))
        }
    }

    /// Flushes held values and reports suppressed time, at a gap or at the end.
    mutating func endSegment(out: inout [EdgeRecord], open: Bool = false) {
        for k in filters.indices {
            if let o = filters[k].flush() { runFilters(from: k + 1, o, out: &out) }
        }
        for k in compression.indices {
            if let o = compression[k].flush() { runCompression(from: k + 1, o, out: &out) }
        }
        if let u = gaps.unchangedBeforeGap(open: open) { out.append(.gap(sensor: index, u)) }
    }

    private mutating func runFilters(from start: Int, _ input: TimedValue, out: inout [EdgeRecord]) {
        var v = input
        var k = start
        while k < filters.count {
            guard let o = filters[k].process(v) else { return }
            v = o
            k += 1
        }
        if hasValueRules {
            for i in rules.indices {
                if let state = rules[i].evaluate(ts: v.ts, value: v.value) {
                    alert(Alert(ts: v.ts, rule: rules[i].name, state: state, value: v.value), out: &out)
                }
            }
        }
        runCompression(from: 0, v, out: &out)
    }

    private mutating func runCompression(from start: Int, _ input: TimedValue, out: inout [EdgeRecord]) {
        var v = input
        var k = start
        while k < compression.count {
            guard let o = compression[k].process(v) else { return }
            v = o
            k += 1
        }
        if let g = gaps.emitted(v.ts) { out.append(.gap(sensor: index, g)) }
        stats.valuesOut += 1
        out.append(.value(sensor: index, v))
    }

    mutating func alert(_ a: Alert, out: inout [EdgeRecord]) {
        stats.alerts += 1
        if entered != 0 {
            let latency = Double(monotonicNanos() &- entered) / 1e9
            if latency > stats.maxAlertLatency { stats.maxAlertLatency = latency }
        }
        out.append(.alert(sensor: index, a))
    }

    /// Raises stale rules whose limit passed by `now`.
    mutating func checkStale(now: Double, out: inout [EdgeRecord]) {
        guard let last = gaps.lastInput else { return }
        for i in rules.indices {
            if let at = rules[i].checkStale(now: now, lastSample: last) {
                alert(Alert(ts: at, rule: rules[i].name, state: .raised, value: nil), out: &out)
            }
        }
    }

    /// The earliest event time at which one of this sensor's stale rules can fire.
    var staleDeadline: Double {
        guard let last = gaps.lastInput else { return .infinity }
        var d = Double.infinity
        for r in rules where !r.isRaised {
            if let after = r.staleAfter { d = min(d, last + after) }
        }
        return d
    }

    /// Final counters, including the errors measured by the compression stages.
    func finalStats() -> SensorStats {
        var s = stats
        s.maxError = (filters + compression).map(\.measuredMaxError).max() ?? 0
        s.late = reorder.late
        s.duplicates = reorder.duplicates
        return s
    }
}
