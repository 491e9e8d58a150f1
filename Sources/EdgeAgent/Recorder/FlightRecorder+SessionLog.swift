import Foundation

extension FlightRecorder {
    /// Records one progress line of the agent's session or of a feature (the `log` closure of ``AgentSession`` and
    /// ``AgentLink``), with a kind and subsystem taken from the line:
    ///
    /// - `connected to …` → `connect` (subsystem `session`);
    /// - `link to the broker lost`, `connection failed: …`, `offline announced…`, `reconnecting on request` →
    ///   `disconnect` (`session`);
    /// - `NAME: failed: …` → `fault` (subsystem `NAME`);
    /// - `NAME: …` with a lowercase name → `log` (subsystem `NAME`);
    /// - anything else → `log` (`session`).
    public func recordSessionLine(_ line: String) {
        let (kind, subsystem) = Self.classify(line)
        record(kind, subsystem: subsystem, line)
    }

    /// The kind and subsystem of a session log line (see ``recordSessionLine(_:)``).
    static func classify(_ line: String) -> (RecorderEntry.Kind, String) {
        if line.hasPrefix("connected to ") { return (.connect, "session") }
        for prefix in ["link to the broker lost", "connection failed", "offline announced", "reconnecting on request"] where line.hasPrefix(prefix) {
            return (.disconnect, "session")
        }
        if let colon = line.firstIndex(of: ":") {
            let name = line[..<colon]
            let valid = !name.isEmpty && name.count <= RecorderEntry.maximumSubsystemBytes
                && name.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "-" || $0 == "." }
            if valid {
                let rest = line[line.index(after: colon)...]
                return (rest.hasPrefix(" failed:") ? .fault : .log, String(name))
            }
        }
        return (.log, "session")
    }
}
