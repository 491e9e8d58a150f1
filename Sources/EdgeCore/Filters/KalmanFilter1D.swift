/// A one-dimensional Kalman filter over a random-walk (constant level) model.
///
/// State `x` with variance `P`. Prediction adds process noise `q` (per second when
/// ``timeScaled`` is true, otherwise per sample); the update uses the Joseph form
/// `P = (1−K)²P + K²R`, exactly as filterpy's `KalmanFilter.update`, so outputs match filterpy and
/// pykalman to rounding. Missing samples are simply absent: the next prediction spans the gap.
public struct KalmanFilter1D: ScalarFilter, Sendable {
    /// Process noise variance (per second if ``timeScaled``, else per sample).
    public let q: Double
    /// Measurement noise variance.
    public let r: Double
    /// Initial state; `nil` starts at the first measurement.
    public let x0: Double?
    /// Initial variance.
    public let p0: Double
    /// Whether `q` scales with the time between samples.
    public let timeScaled: Bool

    /// Current state estimate.
    public private(set) var x: Double = 0
    /// Current estimate variance.
    public private(set) var p: Double = 0
    private var lastTs: Double = 0
    private var started = false

    /// Creates a filter. `q` and `r` must be positive and finite.
    public init(q: Double, r: Double, x0: Double? = nil, p0: Double? = nil, timeScaled: Bool = true) {
        self.q = q
        self.r = r
        self.x0 = x0
        self.p0 = p0 ?? r
        self.timeScaled = timeScaled
    }

    /// Predicts to the sample's time, then corrects with its value.
    public mutating func process(_ input: TimedValue) -> TimedValue? {
        if !started {
            started = true
            x = x0 ?? input.value
            p = p0
        } else {
            let dt = input.ts - lastTs
            p += timeScaled ? q * dt : q
        }
        lastTs = input.ts
        let y = input.value - x
        let s = p + r
        let k = p / s
        x += k * y
        let ikh = 1 - k
        p = ikh * p * ikh + k * r * k
        return TimedValue(ts: input.ts, value: x)
    }
}
