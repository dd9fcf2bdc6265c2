import Foundation

/// Streaming-read bandwidth of this machine: the denominator of the "fraction of the bandwidth
/// floor" figures (decode reads every active weight once per token).
public enum MemoryBandwidth {
    /// Bytes per second read by `threads` threads summing disjoint parts of a `bytes`-byte buffer
    /// (default 1 GiB, far beyond any L3) with SIMD loads: best of several passes after a warm-up.
    /// `pool` (with at least `threads` threads) runs the parts; nil or threads == 1 reads on the
    /// calling thread.
    public static func measureRead(bytes: Int = 1 << 30, threads: Int, pool: ThreadPool?) -> Double {
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
        _ = pass()
        let best = (0..<5).map { _ in pass() }.min()!
        return Double(total) / best
    }
}
