import Foundation

/// Exponential moving average: `y += α (x − y)`.
///
/// With a fixed ``alpha`` every sample weighs the same; with a time constant `tau` the weight is
/// `α = 1 − exp(−Δt/τ)`, so irregular sampling and bursts do not distort the average.
public struct EMAFilter: ScalarFilter, Sendable {
    /// Fixed smoothing factor in (0, 1], used when ``tau`` is nil.
    public let alpha: Double
    /// Time constant in seconds; overrides ``alpha`` when set.
    public let tau: Double?
    private var y: Double = 0
    private var lastTs: Double = 0
    private var started = false

    /// Creates a fixed-weight EMA.
    public init(alpha: Double) {
        self.alpha = alpha
        self.tau = nil
    }

    /// Creates a time-aware EMA with time constant `tau` seconds.
    public init(tau: Double) {
        self.alpha = 1
        self.tau = tau
    }

    /// Updates the average; the first sample passes through.
    public mutating func process(_ input: TimedValue) -> TimedValue? {
        if !started {
            started = true
            y = input.value
        } else {
            let a = tau.map { 1 - exp(-(input.ts - lastTs) / $0) } ?? alpha
            y += a * (input.value - y)
        }
        lastTs = input.ts
        return TimedValue(ts: input.ts, value: y)
    }
}
