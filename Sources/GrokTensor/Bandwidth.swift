import Foundation

/// Streaming-read bandwidth of this machine: the denominator of the "fraction of the bandwidth
/// floor" figures (decode reads every active weight once per token).
public enum MemoryBandwidth {
    /// Which pass a measurement reports: the fastest (what the machine can do), or the median
    /// (what a long run sees on a machine whose speed varies, or beside other processes).
    public enum Statistic: Sendable { case best, median }

    /// Bytes per second read by `threads` threads summing disjoint parts of a `bytes`-byte buffer
    /// (default 1 GiB, far beyond any L3) with SIMD loads: the `statistic` of `passes` passes
    /// after a warm-up. `pool` (with at least `threads` threads) runs the parts; nil or threads
    /// == 1 reads on the calling thread. `ready` runs once the buffer is written, before the
    /// warm-up: processes measuring together synchronise there, so that every timed pass of
    /// each overlaps the others' (not their page faulting).
    public static func measureRead(bytes: Int = 1 << 30, threads: Int, pool: ThreadPool?, statistic: Statistic = .best,
                                   passes: Int = 5, ready: () -> Void = {}) -> Double {
        precondition(threads >= 1 && (threads == 1 || (pool?.threads ?? 0) >= threads),
                     "reading with \(threads) threads needs a pool of at least \(threads)")
        let unit = 256 * threads
        let total = max(unit, bytes / unit * unit)
        let part = total / threads
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 4096)
        defer { buffer.deallocate() }
        // Write every page so that the reads hit real memory, not the shared zero page.
        memset(buffer, 0x5A, total)

        // The checksums are dropped: the C calls are opaque to Swift and cannot be elided.
        func pass() -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            if threads == 1 {
                _ = Native.readSum(buffer, bytes: total)
            } else {
                pool!.parallelFor(threads) { i in _ = Native.readSum(buffer + i * part, bytes: part) }
            }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        ready()
        _ = pass()
        let times = (0..<max(1, passes)).map { _ in pass() }.sorted()
        return Double(total) / (statistic == .best ? times[0] : times[times.count / 2])
    }
}
