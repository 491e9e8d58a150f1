import EdgeCore
import Foundation
import Testing

@Suite struct ReplayTests {
    @Test("timestamps: epoch seconds and ISO 8601 with a zone", arguments: [
        ("1700000000", 1_700_000_000.0), ("1700000000.25", 1_700_000_000.25), ("0", 0),
        ("2023-11-14T22:13:20Z", 1_700_000_000), ("2023-11-14T23:13:20+01:00", 1_700_000_000),
        ("2023-11-14T21:13:20-0100", 1_700_000_000), ("2023-11-14T22:13:20.5Z", 1_700_000_000.5),
        ("2024-02-29T00:00:00Z", 1_709_164_800), ("1958-03-29T00:00:00Z", -371_174_400),
    ])
    func timestampsValid(text: String, expected: Double) {
        #expect(Timestamp.parse(text[...]) == expected)
    }

    @Test("timestamps: malformed ones are refused", arguments: [
        "", "abc", "nan", "inf", "0x10", "-5", "1e12", "2023-11-14T22:13:20", "2023-11-14 22:13:20Z",
        "2023-02-29T00:00:00Z", "2023-13-01T00:00:00Z", "2023-11-14T24:00:00Z", "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20Zjunk", "2023-11-14T22:13:20+25:00", "1800-01-01T00:00:00Z",
    ])
    func timestampsInvalid(text: String) {
        #expect(Timestamp.parse(text[...]) == nil)
    }

    static func reader(_ csv: String) throws -> CSVSampleReader {
        try CSVSampleReader(data: Data(csv.utf8), source: "in.csv")
    }

    static func rows(_ csv: String) throws -> [InputRow] {
        var r = try reader(csv)
        var out: [InputRow] = []
        while let row = try r.next() { out.append(row) }
        return out
    }

    @Test("CSV rows: scalar, position, missing value, boot marker, CRLF")
    func csvRows() throws {
        let rows = try Self.rows("ts,sensor,value,lat,lon\r\n1,fuel,12.5,,\r\n2,gps,,47.1,8.5\r\n3,fuel,,,\r\n4,@boot,,,\r\n\r\n")
        #expect(rows.map(\.content) == [
            .sample(sensor: "fuel", .scalar(12.5)), .sample(sensor: "gps", .position(GeoPosition(lat: 47.1, lon: 8.5))),
            .missing(sensor: "fuel"), .boot,
        ])
        #expect(rows.map(\.line) == [2, 3, 4, 5])
    }

    @Test("malformed CSV is refused with file, line and column", arguments: [
        ("", "in.csv: is empty"),
        ("ts,value\n", "in.csv:1: the header has no 'sensor' column"),
        ("ts,sensor\n", "needs a 'value' column"),
        ("ts,sensor,value,unit\n", "unknown column 'unit'"),
        ("ts,sensor,value,value\n", "column 'value' appears twice"),
        ("ts,sensor,lat\n", "'lat' and 'lon' columns must come together"),
        ("ts,sensor,value\n1,fuel,abc\n", "in.csv:2: column 'value' is not a finite number: 'abc'"),
        ("ts,sensor,value\n1,fuel,nan\n", "in.csv:2: column 'value' is not a finite number"),
        ("ts,sensor,value\n1,fuel,0x10\n", "in.csv:2: column 'value'"),
        ("ts,sensor,value\n1,fuel,1\nyesterday,fuel,1\n", "in.csv:3: column 'ts' is not epoch seconds or ISO 8601"),
        ("ts,sensor,value\n1,fuel\n", "in.csv:2: expected 3 fields, found 2"),
        ("ts,sensor,value\n1,\"fuel\",1\n", "in.csv:2: quoted fields are not supported"),
        ("ts,sensor,value\n1,bad name,1\n", "in.csv:2: column 'sensor' is not a valid sensor name"),
        ("ts,sensor,lat,lon\n1,gps,91,8\n", "in.csv:2: column 'lat' is not a latitude"),
        ("ts,sensor,lat,lon\n1,gps,47,\n", "in.csv:2: column 'lon' is not a longitude"),
        ("ts,sensor,value,lat,lon\n1,gps,3,47,8\n", "either 'value' or 'lat'/'lon'"),
        ("ts,sensor,value\n1,@boot,3\n", "a '@boot' row must not carry a value"),
        ("ts,sensor,value\n1,fuel," + String(repeating: "1", count: 5000) + "\n", "in.csv:2: line is longer than 4096 bytes"),
    ])
    func csvInvalid(csv: String, message: String) {
        do {
            _ = try Self.rows(csv)
            Issue.record("accepted: \(csv.prefix(60))")
        } catch let e as EdgeError {
            #expect(e.code == .invalidInput)
            #expect(e.message.contains(message), "\(e.message)")
            #expect(!e.message.contains("\n"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    static func replay(_ config: PipelineConfig, _ csv: String) throws -> [[String: Any]] {
        var text = ""
        try Replay.run(config: config, reader: reader(csv), source: "in.csv") { text += $0 }
        return try text.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test("replay writes one JSON object per line with the documented fields")
    func replayOutput() throws {
        let config = try PipelineConfig.parse(Data(#"""
            {"version":1,"sensors":[
              {"name":"fuel","silent_after":100,"rules":[{"name":"low","type":"threshold","direction":"below","value":15}],
               "compression":[{"type":"swinging_door","deviation":0.5}]},
              {"name":"gps","kind":"position","gps":{}}]}
            """#.utf8))
        let csv = """
            ts,sensor,value,lat,lon
            2023-11-14T22:13:20Z,fuel,20,,
            1700000010,fuel,14,,
            1700000020,gps,,47.1,8.5
            1700000300,fuel,16,,
            """
        let lines = try Self.replay(config, csv)
        let kinds = lines.compactMap { $0["kind"] as? String }
        #expect(kinds.filter { $0 == "stats" }.count == 2)
        let alerts = lines.filter { $0["kind"] as? String == "alert" }
        #expect(alerts.map { $0["state"] as? String } == ["raised", "cleared"])
        #expect(alerts.first?["rule"] as? String == "low" && alerts.first?["ts"] as? Double == 1_700_000_010)
        let gap = try #require(lines.first { $0["kind"] as? String == "gap" })
        #expect(gap["type"] as? String == "sensor_silent" && gap["duration"] as? Double == 290 && gap["start"] as? Double == 1_700_000_010)
        let position = try #require(lines.first { $0["sensor"] as? String == "gps" && $0["kind"] as? String == "value" })
        #expect(position["lat"] as? Double == 47.1 && position["lon"] as? Double == 8.5)
        let stats = try #require(lines.first { $0["kind"] as? String == "stats" && $0["sensor"] as? String == "fuel" })
        for key in ["samples", "values", "compression_ratio", "max_error", "max_error_bound", "late", "duplicates", "alerts"] {
            #expect(stats[key] != nil, "stats lacks \(key)")
        }
        #expect(stats["max_error_bound"] as? Double == 0.5)
    }

    @Test("replay refuses unknown sensors, wrong reading kinds and a boot marker going back in time", arguments: [
        ("ts,sensor,value\n1,oil,3\n", "in.csv:2: sensor 'oil' is not in the pipeline"),
        ("ts,sensor,value,lat,lon\n1,fuel,,47,8\n", "in.csv:2: sensor 'fuel' is scalar but the row has lat/lon"),
        ("ts,sensor,value\n10,fuel,3\n5,@boot,\n", "in.csv:3: '@boot' at 5.0 is earlier than data already seen"),
    ])
    func replayRefuses(csv: String, message: String) throws {
        let config = PipelineConfig(sensors: [SensorConfig(name: "fuel")])
        #expect {
            _ = try Self.replay(config, csv)
        } throws: { e in
            (e as? EdgeError)?.message.contains(message) == true
        }
    }

    static func runAgent(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let binary = try #require(AgentBinary.find())
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    @Test("warden-agent replay on the fuel example: exactly one alert raised and cleared")
    func cliFuel() throws {
        let dir = temporaryDirectory("replay")
        var csv = "ts,sensor,value\n"
        for v in AcceptanceTests.fuelTrace(seed: 31, gaussian: false) { csv += "\(v.ts),fuel,\(v.value)\n" }
        try csv.write(toFile: dir + "/fuel.csv", atomically: true, encoding: .utf8)
        let r = try Self.runAgent([
            "replay", "--pipeline", Repo.path("examples/pipelines/fuel-level.json"), "--input", dir + "/fuel.csv",
            "--output", dir + "/out.jsonl",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = try String(contentsOfFile: dir + "/out.jsonl", encoding: .utf8).split(separator: "\n")
        let alerts = lines.filter { $0.contains("\"kind\":\"alert\"") && $0.contains("\"rule\":\"low-fuel\"") }
        #expect(alerts.count == 2 && alerts[0].contains("raised") && alerts[1].contains("cleared"))
        #expect(lines.last?.contains("\"kind\":\"stats\"") == true)
    }

    @Test("warden-agent replay on bad input: exit 2 and one line naming the input")
    func cliBadInput() throws {
        let dir = temporaryDirectory("replay-bad")
        try "ts,sensor,value\n1,fuel,12\n2,fuel,twelve\n".write(toFile: dir + "/bad.csv", atomically: true, encoding: .utf8)
        let r = try Self.runAgent(["replay", "--pipeline", Repo.path("examples/pipelines/fuel-level.json"), "--input", dir + "/bad.csv"])
        #expect(r.status == 2)
        #expect(r.stderr == "warden-agent: error: \(dir)/bad.csv:3: column 'value' is not a finite number: 'twelve'\n")
        try "{\"version\":1}".write(toFile: dir + "/p.json", atomically: true, encoding: .utf8)
        let c = try Self.runAgent(["replay", "--pipeline", dir + "/p.json", "--input", dir + "/bad.csv"])
        #expect(c.status == 2)
        #expect(c.stderr == "warden-agent: error: \(dir)/p.json: $.sensors must list at least one sensor\n")
        // With --output, a failed replay leaves no partial file behind.
        let o = try Self.runAgent([
            "replay", "--pipeline", Repo.path("examples/pipelines/fuel-level.json"), "--input", dir + "/bad.csv",
            "--output", dir + "/out.jsonl",
        ])
        #expect(o.status == 2)
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.jsonl"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.jsonl.partial"))
        let missing = try Self.runAgent(["replay", "--pipeline", dir + "/nope.json", "--input", dir + "/bad.csv"])
        #expect(missing.status == 2 && missing.stderr.contains("nope.json: cannot read the pipeline file"))
    }

    @Test("warden-agent replay on a GPS track prints filtered positions")
    func cliGPS() throws {
        let dir = temporaryDirectory("replay-gps")
        let trace = AcceptanceTests.gpsTrace(seed: 4, count: 300)
        var csv = "ts,sensor,lat,lon\n"
        for (t, p) in zip(trace.ts, trace.raw) { csv += "\(t),gps,\(p.lat),\(p.lon)\n" }
        try csv.write(toFile: dir + "/gps.csv", atomically: true, encoding: .utf8)
        let r = try Self.runAgent(["replay", "--pipeline", Repo.path("examples/pipelines/gps-track.json"), "--input", dir + "/gps.csv"])
        #expect(r.status == 0, "\(r.stderr)")
        let values = r.stdout.split(separator: "\n").filter { $0.contains("\"kind\":\"value\"") }
        #expect(values.count == 300 && values.allSatisfy { $0.contains("\"lat\":") && $0.contains("\"lon\":") })
    }
}
