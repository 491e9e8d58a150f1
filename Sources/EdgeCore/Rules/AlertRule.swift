/// A local alert rule, evaluated on the device on the filtered signal.
public enum AlertRuleKind: Sendable, Hashable {
    /// Raised while the value is beyond `value` (below or above), cleared as soon as it is not.
    /// Flaps under noise around the threshold; shipped for comparison and for clean signals.
    case threshold(direction: HysteresisSwitch.Direction, value: Double)
    /// Raised and cleared by a ``HysteresisSwitch`` (two thresholds and a minimum dwell).
    case hysteresis(HysteresisSwitch)
    /// Raised when the sensor has sent nothing for `after` seconds; cleared by its next sample.
    case stale(after: Double)
}

/// The runtime state of one rule.
public struct AlertRule: Sendable, Hashable {
    /// The rule's name, reported in alerts.
    public let name: String
    /// What the rule checks.
    public private(set) var kind: AlertRuleKind
    /// Whether the alert is currently raised.
    public private(set) var isRaised = false

    /// Creates a rule.
    public init(name: String, kind: AlertRuleKind) {
        self.name = name
        self.kind = kind
    }

    /// Evaluates a value; returns the transition, if any. Stale rules ignore values except to clear.
    public mutating func evaluate(ts: Double, value: Double) -> AlertState? {
        switch kind {
        case .threshold(let direction, let limit):
            let beyond = direction == .below ? value < limit : value > limit
            guard beyond != isRaised else { return nil }
            isRaised = beyond
            return beyond ? .raised : .cleared
        case .hysteresis(var sw):
            let t = sw.update(ts: ts, value: value)
            kind = .hysteresis(sw)
            guard let t else { return nil }
            isRaised = t == .on
            return isRaised ? .raised : .cleared
        case .stale:
            return sampleArrived()
        }
    }

    /// A sample arrived: clears a raised stale rule.
    public mutating func sampleArrived() -> AlertState? {
        guard case .stale = kind, isRaised else { return nil }
        isRaised = false
        return .cleared
    }

    /// Checks staleness at time `now` given the last sample time; returns the raise time if it went stale.
    public mutating func checkStale(now: Double, lastSample: Double) -> Double? {
        guard case .stale(let after) = kind, !isRaised, now - lastSample > after else { return nil }
        isRaised = true
        return lastSample + after
    }

    /// The staleness limit, if this is a stale rule.
    public var staleAfter: Double? { kind.staleAfter }
}

extension AlertRuleKind {
    /// The staleness limit, if this is a stale rule.
    public var staleAfter: Double? {
        if case .stale(let after) = self { return after }
        return nil
    }
}
