import Foundation

/// A parsed JSON document, used to read configuration strictly (unknown keys are errors).
public enum JSONValue: Sendable, Hashable, Decodable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number.
    case number(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object.
    case object([String: JSONValue])

    /// Decodes any JSON value.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    /// Parses a document, naming `source` in the error.
    public static func parse(_ data: Data, source: String) throws -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw EdgeError(.invalidConfig, "\(source): not valid JSON")
        }
    }
}

/// Reads one JSON object, tracking the path for error messages and rejecting unknown keys.
struct ConfigObject {
    let path: String
    let source: String
    private let fields: [String: JSONValue]
    private var used: Set<String> = []

    init(_ value: JSONValue, path: String, source: String) throws {
        guard case .object(let o) = value else {
            throw EdgeError(.invalidConfig, "\(source): \(path) must be an object")
        }
        self.fields = o
        self.path = path
        self.source = source
    }

    func fail(_ key: String, _ why: String) -> EdgeError {
        EdgeError(.invalidConfig, "\(source): \(path).\(key) \(why)")
    }

    mutating func raw(_ key: String) -> JSONValue? {
        used.insert(key)
        if case .null? = fields[key] { return nil }
        return fields[key]
    }

    mutating func string(_ key: String) throws -> String? {
        guard let v = raw(key) else { return nil }
        guard case .string(let s) = v else { throw fail(key, "must be a string") }
        return s
    }

    mutating func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw fail(key, "is required") }
        return s
    }

    mutating func number(_ key: String, in range: ClosedRange<Double>? = nil) throws -> Double? {
        guard let v = raw(key) else { return nil }
        guard case .number(let d) = v, d.isFinite else { throw fail(key, "must be a finite number") }
        if let range, !range.contains(d) {
            throw fail(key, "must be between \(range.lowerBound) and \(range.upperBound), got \(d)")
        }
        return d
    }

    mutating func requiredNumber(_ key: String, in range: ClosedRange<Double>? = nil) throws -> Double {
        guard let d = try number(key, in: range) else { throw fail(key, "is required") }
        return d
    }

    mutating func positive(_ key: String) throws -> Double? {
        guard let d = try number(key) else { return nil }
        guard d > 0 else { throw fail(key, "must be positive, got \(d)") }
        return d
    }

    mutating func requiredPositive(_ key: String) throws -> Double {
        guard let d = try positive(key) else { throw fail(key, "is required") }
        return d
    }

    mutating func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let d = try number(key) else { return nil }
        guard d == d.rounded(), d >= Double(range.lowerBound), d <= Double(range.upperBound) else {
            throw fail(key, "must be an integer between \(range.lowerBound) and \(range.upperBound), got \(d)")
        }
        return Int(d)
    }

    mutating func bool(_ key: String) throws -> Bool? {
        guard let v = raw(key) else { return nil }
        guard case .bool(let b) = v else { throw fail(key, "must be true or false") }
        return b
    }

    mutating func array(_ key: String) throws -> [JSONValue] {
        guard let v = raw(key) else { return [] }
        guard case .array(let a) = v else { throw fail(key, "must be an array") }
        return a
    }

    /// Throws if the object has keys that were never read.
    func finish() throws {
        if let extra = fields.keys.filter({ !used.contains($0) }).sorted().first {
            throw fail(extra, "is not a known key")
        }
    }
}
