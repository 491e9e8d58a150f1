/// A timestamped scalar reading: the unit of work flowing through a scalar filter chain.
public struct TimedValue: Sendable, Hashable {
    /// Event time, seconds since the Unix epoch.
    public var ts: Double
    /// The reading in the sensor's unit.
    public var value: Double

    /// Creates a timed value.
    @inlinable
    public init(ts: Double, value: Double) {
        self.ts = ts
        self.value = value
    }
}

/// A geographic position in decimal degrees (WGS 84).
public struct GeoPosition: Sendable, Hashable {
    /// Latitude in degrees, −90…90.
    public var lat: Double
    /// Longitude in degrees, −180…180.
    public var lon: Double

    /// Creates a position.
    public init(lat: Double, lon: Double) {
        self.lat = lat
        self.lon = lon
    }
}

/// What one sample carries: a scalar value or a position.
public enum Reading: Sendable, Hashable {
    /// A scalar reading (temperature, fuel level, …).
    case scalar(Double)
    /// A position fix.
    case position(GeoPosition)
}

/// One raw sample as it arrives from a sensor.
public struct Sample: Sendable, Hashable {
    /// Event time, seconds since the Unix epoch.
    public var ts: Double
    /// The reading.
    public var reading: Reading

    /// Creates a sample.
    public init(ts: Double, reading: Reading) {
        self.ts = ts
        self.reading = reading
    }
}
