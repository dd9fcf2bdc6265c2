import Foundation
import XCTest
import GrokTensor

/// Throughput figures, run only with GROK_BENCH=1 (build with -c release for meaningful numbers):
///     GROK_BENCH=1 swift test -c release --filter GrokTensorTests.BenchmarkTests
/// Decode: a ~1 GiB matrix per dtype, weight bytes per second and the fraction of
/// MemoryBandwidth.measureRead with the same thread count. Prefill: GFLOP/s at n = 64.
final class BenchmarkTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["GROK_BENCH"] == "1", "set GROK_BENCH=1 to run")
    }

    func seconds(_ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }

    func testDecodeAndPrefill() {
        let pools = [1, 2].map { ThreadPool(threads: $0) }
        let bandwidth = pools.map { MemoryBandwidth.measureRead(threads: $0.threads, pool: $0) }
        print(String(format: "read bandwidth: 1T %.1f GB/s, 2T %.1f GB/s", bandwidth[0] / 1e9, bandwidth[1] / 1e9))
        let cols = 6144
        var random = TestRandom(seed: 2)
        let x = random.floats(64 * cols)
        for dtype in DType.allCases {
            // 64 random rows, repeated to ~1 GiB.
            let seed = TestMatrix(dtype, rows: 64, cols: cols, seed: 1)
            let rows = (1 << 30) / dtype.rowBytes(cols) / 64 * 64
            let storage = UnsafeMutableRawPointer.allocate(byteCount: rows * seed.matrix.rowBytes, alignment: 4096)
            defer { storage.deallocate() }
            for r in stride(from: 0, to: rows, by: 64) {
                (storage + r * seed.matrix.rowBytes).copyMemory(from: seed.matrix.base, byteCount: seed.matrix.byteCount)
            }
            let w = WeightMatrix(base: storage, dtype: dtype, rows: rows, cols: cols)
            var y = [Float](repeating: 0, count: 64 * rows)
            var line = "\(dtype) decode \(rows)x\(cols):"
            for (i, pool) in pools.enumerated() {
                let rate = Double(w.byteCount) / seconds { Kernels.matmul(w, x: x, n: 1, y: &y, pool: pool) }
                line += String(format: "  %dT %.1f GB/s (%.0f%%)", pool.threads, rate / 1e9, 100 * rate / bandwidth[i])
            }
            let prefill = w.rows(0..<4096)
            line += "; prefill n=64 4096x\(cols):"
            for pool in pools {
                let t = seconds { Kernels.matmul(prefill, x: x, n: 64, y: &y, pool: pool) }
                line += String(format: "  %dT %.0f GFLOP/s", pool.threads, 2 * 64 * 4096 * Double(cols) / t / 1e9)
            }
            print(line)
        }
        let pool = pools[1]
        let calls = 100_000
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<calls { pool.parallelFor(2) { _ in } }
        print(String(format: "empty parallelFor(2) on 2 threads: %.2f µs",
                     Double(DispatchTime.now().uptimeNanoseconds - start) / Double(calls) / 1e3))
    }
}
