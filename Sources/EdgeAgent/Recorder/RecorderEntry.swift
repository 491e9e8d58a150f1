import EdgeCore
import Foundation

/// One entry of the flight recorder (``FlightRecorder``): when, what kind, which subsystem, and a short message.
public struct RecorderEntry: Sendable, Equatable, Codable {
    /// What an entry records.
    public enum Kind: UInt8, Sendable, Codable, CaseIterable {
        /// A log line of the agent or one of its features.
        case log = 0
        /// The MQTT session came up.
        case connect = 1
        /// The MQTT session went down (lost, refused, or closed on purpose).
        case disconnect = 2
        /// A decision the agent took (config accepted, update installed or refused…).
        case decision = 3
        /// A subsystem's health changed (``AgentHealth``).
        case health = 4
        /// A subsystem failed.
        case fault = 5

        /// The kind's name on the wire and in `warden device timeline`.
        public var name: String {
            switch self {
            case .log: "log"
            case .connect: "connect"
            case .disconnect: "disconnect"
            case .decision: "decision"
            case .health: "health"
            case .fault: "fault"
            }
        }

        /// Whether entries of this kind are written and synced at once rather than within the next second.
        var isImportant: Bool { self != .log }

        public init(from decoder: any Decoder) throws {
            let name = try decoder.singleValueContainer().decode(String.self)
            guard let kind = Kind.allCases.first(where: { $0.name == name }) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown kind '\(name)'"))
            }
            self = kind
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(name)
        }
    }

    /// Longest stored message, in UTF-8 bytes (longer ones are cut at a character boundary).
    public static let maximumMessageBytes = 512
    /// Longest stored subsystem name, in UTF-8 bytes.
    public static let maximumSubsystemBytes = 32

    /// Position in the recorder: increases by one per stored entry, across restarts.
    public var seq: UInt64
    /// Unix time in milliseconds (the device's clock).
    public var time: Int64
    /// The kind.
    public var kind: Kind
    /// The subsystem (`session`, `telemetry`, `recorder`…).
    public var subsystem: String
    /// The message (never key material).
    public var message: String

    /// Creates an entry; `subsystem` and `message` are cut to their maximum sizes.
    public init(seq: UInt64 = 0, time: Int64, kind: Kind, subsystem: String, message: String) {
        self.seq = seq
        self.time = time
        self.kind = kind
        self.subsystem = Self.cut(subsystem, Self.maximumSubsystemBytes)
        self.message = Self.cut(message, Self.maximumMessageBytes)
    }

    enum CodingKeys: String, CodingKey {
        case seq, time = "t", kind, subsystem, message
    }

    /// `text` cut to at most `limit` UTF-8 bytes without splitting a character.
    static func cut(_ text: String, _ limit: Int) -> String {
        if text.utf8.count <= limit { return text }
        var out = ""
        var used = 0
        for character in text {
            let size = character.utf8.count
            if used + size > limit { break }
            out.append(character)
            used += size
        }
        return out
    }

    // MARK: - Binary record

    /// Bytes before the body: body length (u32 LE) and CRC-32C of the body (u32 LE).
    static let headerSize = 8
    /// Fixed part of the body: seq (u64), time (i64), kind (u8), subsystem length (u8), message length (u16).
    static let fixedBodySize = 8 + 8 + 1 + 1 + 2
    /// Largest body a valid record can have.
    static let maximumBodySize = fixedBodySize + maximumSubsystemBytes + maximumMessageBytes

    /// The record: header (length, CRC-32C) then body; little-endian.
    func encoded() -> [UInt8] {
        let subsystemBytes = Array(subsystem.utf8)
        let messageBytes = Array(message.utf8)
        var body: [UInt8] = []
        body.reserveCapacity(Self.fixedBodySize + subsystemBytes.count + messageBytes.count)
        Self.append(&body, seq)
        Self.append(&body, UInt64(bitPattern: time))
        body.append(kind.rawValue)
        body.append(UInt8(subsystemBytes.count))
        body.append(UInt8(messageBytes.count & 0xFF))
        body.append(UInt8(messageBytes.count >> 8))
        body += subsystemBytes
        body += messageBytes
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerSize + body.count)
        Self.append32(&out, UInt32(body.count))
        Self.append32(&out, CRC32C.checksum(body))
        return out + body
    }

    /// Parses the record at `offset` of `bytes`. Returns nil for anything not a complete, intact record (a torn
    /// tail, a bad checksum, impossible lengths): readers stop there.
    static func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> (entry: RecorderEntry, size: Int)? {
        guard offset >= 0, bytes.count - offset >= headerSize else { return nil }
        let length = Int(read32(bytes, offset))
        let crc = read32(bytes, offset + 4)
        guard length >= fixedBodySize, length <= maximumBodySize, bytes.count - offset - headerSize >= length else { return nil }
        let body = UnsafeRawBufferPointer(rebasing: bytes[(offset + headerSize)..<(offset + headerSize + length)])
        guard CRC32C.update(0, body) == crc else { return nil }
        let seq = read64(body, 0)
        let time = Int64(bitPattern: read64(body, 8))
        let kindCode = body[16]
        let subsystemLength = Int(body[17])
        let messageLength = Int(body[18]) | Int(body[19]) << 8
        guard let kind = Kind(rawValue: kindCode), subsystemLength <= maximumSubsystemBytes, messageLength <= maximumMessageBytes,
            fixedBodySize + subsystemLength + messageLength == length
        else { return nil }
        let subsystemStart = fixedBodySize
        let messageStart = subsystemStart + subsystemLength
        let subsystem = String(decoding: body[subsystemStart..<messageStart], as: UTF8.self)
        let message = String(decoding: body[messageStart..<(messageStart + messageLength)], as: UTF8.self)
        var entry = RecorderEntry(time: time, kind: kind, subsystem: subsystem, message: message)
        entry.seq = seq
        return (entry, headerSize + length)
    }

    private static func append(_ out: inout [UInt8], _ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8((value >> UInt64(shift)) & 0xFF)) }
    }

    private static func append32(_ out: inout [UInt8], _ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8((value >> UInt32(shift)) & 0xFF)) }
    }

    private static func read32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(bytes[offset + i]) << UInt32(8 * i) }
        return value
    }

    private static func read64(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(bytes[offset + i]) << UInt64(8 * i) }
        return value
    }
}
