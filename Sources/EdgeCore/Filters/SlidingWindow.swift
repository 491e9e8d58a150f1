/// A fixed-capacity window of the most recent values, kept both in arrival order (a ring) and
/// sorted, so the median is a lookup and the median absolute deviation a linear merge.
///
/// Used by ``MedianFilter`` and ``HampelFilter``. Storage is allocated once; the hot path only
/// shifts elements inside it, so it never allocates.
struct SlidingWindow: Sendable {
    private var ring: [Double]
    private var sorted: [Double]
    private var next = 0
    private(set) var count = 0

    init(capacity: Int) {
        ring = [Double](repeating: 0, count: capacity)
        sorted = [Double](repeating: 0, count: capacity)
    }

    var capacity: Int { ring.count }
    var isFull: Bool { count == ring.count }

    mutating func push(_ v: Double) {
        let n = count
        let cap = ring.count
        let slot = next
        ring.withUnsafeMutableBufferPointer { r in
            sorted.withUnsafeMutableBufferPointer { s in
                if n < cap {
                    // Growing: insert in order (after equal values).
                    var j = n
                    while j > 0 && s[j - 1] > v {
                        s[j] = s[j - 1]
                        j -= 1
                    }
                    s[j] = v
                } else {
                    // Full: the value leaving the window makes room; shift only between the two.
                    let old = r[slot]
                    var i = 0
                    while i < n - 1 && s[i] != old { i += 1 }
                    if v >= old {
                        while i + 1 < n && s[i + 1] <= v {
                            s[i] = s[i + 1]
                            i += 1
                        }
                    } else {
                        while i > 0 && s[i - 1] > v {
                            s[i] = s[i - 1]
                            i -= 1
                        }
                    }
                    s[i] = v
                }
                r[slot] = v
            }
        }
        next = slot + 1 == cap ? 0 : slot + 1
        if n < cap { count = n + 1 }
    }

    /// Median of the values held (mean of the middle two for an even count).
    func median() -> Double {
        let n = count
        if n == 0 { return 0 }
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }

    /// Median absolute deviation around `center` (normally the median), by merging the two
    /// already-sorted runs of deviations on either side of it.
    func mad(around center: Double) -> Double {
        let n = count
        if n == 0 { return 0 }
        // The k-th smallest deviations for k = (n−1)/2 and n/2.
        let k1 = (n - 1) / 2, k2 = n / 2
        return sorted.withUnsafeBufferPointer { s in
            // Split: values below the center on the left, the rest on the right.
            var split = 0
            while split < n && s[split] < center { split += 1 }
            var l = split - 1, r = split
            var a = 0.0, b = 0.0
            for k in 0...k2 {
                let dl = l >= 0 ? center - s[l] : Double.infinity
                let dr = r < n ? s[r] - center : Double.infinity
                let d: Double
                if dl <= dr {
                    d = dl
                    l -= 1
                } else {
                    d = dr
                    r += 1
                }
                if k == k1 { a = d }
                if k == k2 { b = d }
            }
            return k1 == k2 ? a : (a + b) / 2
        }
    }
}
