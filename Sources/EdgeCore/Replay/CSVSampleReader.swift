import Foundation

/// One parsed row of a recorded input file.
public struct InputRow: Sendable, Hashable {
    /// What the row carries.
    public enum Content: Sendable, Hashable {
        /// A sample for a sensor.
        case sample(sensor: String, Reading)
        /// The sensor reported an empty value (a recorded gap); the row is skipped.
        case missing(sensor: String)
        /// `sensor` = `@boot`: the agent started at this time.
        case boot
    }

    /// 1-based line number in the file.
    public var line: Int
    /// Event time, epoch seconds.
    public var ts: Double
    /// The row's content.
    public var content: Content
}

/// A strict reader of recorded input CSV.
///
/// The header names the columns: `ts`, `sensor`, and `value` and/or `lat`,`lon`, in any order; no
/// other column is allowed. `ts` is epoch seconds or ISO 8601 with a zone. Fields are not quoted.
/// Limits: ``maxLineLength`` bytes per line, ``maxFileSize`` bytes per file. Every error names the
/// file and line.
public struct CSVSampleReader: Sendable {
    /// Longest accepted line, bytes.
    public static let maxLineLength = 4096
    /// Largest accepted file, bytes.
    public static let maxFileSize = 1 << 31
    /// The sensor name that marks an agent boot.
    public static let bootMarker = "@boot"

    private let data: Data
    private let source: String
    private var offset: Int
    private var line = 1
    private let tsColumn: Int
    private let sensorColumn: Int
    private let valueColumn: Int?
    private let latColumn: Int?
    private let lonColumn: Int?
    private let columnCount: Int

    /// Reads a file.
    public init(path: String) throws {
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        guard let size = attrs?[.size] as? Int else {
            throw EdgeError(.invalidInput, "\(path): cannot read the input file")
        }
        guard size <= CSVSampleReader.maxFileSize else {
            throw EdgeError(.invalidInput, "\(path): input is larger than \(CSVSampleReader.maxFileSize) bytes")
        }
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            throw EdgeError(.invalidInput, "\(path): cannot read the input file")
        }
        try self.init(data: data, source: path)
    }

    /// Reads from memory; `source` names the input in errors.
    public init(data: Data, source: String) throws {
        guard data.count <= CSVSampleReader.maxFileSize else {
            throw EdgeError(.invalidInput, "\(source): input is larger than \(CSVSampleReader.maxFileSize) bytes")
        }
        self.data = data
        self.source = source
        var header: [Substring] = []
        var pos = data.startIndex
        let first = try CSVSampleReader.readLine(data, &pos, source: source, line: 1)
        guard let first else { throw EdgeError(.invalidInput, "\(source): is empty (a header line is required)") }
        header = first.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)[...]
        }
        func column(_ name: String) throws -> Int? {
            let hits = header.indices.filter { header[$0] == name }
            guard hits.count <= 1 else { throw EdgeError(.invalidInput, "\(source):1: column '\(name)' appears twice") }
            return hits.first
        }
        for h in header where !["ts", "sensor", "value", "lat", "lon"].contains(String(h)) {
            throw EdgeError(.invalidInput, "\(source):1: unknown column '\(h)' (expected ts, sensor, value, lat, lon)")
        }
        guard let ts = try column("ts") else { throw EdgeError(.invalidInput, "\(source):1: the header has no 'ts' column") }
        guard let sensor = try column("sensor") else {
            throw EdgeError(.invalidInput, "\(source):1: the header has no 'sensor' column")
        }
        valueColumn = try column("value")
        latColumn = try column("lat")
        lonColumn = try column("lon")
        guard (latColumn == nil) == (lonColumn == nil) else {
            throw EdgeError(.invalidInput, "\(source):1: 'lat' and 'lon' columns must come together")
        }
        guard valueColumn != nil || latColumn != nil else {
            throw EdgeError(.invalidInput, "\(source):1: the header needs a 'value' column or 'lat' and 'lon' columns")
        }
        tsColumn = ts
        sensorColumn = sensor
        columnCount = header.count
        offset = pos
    }

    private static func readLine(_ data: Data, _ pos: inout Int, source: String, line: Int) throws -> String? {
        guard pos < data.endIndex else { return nil }
        let end = data[pos...].firstIndex(of: 0x0A) ?? data.endIndex
        guard end - pos <= maxLineLength else {
            throw EdgeError(.invalidInput, "\(source):\(line): line is longer than \(maxLineLength) bytes")
        }
        var slice = data[pos..<end]
        if slice.last == 0x0D { slice = slice.dropLast() }
        pos = end < data.endIndex ? end + 1 : end
        guard let s = String(data: slice, encoding: .utf8) else {
            throw EdgeError(.invalidInput, "\(source):\(line): line is not valid UTF-8")
        }
        return s
    }

    /// Returns the next row, or nil at the end of the file.
    public mutating func next() throws -> InputRow? {
        while true {
            line += 1
            guard let text = try CSVSampleReader.readLine(data, &offset, source: source, line: line) else { return nil }
            if text.isEmpty { continue }
            return try parse(text)
        }
    }

    private func fail(_ why: String) -> EdgeError {
        EdgeError(.invalidInput, "\(source):\(line): \(why)")
    }

    private func parse(_ text: String) throws -> InputRow {
        if text.utf8.contains(0x22) { throw fail("quoted fields are not supported") }
        let fields = text.split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count == columnCount else {
            throw fail("expected \(columnCount) fields, found \(fields.count)")
        }
        func field(_ i: Int?) -> Substring {
            guard let i else { return "" }
            return fields[i].trimmingCharacters(in: .whitespaces)[...]
        }
        let tsText = field(tsColumn)
        guard let ts = Timestamp.parse(tsText) else {
            throw fail("column 'ts' is not epoch seconds or ISO 8601 with a zone: '\(tsText.prefix(40))'")
        }
        let sensor = String(field(sensorColumn))
        if sensor == CSVSampleReader.bootMarker {
            guard field(valueColumn).isEmpty, field(latColumn).isEmpty, field(lonColumn).isEmpty else {
                throw fail("a '@boot' row must not carry a value")
            }
            return InputRow(line: line, ts: ts, content: .boot)
        }
        guard PipelineConfig.isValidSensorName(sensor) else {
            throw fail("column 'sensor' is not a valid sensor name: '\(sensor.prefix(40))'")
        }
        let value = field(valueColumn), lat = field(latColumn), lon = field(lonColumn)
        if !value.isEmpty {
            guard lat.isEmpty, lon.isEmpty else { throw fail("a row carries either 'value' or 'lat'/'lon', not both") }
            guard let v = Timestamp.parseDecimal(value) else {
                throw fail("column 'value' is not a finite number: '\(value.prefix(40))'")
            }
            return InputRow(line: line, ts: ts, content: .sample(sensor: sensor, .scalar(v)))
        }
        if lat.isEmpty && lon.isEmpty { return InputRow(line: line, ts: ts, content: .missing(sensor: sensor)) }
        guard let la = Timestamp.parseDecimal(lat), (-90...90).contains(la) else {
            throw fail("column 'lat' is not a latitude in -90...90: '\(lat.prefix(40))'")
        }
        guard let lo = Timestamp.parseDecimal(lon), (-180...180).contains(lo) else {
            throw fail("column 'lon' is not a longitude in -180...180: '\(lon.prefix(40))'")
        }
        return InputRow(line: line, ts: ts, content: .sample(sensor: sensor, .position(GeoPosition(lat: la, lon: lo))))
    }
}
