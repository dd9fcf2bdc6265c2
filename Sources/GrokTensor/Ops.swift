import Foundation

/// Elementwise and per-row operations on f32 activation buffers. These are cheap next to the
/// weight matmuls (O(d) per token against O(d²)), so they stay plain Swift loops.
public enum Ops {
    /// out[i] = weight[i] · x[i] / sqrt(mean(x²) + eps), for one row of `n` values. No "+1" on the
    /// weight (Grok's RMSNorm is not Gemma's). `out` may alias `x`.
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float,
                               count n: Int, into out: UnsafeMutablePointer<Float>) {
        var sum: Float = 0
        for i in 0..<n { sum += x[i] * x[i] }
        let inv = 1 / (sum / Float(n) + eps).squareRoot()
        for i in 0..<n { out[i] = weight[i] * (x[i] * inv) }
    }

    /// RMSNorm of each of `rows` rows of `n` values, in place.
    public static func rmsNormRows(_ x: UnsafeMutablePointer<Float>, rows: Int, weight: [Float], eps: Float) {
        weight.withUnsafeBufferPointer { w in
            for r in 0..<rows { rmsNorm(x + r * w.count, weight: w.baseAddress!, eps: eps, count: w.count, into: x + r * w.count) }
        }
    }

    /// Rotary embedding, rotate-half (NeoX) pairing: element i pairs with i + dim/2, all `dim`
    /// values rotated. `invFreq[j] = base^(-2j/dim)`, j < dim/2; phase computed in f32 as the
    /// official JAX code does (`t * inv_freq`, grok-architecture.md §2.5).
    public static func ropeRotateHalf(_ x: UnsafeMutablePointer<Float>, dim: Int, position: Int, invFreq: [Float]) {
        let half = dim / 2
        let t = Float(position)
        for j in 0..<half {
            let phase = t * invFreq[j]
            let c = cos(phase), s = sin(phase)
            let a = x[j], b = x[j + half]
            x[j] = a * c - b * s
            x[j + half] = b * c + a * s
        }
    }

    /// Inverse frequencies for rotate-half RoPE: base^(-2j/dim), computed in f32 like the reference.
    public static func ropeInverseFrequencies(dim: Int, base: Double) -> [Float] {
        (0..<(dim / 2)).map { j in Float(1.0 / pow(base, Double(2 * j) / Double(dim))) }
    }

    /// Numerically stable softmax of `n` values in place.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        var m = -Float.infinity
        for i in 0..<n { m = max(m, x[i]) }
        var sum: Float = 0
        for i in 0..<n { x[i] = exp(x[i] - m); sum += x[i] }
        let inv = 1 / sum
        for i in 0..<n { x[i] *= inv }
    }

    /// cap · tanh(x / cap), the Grok soft-cap. `cap <= 0` means no cap.
    @inline(__always)
    public static func softCap(_ x: Float, _ cap: Float) -> Float { cap > 0 ? cap * tanh(x / cap) : x }

    /// GELU, tanh approximation (jax.nn.gelu default; Grok-1).
    @inline(__always)
    public static func geluTanh(_ x: Float) -> Float {
        let k: Float = 0.7978845608028654 // sqrt(2/π)
        return 0.5 * x * (1 + tanh(k * (x + 0.044715 * x * x * x)))
    }

    /// GELU, exact erf form (SGLang's GPU path for Grok-2, grok-architecture.md §8).
    @inline(__always)
    public static func geluErf(_ x: Float) -> Float {
        0.5 * x * (1 + erf(x * 0.7071067811865476))
    }
}
