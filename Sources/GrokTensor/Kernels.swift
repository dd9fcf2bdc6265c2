import CGrokKernels

/// Instruction-set variants of the C kernels.
public enum KernelISA: Int32, CaseIterable, Sendable {
    case portable = 0, avx2 = 1, avx512 = 2

    /// Whether this CPU can run the variant.
    public var isSupported: Bool { grok_kernels_isa_supported(rawValue) != 0 }
}

/// Weight-matrix products: the hot loops of the forward pass. Weights stay in their file dtype and
/// are dequantized inside the kernels; activations and accumulation are f32.
/// (This file is the only importer of CGrokKernels; `Native` below serves the module's other files.)
public enum Kernels {
    /// The kernel variant in use: the best the CPU supports, unless set (tests, benchmarks).
    /// Setting an unsupported variant is a programming error.
    public static var isa: KernelISA {
        get { KernelISA(rawValue: grok_kernels_isa())! }
        set { precondition(grok_kernels_set_isa(newValue.rawValue) != 0, "\(newValue) is not supported on this CPU") }
    }

    /// Batches up to this many tokens take the direct kernel (each weight row read once from memory
    /// and reused from cache for every token); larger batches dequantize row tiles for sgemm.
    /// Measured on Zen 5 (2048×6144, one thread): the direct kernel is faster up to n = 16 for
    /// every dtype (Q8_0 n = 8: 82 against 43 GFLOP/s), sgemm from n = 24 on.
    static let directMaxTokens = 16
    /// Rows per dequantized tile on the sgemm path (64–256 measure alike; 16 and 512 are slower).
    static let tileRows = 128
    /// Below this many weight bytes × tokens a direct product runs on the calling thread alone.
    static let parallelMinBytes = 256 << 10

    /// y[t*w.rows + r] = Σ_c W[r,c] · x[t*w.cols + c] for t in 0..<n, r in 0..<w.rows.
    /// x: [n, w.cols] f32 row-major; y: [n, w.rows] f32 row-major. Weights stay in their dtype and
    /// are dequantized inside the kernel; accumulation in f32. n == 1 is the decode matvec
    /// (memory-bound: rows split across the pool's threads); n > 1 is prefill (compute-bound).
    public static func matmul(_ w: WeightMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        precondition(n >= 0)
        guard n > 0, w.rows > 0 else { return }
        guard w.cols > 0 else {
            y.update(repeating: 0, count: n * w.rows)
            return
        }
        if n <= directMaxTokens {
            direct(w, x: x, n: n, y: y, pool: pool)
        } else {
            tiledGemm(w, x: x, n: n, y: y, pool: pool)
        }
    }

    /// SIMD dot products, rows split over the pool.
    private static func direct(_ w: WeightMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        func rows(_ range: Range<Int>) {
            grok_matmul_rows(Int32(w.dtype.rawValue), w.base, w.rowBytes, w.cols, x, n, y, w.rows,
                             range.lowerBound, range.upperBound)
        }
        guard pool.threads > 1, w.byteCount * n >= parallelMinBytes else {
            rows(0..<w.rows)
            return
        }
        // One contiguous run of rows per thread, split at multiples of 16 rows (the kernels' largest
        // row group): every thread streams through its own part of the matrix.
        let groups = (w.rows + 15) / 16
        pool.parallelChunks(groups) { range in rows(range.lowerBound * 16 ..< min(w.rows, range.upperBound * 16)) }
    }

    /// sgemm over row tiles: f32 weights directly, others dequantized tile by tile into a per-thread
    /// scratch buffer. OpenBLAS runs single-threaded and the pool splits the rows (measured: a bit
    /// faster than OpenBLAS's own two threads, and no second set of spinning threads).
    private static func tiledGemm(_ w: WeightMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        _ = blasSingleThreaded
        let tiles = (w.rows + tileRows - 1) / tileRows
        pool.parallelChunks(tiles) { range in
            let first = range.lowerBound * tileRows, end = min(w.rows, range.upperBound * tileRows)
            if w.dtype == .f32 {
                let b = w.row(first).assumingMemoryBound(to: Float.self)
                BLAS.sgemm(m: n, n: end - first, k: w.cols, a: x, lda: w.cols, b: b, ldb: w.cols, transposeB: true,
                           c: y + first, ldc: w.rows)
                return
            }
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: tileRows * w.cols)
            defer { scratch.deallocate() }
            for r0 in stride(from: first, to: end, by: tileRows) {
                let r1 = min(end, r0 + tileRows)
                grok_dequantize_rows(Int32(w.dtype.rawValue), w.base, w.rowBytes, w.cols, r0, r1, scratch)
                BLAS.sgemm(m: n, n: r1 - r0, k: w.cols, a: x, lda: w.cols, b: scratch, ldb: w.cols, transposeB: true,
                           c: y + r0, ldc: w.rows)
            }
        }
    }

    private static let blasSingleThreaded: Void = BLAS.setThreads(1)

    /// Plain reference loop of the same contract as `matmul` (used by tests): no SIMD, no threads,
    /// weights decoded in Swift, one f32 accumulator summing columns in order.
    public static func matmulReference(_ w: WeightMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) {
        for r in 0..<w.rows {
            let row = Quantizer.dequantize(UnsafeRawBufferPointer(start: w.row(r), count: w.rowBytes),
                                           dtype: w.dtype, count: w.cols)
            for t in 0..<n {
                var acc: Float = 0
                for c in 0..<w.cols { acc += row[c] * x[t * w.cols + c] }
                y[t * w.rows + r] = acc
            }
        }
    }

    /// Dequantize row r of w into out[0..<w.cols] (f32).
    public static func dequantizeRow(_ w: WeightMatrix, _ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < w.rows)
        grok_dequantize_rows(Int32(w.dtype.rawValue), w.base, w.rowBytes, w.cols, r, r + 1, out)
    }
}

/// Checksums of stored bytes.
public enum Checksum {
    /// XXH64 (seed 0) of `bytes`, about 10 GB/s per core.
    public static func xxh64(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        grok_xxh64(bytes.baseAddress, bytes.count, seed)
    }
}

/// The C entry points used by the other files of GrokTensor.
enum Native {
    static func createPool(threads: Int) -> OpaquePointer? { grok_pool_create(Int32(threads)) }

    static func destroyPool(_ pool: OpaquePointer) { grok_pool_destroy(pool) }

    /// Runs body(i) for i in 0..<count on the pool (see grok_pool_run).
    static func runPool(_ pool: OpaquePointer, count: Int, chunk: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            var body = body
            withUnsafeMutablePointer(to: &body) { context in
                grok_pool_run(pool, { context, i in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(i)
                }, context, count, chunk)
            }
        }
    }

    static func f32ToF16(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<UInt16>, _ n: Int) { grok_f32_to_f16(s, d, n) }
    static func f16ToF32(_ s: UnsafePointer<UInt16>, _ d: UnsafeMutablePointer<Float>, _ n: Int) { grok_f16_to_f32(s, d, n) }
    static func f32ToBF16(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<UInt16>, _ n: Int) { grok_f32_to_bf16(s, d, n) }
    static func bf16ToF32(_ s: UnsafePointer<UInt16>, _ d: UnsafeMutablePointer<Float>, _ n: Int) { grok_bf16_to_f32(s, d, n) }

    /// Checksum of `bytes` bytes at `p` (64-byte aligned, a multiple of 256 bytes), read with wide loads.
    static func readSum(_ p: UnsafeRawPointer, bytes: Int) -> UInt64 { grok_read_sum(p, bytes) }
}
