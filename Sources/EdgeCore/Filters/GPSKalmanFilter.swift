import Foundation

/// A 2-D constant-velocity Kalman filter for GPS fixes, with innovation gating and gap recovery.
///
/// Fixes are projected onto a local east/north plane (metres) around an origin fix with an
/// equirectangular projection. State `[e, n, vₑ, vₙ]`; `F` is the constant-velocity transition;
/// `Q` is the discrete white-noise acceleration model (filterpy's `Q_discrete_white_noise` per axis,
/// variance ``accelerationVariance``); `H` observes position with variance ``measurementVariance``.
///
/// Gating: after the prediction the squared Mahalanobis distance `d² = yᵀS⁻¹y` of the innovation is
/// compared with ``gate`` (χ² with 2 degrees of freedom; 13.8 ≈ 99.9 %). A fix beyond the gate is a
/// jump: it is rejected and the predicted position is emitted. After ``maxConsecutiveRejects``
/// rejections in a row the track is assumed to have really moved and the filter restarts at the
/// fix. A gap longer than ``resetAfter`` seconds also restarts the filter, so a long silence never
/// leaves a stale velocity extrapolating the vehicle across the map.
///
/// The update uses the Joseph form exactly as filterpy's `KalmanFilter.update`.
public struct GPSKalmanFilter: Sendable {
    /// Mean Earth radius used by the local projection, metres.
    public static let earthRadius = 6_371_008.8

    /// Measurement variance per axis, m².
    public let measurementVariance: Double
    /// Acceleration noise variance, (m/s²)².
    public let accelerationVariance: Double
    /// Initial velocity variance, (m/s)².
    public let initialVelocityVariance: Double
    /// χ² gate on the innovation.
    public let gate: Double
    /// Rejections in a row after which the filter restarts at the fix.
    public let maxConsecutiveRejects: Int
    /// Gap in seconds after which the filter restarts.
    public let resetAfter: Double

    /// What the filter did with a fix.
    public enum Outcome: Sendable, Hashable {
        /// The fix updated the track.
        case accepted
        /// The fix failed the gate; the prediction was emitted instead.
        case rejected
        /// The filter (re)started at the fix.
        case reset
    }

    /// State vector `[e, n, vₑ, vₙ]` in metres and metres per second.
    public private(set) var x: [Double] = [0, 0, 0, 0]
    /// State covariance, row-major 4×4.
    public private(set) var p: [Double] = [Double](repeating: 0, count: 16)
    /// Squared Mahalanobis distance of the last innovation.
    public private(set) var lastMahalanobis: Double = 0
    /// Number of fixes rejected so far.
    public private(set) var rejected = 0
    private var origin = GeoPosition(lat: 0, lon: 0)
    private var cosLat0 = 1.0
    private var lastTs = 0.0
    private var started = false
    private var consecutiveRejects = 0

    /// Creates a filter.
    public init(
        measurementVariance: Double, accelerationVariance: Double, initialVelocityVariance: Double = 100,
        gate: Double = 13.8, maxConsecutiveRejects: Int = 5, resetAfter: Double = 60
    ) {
        self.measurementVariance = measurementVariance
        self.accelerationVariance = accelerationVariance
        self.initialVelocityVariance = initialVelocityVariance
        self.gate = gate
        self.maxConsecutiveRejects = maxConsecutiveRejects
        self.resetAfter = resetAfter
    }

    /// Projects a position onto the local plane (east, north) in metres.
    public func project(_ g: GeoPosition) -> (e: Double, n: Double) {
        let k = GPSKalmanFilter.earthRadius * Double.pi / 180
        return ((g.lon - origin.lon) * k * cosLat0, (g.lat - origin.lat) * k)
    }

    /// Maps a local (east, north) point back to a position.
    public func unproject(e: Double, n: Double) -> GeoPosition {
        let k = GPSKalmanFilter.earthRadius * Double.pi / 180
        return GeoPosition(lat: origin.lat + n / k, lon: origin.lon + e / (k * cosLat0))
    }

    /// Processes one fix and returns the filtered position and what happened to the fix.
    public mutating func process(ts: Double, fix: GeoPosition) -> (GeoPosition, Outcome) {
        if !started || ts - lastTs > resetAfter {
            restart(ts: ts, fix: fix)
            return (fix, .reset)
        }
        let dt = ts - lastTs
        lastTs = ts
        predict(dt: dt)
        let z = project(fix)
        // Innovation y = z − Hx and S = HPHᵀ + R.
        let y0 = z.e - x[0], y1 = z.n - x[1]
        let s00 = p[0] + measurementVariance, s01 = p[1], s10 = p[4], s11 = p[5] + measurementVariance
        let det = s00 * s11 - s01 * s10
        let i00 = s11 / det, i01 = -s01 / det, i10 = -s10 / det, i11 = s00 / det
        let d2 = y0 * (i00 * y0 + i01 * y1) + y1 * (i10 * y0 + i11 * y1)
        lastMahalanobis = d2
        if !(d2 <= gate) {
            rejected += 1
            consecutiveRejects += 1
            if consecutiveRejects >= maxConsecutiveRejects {
                restart(ts: ts, fix: fix)
                return (fix, .reset)
            }
            return (unproject(e: x[0], n: x[1]), .rejected)
        }
        consecutiveRejects = 0
        update(y0: y0, y1: y1, si: (i00, i01, i10, i11))
        return (unproject(e: x[0], n: x[1]), .accepted)
    }

    private mutating func restart(ts: Double, fix: GeoPosition) {
        started = true
        consecutiveRejects = 0
        lastTs = ts
        origin = fix
        cosLat0 = cos(fix.lat * Double.pi / 180)
        x = [0, 0, 0, 0]
        p = [Double](repeating: 0, count: 16)
        p[0] = measurementVariance
        p[5] = measurementVariance
        p[10] = initialVelocityVariance
        p[15] = initialVelocityVariance
    }

    /// x = Fx; P = FPFᵀ + Q.
    private mutating func predict(dt: Double) {
        var f = GPSKalmanFilter.identity
        f[2] = dt
        f[7] = dt
        x = GPSKalmanFilter.mulVec(f, x)
        let fp = GPSKalmanFilter.mul(f, p)
        p = GPSKalmanFilter.mul(fp, GPSKalmanFilter.transpose(f))
        let q = accelerationVariance
        let a = dt * dt * dt * dt / 4 * q, b = dt * dt * dt / 2 * q, c = dt * dt * q
        p[0] += a; p[2] += b; p[8] += b; p[10] += c
        p[5] += a; p[7] += b; p[13] += b; p[15] += c
    }

    /// Joseph-form update with the precomputed innovation and S⁻¹.
    private mutating func update(y0: Double, y1: Double, si: (Double, Double, Double, Double)) {
        // PHᵀ is the first two columns of P; K = PHᵀ S⁻¹ (4×2).
        var k = [Double](repeating: 0, count: 8)
        for r in 0..<4 {
            let a = p[r * 4], b = p[r * 4 + 1]
            k[r * 2] = a * si.0 + b * si.2
            k[r * 2 + 1] = a * si.1 + b * si.3
        }
        for r in 0..<4 { x[r] += k[r * 2] * y0 + k[r * 2 + 1] * y1 }
        // I − KH.
        var ikh = GPSKalmanFilter.identity
        for r in 0..<4 {
            ikh[r * 4] -= k[r * 2]
            ikh[r * 4 + 1] -= k[r * 2 + 1]
        }
        var np = GPSKalmanFilter.mul(GPSKalmanFilter.mul(ikh, p), GPSKalmanFilter.transpose(ikh))
        // + K R Kᵀ with R = σ²I.
        for r in 0..<4 {
            for c in 0..<4 {
                np[r * 4 + c] += (k[r * 2] * k[c * 2] + k[r * 2 + 1] * k[c * 2 + 1]) * measurementVariance
            }
        }
        p = np
    }

    private static let identity: [Double] = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]

    private static func mul(_ a: [Double], _ b: [Double]) -> [Double] {
        var out = [Double](repeating: 0, count: 16)
        for r in 0..<4 {
            for c in 0..<4 {
                var s = 0.0
                for i in 0..<4 { s += a[r * 4 + i] * b[i * 4 + c] }
                out[r * 4 + c] = s
            }
        }
        return out
    }

    private static func transpose(_ a: [Double]) -> [Double] {
        var out = a
        for r in 0..<4 { for c in 0..<4 { out[c * 4 + r] = a[r * 4 + c] } }
        return out
    }

    private static func mulVec(_ a: [Double], _ v: [Double]) -> [Double] {
        var out = [Double](repeating: 0, count: 4)
        for r in 0..<4 {
            var s = 0.0
            for i in 0..<4 { s += a[r * 4 + i] * v[i] }
            out[r] = s
        }
        return out
    }
}
