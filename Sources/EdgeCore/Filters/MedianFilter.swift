/// A causal moving median over the last ``window`` samples (fewer until the window fills).
///
/// Removes single-sample spikes without the lag a mean would add to a step.
public struct MedianFilter: ScalarFilter, Sendable {
    /// Window length in samples (1…255).
    public var window: Int { ring.capacity }
    private var ring: SlidingWindow

    /// Creates a median filter over `window` samples.
    public init(window: Int) {
        ring = SlidingWindow(capacity: window)
    }

    /// Returns the median of the window including `input`.
    public mutating func process(_ input: TimedValue) -> TimedValue? {
        ring.push(input.value)
        return TimedValue(ts: input.ts, value: ring.median())
    }
}
