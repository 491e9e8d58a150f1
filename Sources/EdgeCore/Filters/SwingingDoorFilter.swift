/// Swinging-door trending (SDT) compression with a stated maximum error.
///
/// From the last archived point `A` it keeps the interval of slopes `[sMin, sMax]` such that the
/// straight line from `A` passes within ``deviation`` of every sample since `A`. While the newest
/// sample's slope from `A` stays in that interval the doors stay open and nothing is emitted. When
/// it leaves the interval, the previous sample is archived (emitted) and becomes the new `A`.
///
/// Guarantee: linear interpolation between emitted points reconstructs every input sample within
/// ``deviation`` (tested). The error actually observed is tracked in ``measuredMaxError``.
public struct SwingingDoorFilter: ScalarFilter, Sendable {
    /// The maximum reconstruction error (compression deviation), in the sensor's unit.
    public let deviation: Double
    /// Optional longest time between archived points, in seconds.
    public let maxInterval: Double?
    /// Longest run of held samples before one is archived regardless (bounds memory).
    public static let maxHeld = 4096

    private var anchor = TimedValue(ts: 0, value: 0)
    private var last = TimedValue(ts: 0, value: 0)
    private var sMin = -Double.infinity
    private var sMax = Double.infinity
    private var held: [TimedValue] = []
    private var hasAnchor = false
    private var lastEmitted = true
    /// Largest error between an input sample and the reconstruction.
    public private(set) var measuredMaxError: Double = 0

    /// Creates an SDT stage with the given deviation.
    public init(deviation: Double, maxInterval: Double? = nil) {
        self.deviation = deviation
        self.maxInterval = maxInterval
        held.reserveCapacity(64)
    }

    /// The promised bound.
    public var errorBound: Double { deviation }

    /// Feeds a sample; emits the previous sample when the doors close.
    public mutating func process(_ input: TimedValue) -> TimedValue? {
        guard hasAnchor else {
            startSegment(at: input)
            return input
        }
        let dt = input.ts - anchor.ts
        if dt <= 0 {
            // Same timestamp as the anchor: nothing to interpolate; archive it on its own.
            return nil
        }
        let slope = (input.value - anchor.value) / dt
        let tooLong = maxInterval.map { dt > $0 } ?? false
        if slope >= sMin && slope <= sMax && !tooLong && held.count < SwingingDoorFilter.maxHeld {
            narrow(with: input)
            held.append(input)
            last = input
            lastEmitted = false
            return nil
        }
        // Doors closed: archive the previous sample, restart from it, and include the new one.
        let archived = last
        closeSegment(at: archived)
        startSegment(at: archived)
        if input.ts > anchor.ts {
            narrow(with: input)
            held.append(input)
            last = input
            lastEmitted = false
        }
        return archived
    }

    /// Emits the last held sample so the reconstruction reaches the end of the segment.
    public mutating func flush() -> TimedValue? {
        defer { hasAnchor = false }
        guard hasAnchor, !lastEmitted else { return nil }
        closeSegment(at: last)
        lastEmitted = true
        return last
    }

    private mutating func startSegment(at p: TimedValue) {
        anchor = p
        last = p
        sMin = -.infinity
        sMax = .infinity
        held.removeAll(keepingCapacity: true)
        hasAnchor = true
        lastEmitted = true
    }

    private mutating func narrow(with p: TimedValue) {
        let dt = p.ts - anchor.ts
        let lo = (p.value - deviation - anchor.value) / dt
        let hi = (p.value + deviation - anchor.value) / dt
        if lo > sMin { sMin = lo }
        if hi < sMax { sMax = hi }
    }

    /// Measures the error of the held samples against the line from the anchor to `end`.
    private mutating func closeSegment(at end: TimedValue) {
        let span = end.ts - anchor.ts
        guard span > 0 else { return }
        for p in held where p.ts <= end.ts {
            let line = anchor.value + (end.value - anchor.value) * (p.ts - anchor.ts) / span
            let e = abs(p.value - line)
            if e > measuredMaxError { measuredMaxError = e }
        }
    }
}
