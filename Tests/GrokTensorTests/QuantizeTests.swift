import XCTest
import GrokTensor

final class QuantizeTests: XCTestCase {
    func blocks(_ count: Int, seed: UInt64) -> [Float] {
        var random = TestRandom(seed: seed)
        var values = [Float]()
        for b in 0..<count { values += random.floats(32, scale: [1e-3, 0.5, 1, 30, 1000][b % 5]) }
        values += [Float](repeating: 0, count: 32) // an all-zero block
        return values
    }

    /// Q8_0 round trip: each value within d/2 (rounding of x/d) plus 127·|d - f16(d)| (the scale is
    /// stored as f16), d = amax/127.
    func testQ8_0RoundTripBound() {
        let values = blocks(200, seed: 1)
        let bytes = values.withUnsafeBufferPointer { Quantizer.quantize($0, to: .q8_0) }
        XCTAssertEqual(bytes.count, values.count / 32 * 34)
        let decoded = bytes.withUnsafeBytes { Quantizer.dequantize($0, dtype: .q8_0, count: values.count) }
        for b in 0..<values.count / 32 {
            let block = values[32 * b ..< 32 * b + 32]
            let d = block.map(abs).max()! / 127
            let d16 = Half.float(f16: Half.f16(d))
            let bound = d / 2 + 127 * abs(d - d16) + d * 1e-6
            for j in block.indices { XCTAssertLessThanOrEqual(abs(decoded[j] - values[j]), bound, "block \(b)") }
        }
    }

    /// Q4_0 round trip: values with x/d ≤ 7.5 are within |d|/2, the clamped top within |d|
    /// (q = 15 stands for 7·d, while the far side reaches 8·|d|), plus 8·|d - f16(d)|.
    func testQ4_0RoundTripBound() {
        let values = blocks(200, seed: 2)
        let bytes = values.withUnsafeBufferPointer { Quantizer.quantize($0, to: .q4_0) }
        XCTAssertEqual(bytes.count, values.count / 32 * 18)
        let decoded = bytes.withUnsafeBytes { Quantizer.dequantize($0, dtype: .q4_0, count: values.count) }
        for b in 0..<values.count / 32 {
            let block = values[32 * b ..< 32 * b + 32]
            let max = block.max { abs($0) < abs($1) }!
            let d = max / -8, d16 = Half.float(f16: Half.f16(d))
            for j in block.indices {
                let clamped = d != 0 && values[j] / d > 7.5
                let bound = abs(d) * (clamped ? 1 : 0.5) + 8 * abs(d - d16) + abs(d) * 1e-5
                XCTAssertLessThanOrEqual(abs(decoded[j] - values[j]), bound, "block \(b)")
            }
        }
    }

    /// ggml's exact rules on hand-checked values: Q8_0 rounds half away from zero; Q4_0 takes the
    /// signed value of largest magnitude for d = max / -8 and truncates x/d + 8.5.
    func testGGMLRules() {
        // Q8_0 with amax = 127: d = 1, so q = round(x).
        var q8 = [Float](repeating: 0, count: 32)
        q8[0] = 127; q8[1] = 2.5; q8[2] = -2.5; q8[3] = 1.49; q8[4] = -126.5
        let e8 = q8.withUnsafeBufferPointer { Quantizer.quantize($0, to: .q8_0) }
        XCTAssertEqual(Array(e8[0...1]), [0x00, 0x3C]) // d = 1.0 as f16, little-endian
        XCTAssertEqual(e8[2...6].map { Int8(bitPattern: $0) }, [127, 3, -3, 1, -127])

        // Q4_0 with max = -8: d = 1, nibble = trunc(x + 8.5), clamped to 15.
        var q4 = [Float](repeating: 0, count: 32)
        q4[0] = -8; q4[1] = 3.5; q4[2] = -3.5; q4[3] = 7.9; q4[16] = 2.49; q4[17] = 0.5
        let e4 = q4.withUnsafeBufferPointer { Quantizer.quantize($0, to: .q4_0) }
        XCTAssertEqual(Array(e4[0...1]), [0x00, 0x3C])
        let nibbles: [UInt8] = [0xA0, 0x9C, 0x85, 0x8F] // low: x[j] → 0, 12, 5, 15; high: x[j+16] → 10, 9, 8, 8
        XCTAssertEqual(Array(e4[2...5]), nibbles)
        // A positive maximum gives a negative d: the maximum itself encodes as nibble 0.
        var positive = [Float](repeating: 0, count: 32)
        positive[5] = 8
        let ep = positive.withUnsafeBufferPointer { Quantizer.quantize($0, to: .q4_0) }
        XCTAssertEqual(Half.float(f16: UInt16(ep[0]) | UInt16(ep[1]) << 8), -1)
        XCTAssertEqual(ep[2 + 5] & 0x0F, 0)
        let back = ep.withUnsafeBytes { Quantizer.dequantize($0, dtype: .q4_0, count: 32) }
        XCTAssertEqual(back[5], 8)
    }

    /// F32, F16 and BF16 encode as plain arrays of their bit patterns.
    func testFloatEncodings() {
        let values: [Float] = [1, -2.5, 0.1, 65504, 3e-5, 1e20]
        for dtype in [DType.f32, .f16, .bf16] {
            let bytes = values.withUnsafeBufferPointer { Quantizer.quantize($0, to: dtype) }
            XCTAssertEqual(bytes.count, values.count * dtype.blockBytes)
            let back = bytes.withUnsafeBytes { Quantizer.dequantize($0, dtype: dtype, count: values.count) }
            for (i, v) in values.enumerated() {
                let expected: Float
                switch dtype {
                case .f16: expected = Half.float(f16: Half.f16(v))
                case .bf16: expected = Half.float(bf16: Half.bf16(v))
                default: expected = v
                }
                XCTAssertEqual(back[i].bitPattern, expected.bitPattern, "\(dtype) \(v)")
            }
        }
    }
}
