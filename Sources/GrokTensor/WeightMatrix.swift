/// A weight matrix in PyTorch layout `[rows (out), cols (in)]`, stored in its file dtype and not
/// owned (it usually points into a memory-mapped GGUF). Row `r` starts at `base + r * rowBytes`.
public struct WeightMatrix: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let dtype: DType
    public let rows: Int
    public let cols: Int

    public init(base: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int) {
        precondition(cols % dtype.blockSize == 0, "row length \(cols) is not a multiple of the \(dtype) block")
        self.base = base
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
    }

    public var rowBytes: Int { dtype.rowBytes(cols) }
    public var byteCount: Int { rows * rowBytes }

    public func row(_ r: Int) -> UnsafeRawPointer { base + r * rowBytes }

    /// Rows `range` of this matrix (a tensor-parallel slice of the output dimension), no copy.
    public func rows(_ range: Range<Int>) -> WeightMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows)
        return WeightMatrix(base: row(range.lowerBound), dtype: dtype, rows: range.count, cols: cols)
    }
}
