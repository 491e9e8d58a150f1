/// Encodes pipeline records as JSON Lines (one object per line, keys in a fixed order).
public struct JSONLEncoder: Sendable {
    /// Sensor names by index.
    public let sensorNames: [String]

    /// Creates an encoder for a pipeline's sensors.
    public init(sensorNames: [String]) {
        self.sensorNames = sensorNames
    }

    /// Formats a number: integers without a fraction, others in shortest round-trip form.
    public static func number(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return d.description
    }

    /// Escapes a string for JSON.
    public static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// Appends one record as a line (with its newline) to `out`.
    public func encode(_ record: EdgeRecord, into out: inout String) {
        let n = JSONLEncoder.number
        switch record {
        case .value(let s, let v):
            out += "{\"kind\":\"value\",\"ts\":\(n(v.ts)),\"sensor\":\(JSONLEncoder.quoted(sensorNames[s])),\"value\":\(n(v.value))}\n"
        case .position(let s, let ts, let p):
            out += "{\"kind\":\"value\",\"ts\":\(n(ts)),\"sensor\":\(JSONLEncoder.quoted(sensorNames[s])),\"lat\":\(n(p.lat)),\"lon\":\(n(p.lon))}\n"
        case .alert(let s, let a):
            out += "{\"kind\":\"alert\",\"ts\":\(n(a.ts)),\"sensor\":\(JSONLEncoder.quoted(sensorNames[s])),\"rule\":\(JSONLEncoder.quoted(a.rule)),\"state\":\"\(a.state.rawValue)\""
            if let v = a.value { out += ",\"value\":\(n(v))" }
            out += "}\n"
        case .gap(let s, let g):
            out += "{\"kind\":\"gap\",\"ts\":\(n(g.start)),\"sensor\":\(JSONLEncoder.quoted(sensorNames[s])),\"type\":\"\(g.kind.rawValue)\",\"start\":\(n(g.start)),\"duration\":\(n(g.duration))"
            if g.open { out += ",\"open\":true" }
            out += "}\n"
        case .stats(let s, let st):
            out += "{\"kind\":\"stats\",\"sensor\":\(JSONLEncoder.quoted(sensorNames[s])),\"samples\":\(st.samplesIn),\"values\":\(st.valuesOut),\"compression_ratio\":\(n(st.compressionRatio)),\"max_error\":\(n(st.maxError)),\"max_error_bound\":\(n(st.maxErrorBound)),\"late\":\(st.late),\"duplicates\":\(st.duplicates),\"alerts\":\(st.alerts),\"max_alert_latency_ms\":\(n((st.maxAlertLatency * 1e6).rounded() / 1e3))}\n"
        }
    }
}
