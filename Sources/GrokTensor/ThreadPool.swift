/// A fixed set of persistent threads for data-parallel loops. The calling thread takes part as
/// worker 0, so `ThreadPool(threads: n)` starts n - 1 threads; with n == 1 every loop runs inline.
/// Idle workers spin for ~0.2 ms after each job (calls come microseconds apart during decode), then
/// sleep. A call made while the pool is busy (from inside a body, or from another thread) runs
/// inline on the calling thread, so nesting is safe.
public final class ThreadPool: @unchecked Sendable {
    public let threads: Int
    private let native: OpaquePointer?

    public init(threads: Int) {
        precondition(threads >= 1, "a thread pool needs at least one thread, got \(threads)")
        self.threads = threads
        if threads > 1 {
            guard let pool = Native.createPool(threads: threads) else { fatalError("could not start \(threads - 1) threads") }
            native = pool
        } else {
            native = nil
        }
    }

    deinit {
        if let native { Native.destroyPool(native) }
    }

    /// Calls `body(i)` exactly once for every i in 0..<count, spread over the threads, and returns
    /// when all calls have returned. Threads claim small runs of indices as they go, so uneven
    /// bodies balance out. `body` runs concurrently with itself.
    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        guard let native, count > 1 else {
            for i in 0..<count { body(i) }
            return
        }
        Native.runPool(native, count: count, chunk: max(1, count / (threads * 16)), body)
    }

    /// Splits 0..<count into min(threads, count) contiguous ranges of near-equal size and calls
    /// `body` once per range, concurrently. Does nothing when count == 0.
    public func parallelChunks(_ count: Int, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, count)
        guard parts > 1 else {
            if count > 0 { body(0..<count) }
            return
        }
        parallelFor(parts) { i in body(count * i / parts ..< count * (i + 1) / parts) }
    }
}
