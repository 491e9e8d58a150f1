/// A rate-of-change (slew) limit: the output moves by at most ``maxRate`` units per second.
///
/// A physically impossible jump (fuel rising 40 % in a second while driving) is clamped; a real,
/// lasting change still comes through, at the limited rate.
public struct RateLimitFilter: ScalarFilter, Sendable {
    /// Largest allowed change per second (positive).
    public let maxRate: Double
    private var last = TimedValue(ts: 0, value: 0)
    private var started = false

    /// Creates a rate limit.
    public init(maxRate: Double) {
        self.maxRate = maxRate
    }

    /// Clamps the change since the previous output to `maxRate · Δt`.
    public mutating func process(_ input: TimedValue) -> TimedValue? {
        if !started {
            started = true
            last = input
            return input
        }
        let step = maxRate * (input.ts - last.ts)
        let delta = min(max(input.value - last.value, -step), step)
        last = TimedValue(ts: input.ts, value: last.value + delta)
        return last
    }
}
