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
    private var heap: [(ts: Double, seq: Int, sample: Sample)] = []
    private var seq = 0
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
    public var count: Int { heap.count }

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
        if window == 0 && heap.isEmpty {
            // Fast path: in-order stream without a window.
            if s.ts > newest { newest = s.ts }
            lastReleased = s.ts
            ready.append(s)
            return .accepted
        }
        if s.ts > newest { newest = s.ts }
        seq += 1
        heapPush((s.ts, seq, s))
        let horizon = newest - window
        while let top = heap.first, top.ts <= horizon || heap.count > capacity {
            release(into: &ready)
        }
        return .accepted
    }

    /// Releases everything held, in order.
    public mutating func drain(into ready: inout [Sample]) {
        while !heap.isEmpty { release(into: &ready) }
    }

    private mutating func release(into ready: inout [Sample]) {
        let top = heapPop()
        // Two buffered samples with the same timestamp: keep the first that arrived.
        if top.ts == lastReleased {
            duplicates += 1
            return
        }
        lastReleased = top.ts
        ready.append(top.sample)
    }

    private static func less(_ a: (ts: Double, seq: Int, sample: Sample), _ b: (ts: Double, seq: Int, sample: Sample)) -> Bool {
        a.ts < b.ts || (a.ts == b.ts && a.seq < b.seq)
    }

    private mutating func heapPush(_ e: (ts: Double, seq: Int, sample: Sample)) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !ReorderBuffer.less(heap[i], heap[parent]) { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private mutating func heapPop() -> (ts: Double, seq: Int, sample: Sample) {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && ReorderBuffer.less(heap[l], heap[m]) { m = l }
                if r < heap.count && ReorderBuffer.less(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
