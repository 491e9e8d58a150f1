import Foundation

extension PipelineConfig {
    /// Largest accepted pipeline document, bytes.
    public static let maxDocumentSize = 1 << 20
    /// Largest number of sensors in one pipeline.
    public static let maxSensors = 1024
    /// Largest number of stages or rules per list.
    public static let maxStages = 32

    /// Reads a pipeline document from a file (see docs/EDGE.md for the format).
    public static func load(path: String) throws -> PipelineConfig {
        let url = URL(fileURLWithPath: path)
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        if let size = attrs?[.size] as? Int, size > maxDocumentSize {
            throw EdgeError(.invalidConfig, "\(path): pipeline document is larger than \(maxDocumentSize) bytes")
        }
        guard let data = try? Data(contentsOf: url) else {
            throw EdgeError(.invalidConfig, "\(path): cannot read the pipeline file")
        }
        return try parse(data, source: path)
    }

    /// Parses a pipeline document; errors name `source` and the JSON path at fault.
    public static func parse(_ data: Data, source: String = "pipeline") throws -> PipelineConfig {
        guard data.count <= maxDocumentSize else {
            throw EdgeError(.invalidConfig, "\(source): pipeline document is larger than \(maxDocumentSize) bytes")
        }
        var root = try ConfigObject(JSONValue.parse(data, source: source), path: "$", source: source)
        let version = try root.integer("version", in: 1...1)
        guard version != nil else { throw root.fail("version", "is required (1)") }
        let window = try root.number("reorder_window", in: 0...3600) ?? 0
        let list = try root.array("sensors")
        guard !list.isEmpty else { throw root.fail("sensors", "must list at least one sensor") }
        guard list.count <= maxSensors else { throw root.fail("sensors", "has more than \(maxSensors) entries") }
        try root.finish()
        var sensors: [SensorConfig] = []
        var seen = Set<String>()
        for (i, v) in list.enumerated() {
            let s = try parseSensor(v, path: "$.sensors[\(i)]", source: source)
            guard seen.insert(s.name).inserted else {
                throw EdgeError(.invalidConfig, "\(source): $.sensors[\(i)].name '\(s.name)' is used twice")
            }
            sensors.append(s)
        }
        return PipelineConfig(reorderWindow: window, sensors: sensors)
    }

    /// Sensor names: 1–64 characters from letters, digits, `_ . - /`.
    static func isValidSensorName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64
            && s.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                    || c == 0x5F || c == 0x2E || c == 0x2D || c == 0x2F
            }
    }

    private static func parseSensor(_ v: JSONValue, path: String, source: String) throws -> SensorConfig {
        var o = try ConfigObject(v, path: path, source: source)
        let name = try o.requiredString("name")
        guard isValidSensorName(name) else {
            throw o.fail("name", "must be 1-64 characters of letters, digits, '_', '.', '-' or '/', got '\(name)'")
        }
        let kindName = try o.string("kind") ?? "scalar"
        guard let kind = SensorKind(rawValue: kindName) else {
            throw o.fail("kind", "must be 'scalar' or 'position', got '\(kindName)'")
        }
        let silent = try o.positive("silent_after") ?? 300
        let unchanged = try o.positive("unchanged_after") ?? silent
        let filterList = try o.array("filters")
        let ruleList = try o.array("rules")
        let compressionList = try o.array("compression")
        let gpsValue = o.raw("gps")
        try o.finish()
        for (key, list) in [("filters", filterList), ("rules", ruleList), ("compression", compressionList)]
        where list.count > maxStages {
            throw o.fail(key, "has more than \(maxStages) entries")
        }
        var config = SensorConfig(name: name, kind: kind, silentAfter: silent, unchangedAfter: unchanged)
        config.filters = try filterList.enumerated().map {
            try parseFilter($1, path: "\(path).filters[\($0)]", source: source)
        }
        config.compression = try compressionList.enumerated().map {
            try parseFilter($1, path: "\(path).compression[\($0)]", source: source)
        }
        var ruleNames = Set<String>()
        for (i, r) in ruleList.enumerated() {
            let rule = try parseRule(r, path: "\(path).rules[\(i)]", source: source)
            guard ruleNames.insert(rule.name).inserted else {
                throw EdgeError(.invalidConfig, "\(source): \(path).rules[\(i)].name '\(rule.name)' is used twice")
            }
            config.rules.append(rule)
        }
        if let gpsValue {
            guard kind == .position else { throw o.fail("gps", "is only allowed on a position sensor") }
            config.gps = try parseGPS(gpsValue, path: "\(path).gps", source: source)
        }
        if kind == .position {
            if !config.filters.isEmpty || !config.compression.isEmpty {
                throw o.fail("filters", "must be empty on a position sensor (use 'gps')")
            }
            if config.rules.contains(where: { $0.kind.staleAfter == nil }) {
                throw o.fail("rules", "on a position sensor may only be 'stale' rules")
            }
        }
        return config
    }

    private static func direction(_ o: inout ConfigObject) throws -> HysteresisSwitch.Direction {
        let d = try o.requiredString("direction")
        guard let dir = HysteresisSwitch.Direction(rawValue: d) else {
            throw o.fail("direction", "must be 'below' or 'above', got '\(d)'")
        }
        return dir
    }

    private static func hysteresis(_ o: inout ConfigObject) throws -> HysteresisSwitch {
        let dir = try direction(&o)
        let on = try o.requiredNumber("on")
        let off = try o.requiredNumber("off")
        let dwell = try o.number("min_dwell", in: 0...86_400) ?? 0
        if dir == .below ? !(off > on) : !(off < on) {
            throw o.fail("off", "must be \(dir == .below ? "above" : "below") 'on' (\(on)) for direction '\(dir.rawValue)'")
        }
        return HysteresisSwitch(direction: dir, on: on, off: off, minDwell: dwell)
    }

    private static func parseFilter(_ v: JSONValue, path: String, source: String) throws -> FilterSpec {
        var o = try ConfigObject(v, path: path, source: source)
        let type = try o.requiredString("type")
        let spec: FilterSpec
        switch type {
        case "kalman":
            spec = .kalman(
                q: try o.requiredPositive("q"), r: try o.requiredPositive("r"), x0: try o.number("x0"),
                p0: try o.positive("p0"), timeScaled: try o.bool("time_scaled") ?? true)
        case "ema":
            let alpha = try o.number("alpha", in: 0...1)
            let tau = try o.positive("tau")
            switch (alpha, tau) {
            case (let a?, nil):
                guard a > 0 else { throw o.fail("alpha", "must be above 0") }
                spec = .ema(alpha: a)
            case (nil, let t?): spec = .emaTau(tau: t)
            default: throw o.fail("alpha", "or 'tau' is required, not both")
            }
        case "median":
            spec = .median(window: try o.integer("window", in: 1...255) ?? 5)
        case "hampel":
            spec = .hampel(
                window: try o.integer("window", in: 3...255) ?? 7, nSigmas: try o.positive("n_sigmas") ?? 3)
        case "rate_limit":
            spec = .rateLimit(maxRate: try o.requiredPositive("max_rate"))
        case "deadband":
            spec = .deadband(band: try o.requiredPositive("band"), maxSilence: try o.positive("max_silence"))
        case "hysteresis":
            spec = .hysteresis(try hysteresis(&o))
        case "swinging_door":
            spec = .swingingDoor(deviation: try o.requiredPositive("deviation"), maxInterval: try o.positive("max_interval"))
        case "window":
            let stat = try o.string("statistic") ?? "mean"
            guard let s = WindowStatistic(rawValue: stat) else {
                throw o.fail("statistic", "must be one of min, max, mean, count, got '\(stat)'")
            }
            spec = .window(seconds: try o.requiredPositive("seconds"), statistic: s)
        default:
            throw o.fail(
                "type",
                "'\(type)' is not a filter (kalman, ema, median, hampel, rate_limit, deadband, hysteresis, swinging_door, window)")
        }
        try o.finish()
        return spec
    }

    private static func parseRule(_ v: JSONValue, path: String, source: String) throws -> RuleConfig {
        var o = try ConfigObject(v, path: path, source: source)
        let name = try o.requiredString("name")
        guard isValidSensorName(name) else { throw o.fail("name", "must be 1-64 characters of letters, digits, '_', '.', '-' or '/'") }
        let type = try o.requiredString("type")
        let kind: AlertRuleKind
        switch type {
        case "threshold": kind = .threshold(direction: try direction(&o), value: try o.requiredNumber("value"))
        case "hysteresis": kind = .hysteresis(try hysteresis(&o))
        case "stale": kind = .stale(after: try o.requiredPositive("after"))
        default: throw o.fail("type", "'\(type)' is not a rule (threshold, hysteresis, stale)")
        }
        try o.finish()
        return RuleConfig(name: name, kind: kind)
    }

    private static func parseGPS(_ v: JSONValue, path: String, source: String) throws -> GPSFilterSpec {
        var o = try ConfigObject(v, path: path, source: source)
        var g = GPSFilterSpec()
        g.measurementSigma = try o.positive("measurement_sigma") ?? g.measurementSigma
        g.accelerationSigma = try o.positive("acceleration_sigma") ?? g.accelerationSigma
        g.velocitySigma = try o.positive("velocity_sigma") ?? g.velocitySigma
        g.gate = try o.positive("gate") ?? g.gate
        g.maxRejects = try o.integer("max_rejects", in: 1...1000) ?? g.maxRejects
        g.resetAfter = try o.positive("reset_after") ?? g.resetAfter
        try o.finish()
        return g
    }
}
