/// A bounded reorder window for one sensor.
///
/// Samples may arrive out of order (vehicle buses deliver in bursts, radios retransmit). The buffer
/// holds samples until the newest timestamp seen is more than ``window`` seconds ahead of them, then
/// releases them in timestamp order. A sample older than the last released one is *late*: it is
/// dropped and counted. A sample whose timestamp equals an already released one is a *duplicate*.
/// Memory is bounded by ``capacity``: when full, the oldest sample is released early.
public struct ReorderBuffer: Sendable {
    /// What happened to a pushed sample.
    public enum Verdict: Sendable, Hashable {
        /// Buffered (or released) normally.
        case accepted
        /// Older than the last released sample: dropped.
        case late
        /// Same timestamp as the last released sample: dropped.
        case duplicate
    }

    /// Reorder window in seconds (0 = no reordering, samples must arrive in order).
    public let window: Double
    /// Largest number of samples held.
    public let capacity: Int
    /// Held samples sorted by time (stable for equal times) from `head` on. Samples usually
    /// arrive in order, so an insert is an append and a release advances `head`: O(1).
    private var held: [Sample] = []
    private var head = 0
    private var newest = -Double.infinity
    /// Timestamp of the last released sample.
    public private(set) var lastReleased = -Double.infinity
    /// Samples dropped as late so far.
    public private(set) var late = 0
    /// Samples dropped as duplicates so far.
    public private(set) var duplicates = 0

    /// Creates a buffer.
    public init(window: Double, capacity: Int = 65_536) {
        self.window = window
        self.capacity = max(1, capacity)
    }

    /// Number of samples held.
    public var count: Int { held.count - head }

    /// Pushes a sample and appends every sample now ready, in order, to `ready`.
    public mutating func push(_ s: Sample, ready: inout [Sample]) -> Verdict {
        if s.ts < lastReleased {
            late += 1
            return .late
        }
        if s.ts == lastReleased {
            duplicates += 1
            return .duplicate
        }
        if s.ts > newest { newest = s.ts }
        if window == 0 && count == 0 {
            // Fast path: in-order stream without a window.
            lastReleased = s.ts
            ready.append(s)
            return .accepted
        }
        insert(s)
        let horizon = newest - window
        while head < held.count && (held[head].ts <= horizon || count > capacity) {
            release(into: &ready)
        }
        compact()
        return .accepted
    }

    /// Releases everything held, in order.
    public mutating func drain(into ready: inout [Sample]) {
        while head < held.count { release(into: &ready) }
        compact()
    }

    private mutating func insert(_ s: Sample) {
        if head == held.count || held[held.count - 1].ts <= s.ts {
            held.append(s)
            return
        }
        // Out of order: binary search for the first held sample later than `s`.
        var lo = head, hi = held.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if held[mid].ts <= s.ts { lo = mid + 1 } else { hi = mid }
        }
        held.insert(s, at: lo)
    }

    private mutating func release(into ready: inout [Sample]) {
        let top = held[head]
        head += 1
        // Two buffered samples with the same timestamp: keep the first that arrived.
        if top.ts == lastReleased {
            duplicates += 1
            return
        }
        lastReleased = top.ts
        ready.append(top)
    }

    private mutating func compact() {
        if head == held.count {
            held.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= held.count {
            held.removeFirst(head)
            head = 0
        }
    }
}
