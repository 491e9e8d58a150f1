/// Detects the typed gaps of one sensor from the timestamps it sees.
///
/// - *Sensor silent*: consecutive samples further apart than ``silentAfter``.
/// - *Filtered as unchanged*: the sensor kept reporting but no value was emitted for longer than
///   ``unchangedAfter`` (deadband or swinging door suppressed them all).
/// - *Agent down*: reported by the pipeline at a boot marker; the silence it covers is not
///   reported a second time as sensor silence.
public struct GapDetector: Sendable {
    /// Silence threshold in seconds.
    public let silentAfter: Double
    /// Suppression threshold in seconds.
    public let unchangedAfter: Double
    /// Timestamp of the last sample seen.
    public private(set) var lastInput: Double?
    /// Timestamp of the last value emitted.
    public private(set) var lastEmitted: Double?
    private var agentBoot: Double?
    private var gapSinceEmit = false

    /// Creates a detector.
    public init(silentAfter: Double, unchangedAfter: Double) {
        self.silentAfter = silentAfter
        self.unchangedAfter = unchangedAfter
    }

    /// Checks the silence before a sample at `ts`. Returns a sensor-silent gap if there was one.
    /// The caller flushes held values and calls ``unchangedBeforeGap()`` first when this is non-nil.
    public func silence(before ts: Double) -> Gap? {
        guard let last = lastInput else { return nil }
        let from = agentBoot.map { max($0, last) } ?? last
        let d = ts - from
        return d > silentAfter ? Gap(kind: .sensorSilent, start: from, duration: d) : nil
    }

    /// An unchanged gap between the last emitted value and the last input, reported when the
    /// sensor's data stops (silence, agent down or end of input).
    public mutating func unchangedBeforeGap(open: Bool = false) -> Gap? {
        defer { gapSinceEmit = true }
        guard !gapSinceEmit, let e = lastEmitted, let i = lastInput, i - e > unchangedAfter else { return nil }
        return Gap(kind: .filteredUnchanged, start: e, duration: i - e, open: open)
    }

    /// Records a sample at `ts` (after any gap was reported).
    public mutating func observe(_ ts: Double) {
        lastInput = ts
    }

    /// Records an emitted value at `ts`; returns an unchanged gap if values were suppressed too long.
    public mutating func emitted(_ ts: Double) -> Gap? {
        var gap: Gap?
        if !gapSinceEmit, let e = lastEmitted, ts - e > unchangedAfter {
            gap = Gap(kind: .filteredUnchanged, start: e, duration: ts - e)
        }
        lastEmitted = ts
        gapSinceEmit = false
        return gap
    }

    /// Records that the agent restarted at `ts`: silence before it is agent downtime.
    public mutating func agentBooted(at ts: Double) {
        agentBoot = ts
        gapSinceEmit = true
    }
}
