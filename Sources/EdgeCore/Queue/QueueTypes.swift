/// Priority lanes of the store-and-forward queue, drained in this order.
public enum QueueLane: Int, Sendable, Hashable, CaseIterable, Comparable {
    /// Alerts: never shed.
    case alert = 0
    /// Latest state (shadow-like snapshots): shed only after all history.
    case state = 1
    /// History (telemetry): shed first, oldest first, when the disk budget is exhausted.
    case history = 2

    /// Lane directory name.
    public var name: String {
        switch self {
        case .alert: "alert"
        case .state: "state"
        case .history: "history"
        }
    }

    /// Lanes compare by drain priority.
    public static func < (a: QueueLane, b: QueueLane) -> Bool { a.rawValue < b.rawValue }
}

/// When an append is acknowledged (see docs/EDGE.md, "Durability contract").
public enum CommitPolicy: Sendable, Hashable, CustomStringConvertible {
    /// Every append is written and `fdatasync`ed before it returns: survives power loss.
    case perMessage
    /// Appends are buffered and committed together (write + `fdatasync`) once the oldest pending
    /// append is `milliseconds` old; acknowledged at that commit. Survives power loss once acked.
    case group(milliseconds: Int)
    /// Appends are buffered and written to the kernel within the group window but never synced:
    /// acknowledged after `write(2)`. Survives a process crash, not a power loss or kernel crash.
    case noSync

    /// The default: group commit within 10 ms.
    public static let `default` = CommitPolicy.group(milliseconds: 10)

    /// `per-message`, `group:N` or `none`.
    public var description: String {
        switch self {
        case .perMessage: "per-message"
        case .group(let ms): "group:\(ms)"
        case .noSync: "none"
        }
    }

    /// Parses `per-message`, `group`, `group:N` or `none`.
    public init?(_ text: String) {
        switch text {
        case "per-message": self = .perMessage
        case "none": self = .noSync
        case "group": self = .default
        default:
            guard text.hasPrefix("group:"), let ms = Int(text.dropFirst(6)), (0...10_000).contains(ms) else { return nil }
            self = .group(milliseconds: ms)
        }
    }
}

/// The idempotent id of a stored message: device, boot epoch at append time, and the persisted
/// sequence number. The pair (boot epoch, sequence) never repeats for a device, even when a crash
/// lost unacknowledged sequence numbers.
public struct MessageID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The device's id.
    public var device: String
    /// Boot epoch of the agent that appended the message.
    public var bootEpoch: UInt32
    /// Sequence number, strictly increasing across lanes and boots.
    public var sequence: UInt64

    /// Creates an id.
    public init(device: String, bootEpoch: UInt32, sequence: UInt64) {
        self.device = device
        self.bootEpoch = bootEpoch
        self.sequence = sequence
    }

    /// `device/boot/sequence`.
    public var description: String { "\(device)/\(bootEpoch)/\(sequence)" }

    /// Orders by sequence.
    public static func < (a: MessageID, b: MessageID) -> Bool { a.sequence < b.sequence }
}

/// A record read back from the queue.
public struct StoredRecord: Sendable, Hashable {
    /// The record's id.
    public var id: MessageID
    /// Its lane.
    public var lane: QueueLane
    /// The payload as appended.
    public var payload: [UInt8]
    /// Where it is stored (segment number and byte offset), used to acknowledge it.
    public var position: QueuePosition
}

/// A position in a lane: segment number and byte offset of the record's end.
public struct QueuePosition: Sendable, Hashable, Comparable {
    /// Segment number.
    public var segment: UInt64
    /// Byte offset just past the record.
    public var offset: UInt64

    /// Creates a position.
    public init(segment: UInt64, offset: UInt64) {
        self.segment = segment
        self.offset = offset
    }

    /// Orders by segment, then offset.
    public static func < (a: QueuePosition, b: QueuePosition) -> Bool {
        (a.segment, a.offset) < (b.segment, b.offset)
    }
}

/// Counters of a queue.
public struct QueueStats: Sendable, Hashable {
    /// Bytes on disk in segment files (including not yet committed appends).
    public var bytesUsed: Int = 0
    /// Payload bytes appended since open.
    public var payloadBytesIn: Int = 0
    /// Bytes written to files since open (records, cursors, metadata).
    public var bytesWritten: Int = 0
    /// Appends since open.
    public var appends: Int = 0
    /// Records dropped by shedding since open, per lane.
    public var shed: [QueueLane: Int] = [:]
    /// Bytes of a torn tail truncated at open.
    public var truncatedBytes: Int = 0
    /// Records found at open.
    public var recoveredRecords: Int = 0
    /// Unconsumed records per lane.
    public var pending: [QueueLane: Int] = [:]
    /// Unconsumed bytes (all lanes).
    public var pendingBytes: Int = 0
    /// `fdatasync` calls since open.
    public var syncs: Int = 0

    /// Bytes written per payload byte ingested.
    public var writeAmplification: Double {
        payloadBytesIn == 0 ? 0 : Double(bytesWritten) / Double(payloadBytesIn)
    }
}
