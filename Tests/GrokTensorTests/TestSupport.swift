import GrokTensor

/// Deterministic pseudo-random numbers (SplitMix64) for test data.
struct TestRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }

    /// `count` values in [-scale, scale).
    mutating func floats(_ count: Int, scale: Float = 1) -> [Float] { (0..<count).map { _ in uniform() * scale } }
}

/// A weight matrix with its own storage, encoded from random values whose scale varies by row.
final class TestMatrix {
    let bytes: UnsafeMutableRawBufferPointer
    let matrix: WeightMatrix

    init(_ dtype: DType, rows: Int, cols: Int, seed: UInt64) {
        var random = TestRandom(seed: seed)
        var values = [Float]()
        values.reserveCapacity(rows * cols)
        for r in 0..<rows { values += random.floats(cols, scale: Float(1 + r % 5)) }
        let encoded = values.withUnsafeBufferPointer { Quantizer.quantize($0, to: dtype) }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, encoded.count), alignment: 64)
        encoded.withUnsafeBytes { storage.copyMemory(from: $0) }
        bytes = storage
        matrix = WeightMatrix(base: UnsafeRawPointer(storage.baseAddress!), dtype: dtype, rows: rows, cols: cols)
    }

    deinit { bytes.deallocate() }

    /// The matrix decoded to f32, row-major.
    var floats: [Float] {
        Quantizer.dequantize(UnsafeRawBufferPointer(start: matrix.base, count: matrix.byteCount),
                             dtype: matrix.dtype, count: matrix.rows * matrix.cols)
    }
}

/// Runs `body` with each kernel variant this CPU supports, then restores the default.
func forEachISA(_ body: (KernelISA) throws -> Void) rethrows {
    let initial = Kernels.isa
    defer { Kernels.isa = initial }
    for isa in KernelISA.allCases where isa.isSupported {
        Kernels.isa = isa
        try body(isa)
    }
}
