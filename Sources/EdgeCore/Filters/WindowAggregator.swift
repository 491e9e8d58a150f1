/// Summary of one aggregation window.
public struct WindowSummary: Sendable, Hashable {
    /// Window start, epoch seconds (a multiple of the window length).
    public var start: Double
    /// Smallest value in the window.
    public var min: Double
    /// Largest value in the window.
    public var max: Double
    /// Sum of the values.
    public var sum: Double
    /// Number of samples.
    public var count: Int
    /// Arithmetic mean.
    public var mean: Double { sum / Double(count) }
}

/// Which statistic a window stage passes downstream.
public enum WindowStatistic: String, Sendable, Hashable, Codable, CaseIterable {
    /// Smallest value.
    case min
    /// Largest value.
    case max
    /// Mean value.
    case mean
    /// Sample count.
    case count
}

/// Tumbling-window aggregation aligned to multiples of ``seconds`` since the epoch.
///
/// A window is emitted (stamped with its start) when the first sample of a later window arrives,
/// or on ``flush()``. Empty windows emit nothing: silence is reported as a gap instead.
public struct WindowAggregator: ScalarFilter, Sendable {
    /// Window length in seconds.
    public let seconds: Double
    /// The statistic passed downstream.
    public let statistic: WindowStatistic
    private var current: WindowSummary?
    /// The most recently completed window.
    public private(set) var lastCompleted: WindowSummary?

    /// Creates a window stage.
    public init(seconds: Double, statistic: WindowStatistic) {
        self.seconds = seconds
        self.statistic = statistic
    }

    /// Adds a sample; emits the previous window when this one starts a new window.
    public mutating func process(_ input: TimedValue) -> TimedValue? {
        let start = (input.ts / seconds).rounded(.down) * seconds
        if var w = current, w.start == start {
            if input.value < w.min { w.min = input.value }
            if input.value > w.max { w.max = input.value }
            w.sum += input.value
            w.count += 1
            current = w
            return nil
        }
        let done = flush()
        current = WindowSummary(start: start, min: input.value, max: input.value, sum: input.value, count: 1)
        return done
    }

    /// Emits the open window, if any.
    public mutating func flush() -> TimedValue? {
        guard let w = current else { return nil }
        current = nil
        lastCompleted = w
        let v: Double
        switch statistic {
        case .min: v = w.min
        case .max: v = w.max
        case .mean: v = w.mean
        case .count: v = Double(w.count)
        }
        return TimedValue(ts: w.start, value: v)
    }
}
