/// A fixed-capacity ring of the most recent values with an allocation-free median.
///
/// Used by ``MedianFilter`` and ``HampelFilter``; the scratch buffer is reused so the hot path
/// never allocates.
struct SlidingWindow: Sendable {
    private var ring: [Double]
    private var scratch: [Double]
    private var next = 0
    private(set) var count = 0

    init(capacity: Int) {
        ring = [Double](repeating: 0, count: capacity)
        scratch = [Double](repeating: 0, count: capacity)
    }

    var capacity: Int { ring.count }
    var isFull: Bool { count == ring.count }

    mutating func push(_ v: Double) {
        ring[next] = v
        next += 1
        if next == ring.count { next = 0 }
        if count < ring.count { count += 1 }
    }

    /// Median of the values currently held (mean of the middle two for an even count).
    mutating func median() -> Double {
        let n = count
        ring.withUnsafeBufferPointer { src in
            scratch.withUnsafeMutableBufferPointer { dst in
                // The live values are the first `n` ring slots until the ring wraps, then all of it.
                for i in 0..<n { dst[i] = src[i] }
                SlidingWindow.insertionSort(dst, n)
            }
        }
        return SlidingWindow.middle(scratch, n)
    }

    /// Median absolute deviation from `center` of the values currently held.
    mutating func mad(around center: Double) -> Double {
        let n = count
        ring.withUnsafeBufferPointer { src in
            scratch.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n { dst[i] = abs(src[i] - center) }
                SlidingWindow.insertionSort(dst, n)
            }
        }
        return SlidingWindow.middle(scratch, n)
    }

    private static func insertionSort(_ a: UnsafeMutableBufferPointer<Double>, _ n: Int) {
        if n < 2 { return }
        for i in 1..<n {
            let v = a[i]
            var j = i - 1
            while j >= 0 && a[j] > v {
                a[j + 1] = a[j]
                j -= 1
            }
            a[j + 1] = v
        }
    }

    private static func middle(_ a: [Double], _ n: Int) -> Double {
        if n == 0 { return 0 }
        return n % 2 == 1 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2
    }
}
