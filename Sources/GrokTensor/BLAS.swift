import CBLAS

/// The few OpenBLAS calls GrokTensor uses (this file is the only importer of CBLAS).
public enum BLAS {
    /// c[m, n] = a[m, k] · op(b) + beta · c[m, n], row-major f32. op(b) = bᵀ with b stored [n, k]
    /// when `transposeB`, else b stored [k, n]. lda/ldb/ldc are the row strides in elements.
    public static func sgemm(m: Int, n: Int, k: Int,
                             a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                             c: UnsafeMutablePointer<Float>, ldc: Int, beta: Float = 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[m] = op(a) · x + beta · y, row-major f32 with a stored [m, n] (or [n, m] when `transposeA`,
    /// giving aᵀ·x) and row stride lda. No packing: the m = 1 case of attention, where sgemm's
    /// copies cost more than the product.
    public static func sgemv(m: Int, n: Int, a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                             x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, beta: Float = 0) {
        cblas_sgemv(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
                    Int32(transposeA ? n : m), Int32(transposeA ? m : n), 1, a, Int32(lda), x, 1, beta, y, 1)
    }

    /// Threads OpenBLAS itself uses per call (process-wide). mpirun's core binding changes its
    /// default, so set it explicitly.
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(count))
    }
}
