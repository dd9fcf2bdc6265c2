/// f32 values to and from the byte layouts of weight files, with exactly ggml's reference rules
/// (quantize_row_q8_0_ref, quantize_row_q4_0_ref), so that files we write match llama.cpp's.
/// Decoding here is plain Swift, independent of the C kernels (Kernels.matmulReference uses it).
public enum Quantizer {
    /// `src` encoded as `dtype`, row-major: src.count must be a multiple of dtype.blockSize; the
    /// result has dtype.rowBytes(src.count) bytes.
    ///  - Q8_0, per block of 32: d = amax / 127, q = round(x / d) (as x · (1/d)), d stored as f16.
    ///  - Q4_0, per block: m = the value of largest magnitude (signed), d = m / -8,
    ///    q = min(15, trunc(x / d + 8.5)) (as x · (1/d)); element j in the low nibble of byte j,
    ///    element j + 16 in its high nibble; d stored as f16.
    public static func quantize(_ src: UnsafeBufferPointer<Float>, to dtype: DType) -> [UInt8] {
        precondition(src.count % dtype.blockSize == 0, "\(src.count) values are not whole \(dtype) blocks")
        var out = [UInt8](repeating: 0, count: dtype.rowBytes(src.count))
        out.withUnsafeMutableBytes { raw in
            switch dtype {
            case .f32:
                raw.copyMemory(from: UnsafeRawBufferPointer(src))
            case .f16:
                Half.convert(src, toF16: raw.bindMemory(to: UInt16.self))
            case .bf16:
                Half.convert(src, toBF16: raw.bindMemory(to: UInt16.self))
            case .q8_0:
                for b in 0..<src.count / 32 { quantizeQ8_0(src.baseAddress! + 32 * b, into: raw.baseAddress! + 34 * b) }
            case .q4_0:
                for b in 0..<src.count / 32 { quantizeQ4_0(src.baseAddress! + 32 * b, into: raw.baseAddress! + 18 * b) }
            }
        }
        return out
    }

    /// The first `count` values encoded in `bytes` (dtype's layout, count a multiple of its block).
    public static func dequantize(_ bytes: UnsafeRawBufferPointer, dtype: DType, count: Int) -> [Float] {
        precondition(count % dtype.blockSize == 0 && bytes.count >= dtype.rowBytes(count))
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            switch dtype {
            case .f32:
                for i in 0..<count { out[i] = bytes.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
            case .f16:
                for i in 0..<count { out[i] = Half.float(f16: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
            case .bf16:
                for i in 0..<count { out[i] = Half.float(bf16: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
            case .q8_0:
                for b in 0..<count / 32 {
                    let d = Half.float(f16: bytes.loadUnaligned(fromByteOffset: 34 * b, as: UInt16.self))
                    for j in 0..<32 { out[32 * b + j] = d * Float(Int8(bitPattern: bytes[34 * b + 2 + j])) }
                }
            case .q4_0:
                for b in 0..<count / 32 {
                    let d = Half.float(f16: bytes.loadUnaligned(fromByteOffset: 18 * b, as: UInt16.self))
                    for j in 0..<16 {
                        let q = bytes[18 * b + 2 + j]
                        out[32 * b + j] = d * Float(Int(q & 0x0F) - 8)
                        out[32 * b + j + 16] = d * Float(Int(q >> 4) - 8)
                    }
                }
            }
            initialized = count
        }
    }

    /// One Q8_0 block: 32 values at `x` into 34 bytes at `out`.
    private static func quantizeQ8_0(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 where abs(x[j]) > amax { amax = abs(x[j]) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        out.storeBytes(of: Half.f16(d), as: UInt16.self)
        for j in 0..<32 {
            let q = (x[j] * id).rounded() // half away from zero, as roundf
            out.storeBytes(of: q.isNaN ? 0 : Int8(q), toByteOffset: 2 + j, as: Int8.self)
        }
    }

    /// One Q4_0 block: 32 values at `x` into 18 bytes at `out`.
    private static func quantizeQ4_0(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        var amax: Float = 0, max: Float = 0
        for j in 0..<32 where amax < abs(x[j]) { amax = abs(x[j]); max = x[j] }
        let d = max / -8
        let id: Float = d != 0 ? 1 / d : 0
        out.storeBytes(of: Half.f16(d), as: UInt16.self)
        func nibble(_ v: Float) -> UInt8 {
            let shifted = v * id + 8.5 // in [0.5, 16.5]: truncation is ggml's (int8_t) cast
            return shifted.isNaN ? 8 : UInt8(min(15, Int8(shifted)))
        }
        for j in 0..<16 {
            out.storeBytes(of: nibble(x[j]) | nibble(x[j + 16]) << 4, toByteOffset: 2 + j, as: UInt8.self)
        }
    }
}
