/// A token-bucket rate limit on drained bytes.
///
/// Tokens accrue at ``rate`` per second up to ``burst``. Taking `n` tokens returns how long to wait
/// before sending; the tokens are reserved either way, so callers simply sleep and send.
public struct TokenBucket: Sendable, Hashable {
    /// Tokens per second (bytes per second for the drainer).
    public let rate: Double
    /// Bucket size.
    public let burst: Double
    private var tokens: Double
    private var last: Double?

    /// Creates a full bucket. `rate` must be positive.
    public init(rate: Double, burst: Double) {
        self.rate = max(rate, .leastNonzeroMagnitude)
        self.burst = max(burst, 1)
        self.tokens = self.burst
    }

    /// Reserves `n` tokens at time `now` (seconds) and returns the wait before they are available.
    public mutating func take(_ n: Double, now: Double) -> Double {
        if let last { tokens = min(burst, tokens + (now - last) * rate) }
        last = now
        tokens -= n
        return tokens >= 0 ? 0 : -tokens / rate
    }
}
