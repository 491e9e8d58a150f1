/// The kind of a gap in a sensor's data.
public enum GapKind: String, Sendable, Hashable, Codable {
    /// The sensor sent nothing for longer than its silence threshold.
    case sensorSilent = "sensor_silent"
    /// The sensor kept reporting, but the compression stages suppressed every value as unchanged.
    case filteredUnchanged = "filtered_unchanged"
    /// The agent itself was not running.
    case agentDown = "agent_down"
}

/// A typed gap: missing data as a first-class record.
public struct Gap: Sendable, Hashable {
    /// Why data is missing.
    public var kind: GapKind
    /// Start of the gap, epoch seconds (time of the last data before it).
    public var start: Double
    /// Length of the gap in seconds.
    public var duration: Double
    /// True when the gap was still open when the input ended.
    public var open: Bool

    /// Creates a gap.
    public init(kind: GapKind, start: Double, duration: Double, open: Bool = false) {
        self.kind = kind
        self.start = start
        self.duration = duration
        self.open = open
    }
}

/// Whether an alert was raised or cleared.
public enum AlertState: String, Sendable, Hashable, Codable {
    /// The rule's condition started to hold.
    case raised
    /// The rule's condition stopped holding.
    case cleared
}

/// An alert transition decided on the device.
public struct Alert: Sendable, Hashable {
    /// Event time of the sample (or the detection) that caused the transition.
    public var ts: Double
    /// The rule's name.
    public var rule: String
    /// Raised or cleared.
    public var state: AlertState
    /// The value that caused the transition, if the rule looks at values.
    public var value: Double?

    /// Creates an alert.
    public init(ts: Double, rule: String, state: AlertState, value: Double?) {
        self.ts = ts
        self.rule = rule
        self.state = state
        self.value = value
    }
}

/// Per-sensor counters reported at the end of a run.
public struct SensorStats: Sendable, Hashable {
    /// Samples accepted into the pipeline (after parsing).
    public var samplesIn: Int = 0
    /// Value records emitted.
    public var valuesOut: Int = 0
    /// Samples dropped because they arrived after the reorder window closed.
    public var late: Int = 0
    /// Samples dropped because their timestamp duplicated an earlier sample.
    public var duplicates: Int = 0
    /// Alert transitions emitted.
    public var alerts: Int = 0
    /// Largest measured difference between a compression stage's input and its reconstruction.
    public var maxError: Double = 0
    /// The largest error the configured compression stages promise (0 when none).
    public var maxErrorBound: Double = 0
    /// Largest wall-clock latency, in seconds, from a sample entering the pipeline to an alert it caused.
    public var maxAlertLatency: Double = 0

    /// Samples in per value out (1 when nothing was emitted).
    public var compressionRatio: Double {
        valuesOut == 0 ? Double(samplesIn) : Double(samplesIn) / Double(valuesOut)
    }

    /// Creates zeroed counters.
    public init() {}
}

/// One output record of a pipeline; `sensor` is the index of the sensor in the pipeline configuration.
public enum EdgeRecord: Sendable, Hashable {
    /// A filtered scalar value.
    case value(sensor: Int, TimedValue)
    /// A filtered position.
    case position(sensor: Int, ts: Double, GeoPosition)
    /// An alert transition.
    case alert(sensor: Int, Alert)
    /// A typed gap.
    case gap(sensor: Int, Gap)
    /// End-of-run statistics (boxed: rare and large, so the common cases stay small to copy).
    indirect case stats(sensor: Int, SensorStats)
}
