/// A stage of a scalar filter chain.
///
/// A stage sees samples in event-time order. It returns the sample to pass on, or `nil` when it
/// holds or suppresses the input. Stages that hold data (swinging door, windows) release it in
/// ``flush()``, which the pipeline calls at a gap and at the end of input.
public protocol ScalarFilter {
    /// Feeds one sample and returns what to pass downstream, if anything.
    mutating func process(_ input: TimedValue) -> TimedValue?
    /// Releases a held sample, if any, and starts a new segment.
    mutating func flush() -> TimedValue?
    /// The largest reconstruction error this stage has introduced so far (0 for smoothing stages).
    var measuredMaxError: Double { get }
    /// The largest reconstruction error this stage promises (0 for smoothing stages).
    var errorBound: Double { get }
}

extension ScalarFilter {
    /// Smoothing stages hold nothing.
    public mutating func flush() -> TimedValue? { nil }
    /// Smoothing stages do not reconstruct.
    public var measuredMaxError: Double { 0 }
    /// Smoothing stages promise nothing.
    public var errorBound: Double { 0 }
}
