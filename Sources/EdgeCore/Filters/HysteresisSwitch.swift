/// A two-threshold switch with a minimum dwell time: the core of hysteresis alerts.
///
/// In ``Direction/below`` mode the switch turns on when the value stays below ``on`` for at least
/// ``minDwell`` seconds, and turns off when it stays above ``off`` for ``minDwell`` seconds
/// (`off > on`). ``Direction/above`` mirrors this (`off < on`). Noise narrower than the band between
/// the two thresholds cannot make it flap, and the dwell absorbs brief excursions beyond the band.
public struct HysteresisSwitch: Sendable, Hashable {
    /// Which side of the thresholds is the "on" side.
    public enum Direction: String, Sendable, Hashable, Codable {
        /// On when the value is low (low fuel, low battery).
        case below
        /// On when the value is high (over-temperature).
        case above
    }

    /// A state change.
    public enum Transition: Sendable, Hashable {
        /// The switch turned on.
        case on
        /// The switch turned off.
        case off
    }

    /// Which side is "on".
    public let direction: Direction
    /// The threshold that turns the switch on.
    public let on: Double
    /// The threshold that turns it off again.
    public let off: Double
    /// Seconds a condition must hold before the state changes.
    public let minDwell: Double
    /// Current state.
    public private(set) var isOn = false
    private var pendingSince: Double?

    /// Creates a switch; `off` must lie on the far side of `on` (checked by the pipeline configuration).
    public init(direction: Direction, on: Double, off: Double, minDwell: Double = 0) {
        self.direction = direction
        self.on = on
        self.off = off
        self.minDwell = minDwell
    }

    /// Feeds a sample and returns a transition if one happened.
    public mutating func update(ts: Double, value: Double) -> Transition? {
        let wants: Bool
        if isOn {
            wants = direction == .below ? value > off : value < off
        } else {
            wants = direction == .below ? value < on : value > on
        }
        guard wants else {
            pendingSince = nil
            return nil
        }
        let since = pendingSince ?? ts
        pendingSince = since
        guard ts - since >= minDwell else { return nil }
        pendingSince = nil
        isOn.toggle()
        return isOn ? .on : .off
    }
}

/// A filter stage that turns a signal into its hysteresis state: 1 while on, 0 while off.
public struct HysteresisFilter: ScalarFilter, Sendable {
    private var state: HysteresisSwitch

    /// Wraps a switch.
    public init(_ state: HysteresisSwitch) {
        self.state = state
    }

    /// Emits 1 or 0 for every sample.
    public mutating func process(_ input: TimedValue) -> TimedValue? {
        _ = state.update(ts: input.ts, value: input.value)
        return TimedValue(ts: input.ts, value: state.isOn ? 1 : 0)
    }
}
