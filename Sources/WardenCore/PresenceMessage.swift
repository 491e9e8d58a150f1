import Foundation

/// A device's presence announcement on `d/<id>/up/presence`: its birth message when a session starts (and as a
/// heartbeat), and its Last Will, which the broker publishes when the session dies without a DISCONNECT. Both are
/// published retained, so whoever subscribes later learns the current state at once.
///
/// Wire form (UTF-8 JSON, at most ``maximumSize`` bytes, no other fields): `{"state":"online","session":"<id>"}`.
/// `session` is chosen by the device per connection (1–64 of `[A-Za-z0-9_-]`), so a Last Will of an old session that
/// arrives after the birth of a new one can be recognised and ignored.
public struct PresenceMessage: Codable, Sendable, Equatable {
    /// Online (birth, heartbeat) or offline (Last Will, orderly shutdown).
    public enum State: String, Codable, Sendable {
        /// The session is up.
        case online
        /// The session ended.
        case offline
    }

    /// The announced state.
    public var state: State
    /// The device's id for this session.
    public var session: String

    /// Largest accepted message.
    public static let maximumSize = 256

    /// The topic a device announces itself on.
    public static func topic(device: String) -> String { "d/\(device)/up/presence" }

    /// The filter covering every device's presence topic.
    public static let filter = "d/+/up/presence"

    /// The device id in a presence topic, or nil if `topic` is not one.
    public static func device(inTopic topic: String) -> String? {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard levels.count == 4, levels[0] == "d", levels[2] == "up", levels[3] == "presence" else { return nil }
        return (try? DeviceID(String(levels[1])))?.rawValue
    }

    /// A message for `session`.
    /// - Throws: ``WardenError/badInput(_:)`` if `session` is not 1–64 of `[A-Za-z0-9_-]`.
    public init(state: State, session: String) throws {
        guard !session.isEmpty, session.utf8.count <= 64,
            session.utf8.allSatisfy({ $0 == 0x2D || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) })
        else { throw WardenError.badInput("presence session id must be 1-64 of [A-Za-z0-9_-]") }
        self.state = state
        self.session = session
    }

    /// Parses a received payload strictly (size, fields, session syntax).
    /// - Throws: ``WardenError/badInput(_:)`` naming what is wrong.
    public static func parse(_ payload: [UInt8]) throws -> PresenceMessage {
        guard payload.count <= maximumSize else { throw WardenError.badInput("presence message longer than \(maximumSize) bytes") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any] else {
            throw WardenError.badInput("presence message is not a JSON object")
        }
        guard Set(object.keys) == ["state", "session"] else {
            throw WardenError.badInput("presence message must have exactly the fields state and session")
        }
        guard let stateText = object["state"] as? String, let state = State(rawValue: stateText) else {
            throw WardenError.badInput("presence state must be \"online\" or \"offline\"")
        }
        guard let session = object["session"] as? String else { throw WardenError.badInput("presence session must be a string") }
        return try PresenceMessage(state: state, session: session)
    }

    /// The wire bytes.
    public var payload: [UInt8] { Array(#"{"state":"\#(state.rawValue)","session":"\#(session)"}"#.utf8) }
}
