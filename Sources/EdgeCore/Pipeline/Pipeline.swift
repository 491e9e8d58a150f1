/// The edge filtering core: routes samples of many sensors through their configured chains.
///
/// For each sensor: a bounded reorder window, typed gap detection, smoothing filters, local alert
/// rules, then compression. Records are appended to a caller-owned buffer, so the hot path does not
/// allocate once the buffer has grown. A `Pipeline` is a value owned by one task; it is not shared.
public struct Pipeline {
    /// The configuration this pipeline was built from.
    public let config: PipelineConfig
    private var channels: [SensorChannel]
    private var staleChannels: [Int]
    private var ready: [Sample] = []
    /// Event time before which no stale rule can fire (a lower bound; rescanned when passed).
    private var nextStaleCheck = -Double.infinity
    /// The newest event time seen on any sensor.
    public private(set) var now = -Double.infinity
    /// Whether wall-clock sample-to-alert latency is measured (costs one clock read per sample of a
    /// sensor with rules).
    public var measuresLatency = true

    /// Builds a pipeline.
    public init(config: PipelineConfig) {
        self.config = config
        let built = config.sensors.enumerated().map {
            SensorChannel(index: $0.offset, config: $0.element, reorderWindow: config.reorderWindow)
        }
        channels = built
        staleChannels = built.indices.filter { built[$0].hasStaleRules }
        ready.reserveCapacity(16)
    }

    /// Feeds one sample of sensor number `sensor` (an index into `config.sensors`) and appends the
    /// resulting records to `out`. A reading of the wrong kind for the sensor is ignored.
    public mutating func push(sensor: Int, _ sample: Sample, into out: inout [EdgeRecord]) {
        if measuresLatency && channels[sensor].hasRules {
            channels[sensor].entered = monotonicNanos()
        }
        channels[sensor].stats.samplesIn += 1
        if sample.ts > now { tick(now: sample.ts, into: &out) }
        ready.removeAll(keepingCapacity: true)
        _ = channels[sensor].reorder.push(sample, ready: &ready)
        for s in ready { channels[sensor].process(s, out: &out) }
        channels[sensor].entered = 0
        if channels[sensor].hasStaleRules { nextStaleCheck = min(nextStaleCheck, channels[sensor].staleDeadline) }
    }

    /// Feeds a scalar value (convenience for ``push(sensor:_:into:)``).
    @inlinable
    public mutating func push(sensor: Int, ts: Double, value: Double, into out: inout [EdgeRecord]) {
        push(sensor: sensor, Sample(ts: ts, reading: .scalar(value)), into: &out)
    }

    /// Advances the pipeline's clock without a sample (the agent calls this from its timer), so
    /// stale rules fire even when every sensor has gone silent. Time never goes backwards.
    public mutating func tick(now t: Double, into out: inout [EdgeRecord]) {
        guard t > now else { return }
        now = t
        guard now > nextStaleCheck, !staleChannels.isEmpty else { return }
        var next = Double.infinity
        for i in staleChannels {
            channels[i].checkStale(now: now, out: &out)
            next = min(next, channels[i].staleDeadline)
        }
        nextStaleCheck = next
    }

    /// Records that the agent restarted at `ts`: every sensor that had data gets an agent-down gap
    /// from the last event time seen to `ts`, and held values are flushed first.
    public mutating func agentBooted(at ts: Double, into out: inout [EdgeRecord]) {
        nextStaleCheck = -Double.infinity
        let downSince = now.isFinite ? now : ts
        for i in channels.indices {
            drain(i, out: &out)
            guard channels[i].gaps.lastInput != nil else { continue }
            channels[i].endSegment(out: &out)
            channels[i].gaps.agentBooted(at: ts)
            out.append(.gap(sensor: i, Gap(kind: .agentDown, start: downSince, duration: max(0, ts - downSince))))
        }
        if ts > now { now = ts }
    }

    /// Ends the input: releases the reorder windows, flushes held values, reports gaps still open
    /// and appends one stats record per sensor.
    public mutating func finish(into out: inout [EdgeRecord]) {
        for i in channels.indices {
            drain(i, out: &out)
            channels[i].endSegment(out: &out, open: true)
            if let last = channels[i].gaps.lastInput, now - last > channels[i].gaps.silentAfter {
                out.append(.gap(sensor: i, Gap(kind: .sensorSilent, start: last, duration: now - last, open: true)))
            }
            out.append(.stats(sensor: i, channels[i].finalStats()))
        }
    }

    /// Current counters of a sensor.
    public func stats(sensor: Int) -> SensorStats {
        channels[sensor].finalStats()
    }

    private mutating func drain(_ i: Int, out: inout [EdgeRecord]) {
        ready.removeAll(keepingCapacity: true)
        channels[i].reorder.drain(into: &ready)
        for s in ready { channels[i].process(s, out: &out) }
    }
}
