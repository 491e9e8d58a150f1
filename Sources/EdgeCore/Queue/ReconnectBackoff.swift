/// Reconnect delays with full jitter and a cap, plus an initial random delay.
///
/// Attempt `n` (from 0) waits a uniform random time in `[0, min(cap, base · 2ⁿ)]` ("full jitter",
/// as in the AWS Architecture Blog's *Exponential Backoff and Jitter*). Before the very first
/// connection a device waits a uniform random time in `[0, initialSpread]`, so a whole site that
/// powers up (or loses its uplink) at once does not reconnect in lock-step.
public struct ReconnectBackoff: Sendable, Hashable {
    /// Delay scale of the first retry, seconds.
    public let base: Double
    /// Largest delay, seconds.
    public let cap: Double
    /// Upper bound of the initial random delay, seconds.
    public let initialSpread: Double
    /// Failed attempts since the last success.
    public private(set) var attempt = 0

    /// Creates a backoff policy. Values are clamped to be non-negative, and `cap ≥ base`.
    public init(base: Double = 1, cap: Double = 300, initialSpread: Double = 30) {
        self.base = max(0, base)
        self.cap = max(self.base, cap)
        self.initialSpread = max(0, initialSpread)
    }

    /// The random delay before the first connection.
    public func initialDelay<G: RandomNumberGenerator>(using rng: inout G) -> Double {
        initialSpread == 0 ? 0 : Double.random(in: 0...initialSpread, using: &rng)
    }

    /// The ceiling of the next delay: `min(cap, base · 2^attempt)`.
    public var currentCeiling: Double {
        attempt >= 62 ? cap : min(cap, base * Double(UInt64(1) << UInt64(attempt)))
    }

    /// The delay before the next attempt; counts the attempt.
    public mutating func nextDelay<G: RandomNumberGenerator>(using rng: inout G) -> Double {
        let ceiling = currentCeiling
        attempt += 1
        return ceiling == 0 ? 0 : Double.random(in: 0...ceiling, using: &rng)
    }

    /// A connection succeeded: the next failure starts from `base` again.
    public mutating func reset() {
        attempt = 0
    }
}
