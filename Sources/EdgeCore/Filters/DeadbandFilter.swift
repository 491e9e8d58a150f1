/// A deadband: a value is reported only when it moved at least ``band`` from the last reported value,
/// or when ``maxSilence`` seconds passed since the last report (a heartbeat).
///
/// Reconstruction is sample-and-hold, so the error of any suppressed sample is below ``band``.
public struct DeadbandFilter: ScalarFilter, Sendable {
    /// Smallest change that is reported.
    public let band: Double
    /// Optional heartbeat in seconds.
    public let maxSilence: Double?
    private var last = TimedValue(ts: 0, value: 0)
    private var started = false
    /// Largest `|x − last reported|` among suppressed samples.
    public private(set) var measuredMaxError: Double = 0

    /// Creates a deadband.
    public init(band: Double, maxSilence: Double? = nil) {
        self.band = band
        self.maxSilence = maxSilence
    }

    /// The promised bound: a suppressed sample differs from the held value by less than ``band``.
    public var errorBound: Double { band }

    /// Reports `input` if it left the band (or the heartbeat is due), otherwise suppresses it.
    public mutating func process(_ input: TimedValue) -> TimedValue? {
        if started {
            let d = abs(input.value - last.value)
            let heartbeat = maxSilence.map { input.ts - last.ts >= $0 } ?? false
            if d < band && !heartbeat {
                if d > measuredMaxError { measuredMaxError = d }
                return nil
            }
        }
        started = true
        last = input
        return input
    }

    /// Starts a new segment: the next sample is reported.
    public mutating func flush() -> TimedValue? {
        started = false
        return nil
    }
}
