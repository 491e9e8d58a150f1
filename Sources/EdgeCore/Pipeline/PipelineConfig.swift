/// A scalar filter stage as configured in a pipeline document.
public enum FilterSpec: Sendable, Hashable {
    /// ``KalmanFilter1D``.
    case kalman(q: Double, r: Double, x0: Double?, p0: Double?, timeScaled: Bool)
    /// ``EMAFilter`` with a fixed weight.
    case ema(alpha: Double)
    /// ``EMAFilter`` with a time constant.
    case emaTau(tau: Double)
    /// ``MedianFilter``.
    case median(window: Int)
    /// ``HampelFilter``.
    case hampel(window: Int, nSigmas: Double)
    /// ``RateLimitFilter``.
    case rateLimit(maxRate: Double)
    /// ``DeadbandFilter``.
    case deadband(band: Double, maxSilence: Double?)
    /// ``HysteresisFilter``.
    case hysteresis(HysteresisSwitch)
    /// ``SwingingDoorFilter``.
    case swingingDoor(deviation: Double, maxInterval: Double?)
    /// ``WindowAggregator``.
    case window(seconds: Double, statistic: WindowStatistic)

    /// Builds a fresh stage.
    public func make() -> any ScalarFilter {
        switch self {
        case let .kalman(q, r, x0, p0, timeScaled): KalmanFilter1D(q: q, r: r, x0: x0, p0: p0, timeScaled: timeScaled)
        case let .ema(alpha): EMAFilter(alpha: alpha)
        case let .emaTau(tau): EMAFilter(tau: tau)
        case let .median(window): MedianFilter(window: window)
        case let .hampel(window, n): HampelFilter(window: window, nSigmas: n)
        case let .rateLimit(rate): RateLimitFilter(maxRate: rate)
        case let .deadband(band, silence): DeadbandFilter(band: band, maxSilence: silence)
        case let .hysteresis(sw): HysteresisFilter(sw)
        case let .swingingDoor(dev, interval): SwingingDoorFilter(deviation: dev, maxInterval: interval)
        case let .window(seconds, stat): WindowAggregator(seconds: seconds, statistic: stat)
        }
    }
}

/// Settings of the GPS filter of a position sensor.
public struct GPSFilterSpec: Sendable, Hashable {
    /// Measurement standard deviation, metres.
    public var measurementSigma: Double = 5
    /// Acceleration standard deviation, m/s².
    public var accelerationSigma: Double = 1
    /// Initial velocity standard deviation, m/s.
    public var velocitySigma: Double = 10
    /// χ² gate.
    public var gate: Double = 13.8
    /// Rejections in a row before restarting.
    public var maxRejects: Int = 5
    /// Gap in seconds that restarts the filter.
    public var resetAfter: Double = 60

    /// Defaults.
    public init() {}

    /// Builds a fresh filter.
    public func make() -> GPSKalmanFilter {
        GPSKalmanFilter(
            measurementVariance: measurementSigma * measurementSigma,
            accelerationVariance: accelerationSigma * accelerationSigma,
            initialVelocityVariance: velocitySigma * velocitySigma,
            gate: gate, maxConsecutiveRejects: maxRejects, resetAfter: resetAfter)
    }
}

/// Whether a sensor reports scalars or positions.
public enum SensorKind: String, Sendable, Hashable {
    /// Scalar values.
    case scalar
    /// Latitude/longitude fixes.
    case position
}

/// A named alert rule.
public struct RuleConfig: Sendable, Hashable {
    /// Name reported in alerts.
    public var name: String
    /// What the rule checks.
    public var kind: AlertRuleKind

    /// Creates a rule configuration.
    public init(name: String, kind: AlertRuleKind) {
        self.name = name
        self.kind = kind
    }
}

/// One sensor's configuration.
public struct SensorConfig: Sendable, Hashable {
    /// Sensor name as it appears in the input.
    public var name: String
    /// Scalar or position.
    public var kind: SensorKind
    /// Silence in seconds that counts as a sensor-silent gap.
    public var silentAfter: Double
    /// Suppression in seconds that counts as a filtered-unchanged gap.
    public var unchangedAfter: Double
    /// Smoothing stages, applied before the rules.
    public var filters: [FilterSpec]
    /// Local alert rules.
    public var rules: [RuleConfig]
    /// Compression stages, applied after the rules to the reported values.
    public var compression: [FilterSpec]
    /// GPS filter settings (position sensors only; nil = positions pass unfiltered).
    public var gps: GPSFilterSpec?

    /// Creates a sensor configuration.
    public init(
        name: String, kind: SensorKind = .scalar, silentAfter: Double = 300, unchangedAfter: Double? = nil,
        filters: [FilterSpec] = [], rules: [RuleConfig] = [], compression: [FilterSpec] = [],
        gps: GPSFilterSpec? = nil
    ) {
        self.name = name
        self.kind = kind
        self.silentAfter = silentAfter
        self.unchangedAfter = unchangedAfter ?? silentAfter
        self.filters = filters
        self.compression = compression
        self.gps = gps
        self.rules = rules
    }
}

/// A whole pipeline: every sensor of a device and the shared reorder window.
public struct PipelineConfig: Sendable, Hashable {
    /// Reorder window in seconds.
    public var reorderWindow: Double
    /// Sensors, in document order (their index identifies them in ``EdgeRecord``).
    public var sensors: [SensorConfig]

    /// Creates a configuration.
    public init(reorderWindow: Double = 0, sensors: [SensorConfig]) {
        self.reorderWindow = reorderWindow
        self.sensors = sensors
    }

    /// The index of a sensor by name.
    public func index(of sensor: String) -> Int? {
        sensors.firstIndex { $0.name == sensor }
    }
}
