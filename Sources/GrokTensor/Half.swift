/// Conversions between f32 and the two 16-bit float formats of weight files: IEEE binary16 (F16)
/// and bfloat16 (BF16, the upper half of an f32). Values travel as their bit patterns (UInt16).
public enum Half {
    /// F16 bits of `x`, rounded to nearest even; overflow gives ±infinity, NaN stays NaN.
    @inline(__always)
    public static func f16(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    /// The f32 value of F16 bits (exact).
    @inline(__always)
    public static func float(f16 bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    /// BF16 bits of `x`, as ggml rounds (GGML_FP32_TO_BF16): to nearest even, a NaN stays a
    /// (quiet) NaN with its sign.
    @inline(__always)
    public static func bf16(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        if u & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: u >> 16) | 64 }
        return UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }

    /// The f32 value of BF16 bits (exact).
    @inline(__always)
    public static func float(bf16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    // Bulk conversions (SIMD, same rounding as the scalar functions); `src` and `dst` have the
    // same count.

    public static func convert(_ src: UnsafeBufferPointer<Float>, toF16 dst: UnsafeMutableBufferPointer<UInt16>) {
        precondition(src.count == dst.count)
        if let s = src.baseAddress, let d = dst.baseAddress { Native.f32ToF16(s, d, src.count) }
    }

    public static func convert(f16 src: UnsafeBufferPointer<UInt16>, to dst: UnsafeMutableBufferPointer<Float>) {
        precondition(src.count == dst.count)
        if let s = src.baseAddress, let d = dst.baseAddress { Native.f16ToF32(s, d, src.count) }
    }

    public static func convert(_ src: UnsafeBufferPointer<Float>, toBF16 dst: UnsafeMutableBufferPointer<UInt16>) {
        precondition(src.count == dst.count)
        if let s = src.baseAddress, let d = dst.baseAddress { Native.f32ToBF16(s, d, src.count) }
    }

    public static func convert(bf16 src: UnsafeBufferPointer<UInt16>, to dst: UnsafeMutableBufferPointer<Float>) {
        precondition(src.count == dst.count)
        if let s = src.baseAddress, let d = dst.baseAddress { Native.bf16ToF32(s, d, src.count) }
    }
}
