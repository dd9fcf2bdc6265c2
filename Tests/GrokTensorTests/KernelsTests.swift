import XCTest
@testable import GrokTensor

final class KernelsTests: XCTestCase {
    static let pools = [1, 2, 3].map { ThreadPool(threads: $0) }

    /// (rows, cols) cases: row counts that leave every kind of row group (16, 8, 4, single),
    /// block counts that leave partial steps, and for the plain float types column counts that
    /// leave SIMD tails. The largest is big enough for the decode path to split rows over threads.
    func shapes(_ dtype: DType) -> [(rows: Int, cols: Int)] {
        var shapes = [(1, 32), (7, 96), (23, 160), (67, 320), (263, 2048)]
        if dtype.blockSize == 1 { shapes += [(5, 1), (13, 37), (9, 257)] }
        return shapes
    }

    /// matmul equals matmulReference for every dtype, variant, thread count and n in {1, 3, 17}, to
    /// within f32 reassociation: |y - ref| ≤ 1e-5 · Σ_c |W[r,c] x[t,c]|.
    func testMatmulMatchesReference() {
        var random = TestRandom(seed: 7)
        for dtype in DType.allCases {
            for (rows, cols) in shapes(dtype) {
                let w = TestMatrix(dtype, rows: rows, cols: cols, seed: UInt64(rows * 1000 + cols))
                let weights = w.floats
                for n in [1, 3, 17] {
                    let x = random.floats(n * cols)
                    var reference = [Float](repeating: 0, count: n * rows)
                    Kernels.matmulReference(w.matrix, x: x, n: n, y: &reference)
                    var bound = [Float](repeating: 0, count: n * rows)
                    for t in 0..<n {
                        for r in 0..<rows {
                            var s: Float = 0
                            for c in 0..<cols { s += abs(weights[r * cols + c] * x[t * cols + c]) }
                            bound[t * rows + r] = 1e-5 * s + 1e-30
                        }
                    }
                    forEachISA { isa in
                        for pool in Self.pools {
                            var y = [Float](repeating: .nan, count: n * rows)
                            Kernels.matmul(w.matrix, x: x, n: n, y: &y, pool: pool)
                            let excess: [Float] = (0..<y.count).map { abs(y[$0] - reference[$0]) / bound[$0] }
                            let worst = excess.indices.max { excess[$0] < excess[$1] }!
                            XCTAssertLessThanOrEqual(excess[worst], 1, "\(dtype) \(rows)x\(cols) n=\(n) \(isa) threads=\(pool.threads) at \(worst): \(y[worst]) vs \(reference[worst])")
                        }
                    }
                }
            }
        }
    }

    /// The reference on an encoded matrix equals the reference on its f32 decoding, bit for bit.
    func testReferenceEqualsF32OfDequantized() {
        var random = TestRandom(seed: 11)
        for dtype in DType.allCases where dtype != .f32 {
            let (rows, cols) = (9, 96)
            let w = TestMatrix(dtype, rows: rows, cols: cols, seed: 3)
            let decoded = w.floats
            let x = random.floats(3 * cols)
            var y = [Float](repeating: 0, count: 3 * rows), yf = y
            Kernels.matmulReference(w.matrix, x: x, n: 3, y: &y)
            decoded.withUnsafeBytes { raw in
                let f = WeightMatrix(base: raw.baseAddress!, dtype: .f32, rows: rows, cols: cols)
                Kernels.matmulReference(f, x: x, n: 3, y: &yf)
            }
            XCTAssertEqual(y, yf, "\(dtype)")
        }
    }

    /// dequantizeRow (C, every variant) equals the Swift decoding exactly.
    func testDequantizeRowMatchesQuantizer() {
        for dtype in DType.allCases {
            for (rows, cols) in shapes(dtype) where rows < 100 {
                let w = TestMatrix(dtype, rows: rows, cols: cols, seed: 5)
                let expected = w.floats
                forEachISA { isa in
                    var row = [Float](repeating: .nan, count: cols)
                    for r in 0..<rows {
                        Kernels.dequantizeRow(w.matrix, r, into: &row)
                        XCTAssertEqual(row, Array(expected[r * cols ..< (r + 1) * cols]), "\(dtype) \(isa) row \(r)")
                    }
                }
            }
        }
    }

    /// Products with no rows or no tokens write nothing; zero columns give zeros.
    func testDegenerateShapes() {
        let w = TestMatrix(.f32, rows: 3, cols: 0, seed: 1)
        var y = [Float](repeating: .nan, count: 3)
        Kernels.matmul(w.matrix, x: [], n: 1, y: &y, pool: Self.pools[1])
        XCTAssertEqual(y, [0, 0, 0])
        var untouched = [Float](repeating: 7, count: 3)
        Kernels.matmul(w.matrix, x: [], n: 0, y: &untouched, pool: Self.pools[1])
        XCTAssertEqual(untouched, [7, 7, 7])
    }
}
