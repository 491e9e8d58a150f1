import Dispatch
import Foundation
import Synchronization
import WardenCore
import WardenPKI
import WardenStore

/// The shared state of one batch enrollment: rows are claimed by worker threads through atomic counters (no fixed
/// stride, so a slow row never idles a thread), and each finished chunk is handed to the recording thread in file
/// order.
///
/// Two phases: while the issuing key is still being unlocked (PBKDF2), workers only read and check CSRs, which needs
/// no private key; once the key is ready, workers sign the rows checked so far and then check and sign the rest, and
/// the recording thread helps them whenever it waits for a chunk.
final class BatchPipeline: @unchecked Sendable {
    // @unchecked: `checked` and `results` are written by exactly one worker per index (the one that claimed it
    // through an atomic counter) and read only after the synchronization that ends that phase or that chunk (a
    // DispatchGroup wait or the chunk's semaphore), which orders the accesses. Everything else is atomic or locked.

    /// What the first phase left for a row.
    enum Checked {
        /// Passed every check; ready to sign.
        case valid(ValidatedCSR)
        /// Refused, with the reason.
        case refused(String)
    }

    let rows: [BatchRow]
    /// First row of each chunk, then `rows.count`.
    let boundaries: [Int]
    let checked: UnsafeMutableBufferPointer<Checked?>
    let results: UnsafeMutableBufferPointer<BatchRowResult?>
    /// Next row for the first phase to check.
    let nextToCheck = Atomic<Int>(0)
    /// Next row for the second phase to finish.
    let nextToSign = Atomic<Int>(0)
    /// Set when the batch stops early (a storage error): workers stop claiming rows.
    let cancelled = Atomic<Bool>(false)
    /// Rows still unfinished in each chunk.
    let remaining: Mutex<[Int]>
    /// Signalled once when a chunk's last row is finished.
    let chunkDone: [DispatchSemaphore]

    init(rows: [BatchRow], chunkSize: Int) {
        self.rows = rows
        let boundaries = Self.chunkBoundaries(count: rows.count, chunkSize: chunkSize)
        self.boundaries = boundaries
        checked = .allocate(capacity: rows.count)
        checked.initialize(repeating: nil)
        results = .allocate(capacity: rows.count)
        results.initialize(repeating: nil)
        remaining = Mutex(zip(boundaries, boundaries.dropFirst()).map { $1 - $0 })
        chunkDone = (0..<(boundaries.count - 1)).map { _ in DispatchSemaphore(value: 0) }
    }

    deinit {
        checked.deinitialize()
        checked.deallocate()
        results.deinitialize()
        results.deallocate()
    }

    /// Number of chunks.
    var chunkCount: Int { boundaries.count - 1 }

    /// Chunk boundaries for `count` rows: mostly `chunkSize` rows per transaction, with a short first chunk (the
    /// recording starts early) and a short last one (little serial work is left after the last signature).
    static func chunkBoundaries(count: Int, chunkSize: Int) -> [Int] {
        let chunkSize = max(1, chunkSize)
        let edge = min(64, chunkSize)
        var boundaries = [0]
        var position = 0
        while position < count {
            let remaining = count - position
            let size =
                position == 0 ? min(edge, remaining)
                : remaining > edge && remaining <= chunkSize + edge ? remaining - edge : min(chunkSize, remaining)
            position += size
            boundaries.append(position)
        }
        return boundaries
    }

    /// Starts `count` threads running `body(index)`; the group is left when each returns. Threads rather than Dispatch:
    /// these loops block or run for the whole batch, and the global queues only run as many items as there are CPUs.
    static func spawn(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) -> DispatchGroup {
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            Thread {
                body(index)
                group.leave()
            }.start()
        }
        return group
    }

    /// First phase, run by each worker: checks rows until `stop()` (the key is ready) or every row is checked.
    func check(until stop: () -> Bool, _ check: (BatchRow) -> Checked) {
        while !stop() && !cancelled.load(ordering: .relaxed) {
            let index = nextToCheck.wrappingAdd(1, ordering: .relaxed).oldValue
            guard index < rows.count else { return }
            checked[index] = check(rows[index])
        }
    }

    /// Rows the first phase claimed (all checked once every first-phase worker has returned).
    var checkedCount: Int { min(nextToCheck.load(ordering: .acquiring), rows.count) }

    /// Second phase: claims the next row in file order and finishes it. Only call once the first phase is over.
    /// - Parameter finish: turns a row (and its first-phase result, if any) into its final result.
    /// - Returns: false when no row is left (or the batch was cancelled).
    func finishOne(_ finish: (BatchRow, Checked?) -> BatchRowResult) -> Bool {
        guard !cancelled.load(ordering: .relaxed) else { return false }
        let index = nextToSign.wrappingAdd(1, ordering: .relaxed).oldValue
        guard index < rows.count else { return false }
        results[index] = finish(rows[index], index < checkedCount ? checked[index] : nil)
        checked[index] = nil
        let chunk = chunk(of: index)
        let complete = remaining.withLock { counts in
            counts[chunk] -= 1
            return counts[chunk] == 0
        }
        if complete { chunkDone[chunk].signal() }
        return true
    }

    /// Whether every row of chunk `chunk` is finished.
    func isComplete(_ chunk: Int) -> Bool {
        remaining.withLock { $0[chunk] == 0 }
    }

    /// Index of the chunk holding row `index`.
    func chunk(of index: Int) -> Int {
        var low = 0
        var high = chunkCount - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if boundaries[middle] <= index { low = middle } else { high = middle - 1 }
        }
        return low
    }

    /// Waits until every row of chunk `chunk` is finished and returns their results, in file order.
    func awaitChunk(_ chunk: Int) -> [BatchRowResult] {
        chunkDone[chunk].wait()
        return (boundaries[chunk]..<boundaries[chunk + 1]).map { index in
            let result = results[index]!
            results[index] = nil
            return result
        }
    }
}
