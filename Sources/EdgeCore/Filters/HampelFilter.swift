/// A causal Hampel outlier filter.
///
/// Over the trailing ``window`` raw samples (including the current one) it computes the median `m`
/// and the median absolute deviation `MAD`. A sample with `|x − m| > nSigmas · 1.4826 · MAD` is an
/// outlier and is replaced by `m`. Until the window is full samples pass unchanged.
public struct HampelFilter: ScalarFilter, Sendable {
    /// Consistency constant making MAD estimate σ for Gaussian noise.
    public static let madScale = 1.4826
    /// Window length in samples (3…255).
    public var window: Int { ring.capacity }
    /// Threshold in estimated standard deviations.
    public let nSigmas: Double
    private var ring: SlidingWindow
    /// Number of samples replaced so far.
    public private(set) var replaced = 0

    /// Creates a Hampel filter.
    public init(window: Int, nSigmas: Double = 3) {
        ring = SlidingWindow(capacity: window)
        self.nSigmas = nSigmas
    }

    /// Passes `input`, or the window median if `input` is an outlier.
    public mutating func process(_ input: TimedValue) -> TimedValue? {
        ring.push(input.value)
        guard ring.isFull else { return input }
        let m = ring.median()
        let mad = ring.mad(around: m)
        if abs(input.value - m) > nSigmas * HampelFilter.madScale * mad {
            replaced += 1
            return TimedValue(ts: input.ts, value: m)
        }
        return input
    }
}
