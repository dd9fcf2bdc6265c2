import XCTest
import GrokTensor

final class HalfTests: XCTestCase {
    /// Every F16 and BF16 bit pattern decodes and re-encodes to itself (NaNs stay NaN).
    func testExhaustiveRoundTrips() {
        for bits in 0...UInt16.max {
            let h = Half.float(f16: bits)
            if h.isNaN { XCTAssertTrue(Half.float(f16: Half.f16(h)).isNaN) } else { XCTAssertEqual(Half.f16(h), bits) }
            let b = Half.float(bf16: bits)
            if b.isNaN { XCTAssertTrue(Half.float(bf16: Half.bf16(b)).isNaN) } else { XCTAssertEqual(Half.bf16(b), bits) }
        }
    }

    func testF16RoundsToNearestEven() {
        let tiny = Float(sign: .plus, exponent: -24, significand: 1) // smallest f16 subnormal
        let cases: [(Float, UInt16)] = [
            (1, 0x3C00), (-2, 0xC000), (0, 0), (-0.0, 0x8000),
            (1 + 1 / 2048, 0x3C00),              // tie → even
            (1 + 3 / 2048, 0x3C02),              // tie → even (up)
            (65504, 0x7BFF), (65519, 0x7BFF), (65520, 0x7C00), (.infinity, 0x7C00), (-.infinity, 0xFC00),
            (tiny, 0x0001), (tiny / 2, 0x0000),  // tie at the bottom → even (zero)
            (tiny * 1.5, 0x0002),                // tie → even
            (Float(sign: .plus, exponent: -14, significand: 1), 0x0400),
        ]
        for (value, bits) in cases { XCTAssertEqual(Half.f16(value), bits, "\(value)") }
        XCTAssertTrue(Half.float(f16: Half.f16(.nan)).isNaN)
    }

    func testBF16RoundsToNearestEvenAndKeepsNaN() {
        let cases: [(UInt32, UInt16)] = [
            (0x3F80_0000, 0x3F80),               // 1
            (0x3F80_8000, 0x3F80),               // 1 + 2^-8: tie → even (down)
            (0x3F81_8000, 0x3F82),               // 1 + 3·2^-8: tie → even (up)
            (0x3F80_8001, 0x3F81),               // just above the tie
            (0xBF80_7FFF, 0xBF80),               // just below the tie, negative
            (0x7F7F_FFFF, 0x7F80),               // largest f32 rounds to infinity
            (0x7F80_0000, 0x7F80), (0xFF80_0000, 0xFF80),
            (0x7F80_0001, 0x7FC0),               // signalling NaN with low payload: stays NaN, not inf
            (0xFF80_0001, 0xFFC0),
            (0x7FC0_0000, 0x7FC0),
            (0x0000_0001, 0x0000), (0x8000_0000, 0x8000),
        ]
        for (bits, expected) in cases {
            XCTAssertEqual(Half.bf16(Float(bitPattern: bits)), expected, String(bits, radix: 16))
        }
    }

    /// The bulk (C, every variant) conversions equal the scalar ones bit for bit, tails included.
    func testBulkConversionsMatchScalar() {
        var random = TestRandom(seed: 3)
        var floats = (0..<10_003).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: random.next())) }
        floats += [0, -0.0, .infinity, -.infinity, .nan, 65520, 65519, 1e-8, -1e-7, 6e-5]
        floats += random.floats(1000, scale: 70_000)
        let halves = (0...UInt16.max).map { $0 }
        forEachISA { isa in
            var f16 = [UInt16](repeating: 0, count: floats.count), bf16 = f16
            floats.withUnsafeBufferPointer { src in
                f16.withUnsafeMutableBufferPointer { Half.convert(src, toF16: $0) }
                bf16.withUnsafeMutableBufferPointer { Half.convert(src, toBF16: $0) }
            }
            for (i, x) in floats.enumerated() {
                if x.isNaN {
                    XCTAssertTrue(Half.float(f16: f16[i]).isNaN, "\(isa)")
                    XCTAssertEqual(bf16[i], Half.bf16(x), "\(isa)")
                } else {
                    XCTAssertEqual(f16[i], Half.f16(x), "\(isa) \(x)")
                    XCTAssertEqual(bf16[i], Half.bf16(x), "\(isa) \(x)")
                }
            }
            var fromF16 = [Float](repeating: 0, count: halves.count), fromBF16 = fromF16
            halves.withUnsafeBufferPointer { src in
                fromF16.withUnsafeMutableBufferPointer { Half.convert(f16: src, to: $0) }
                fromBF16.withUnsafeMutableBufferPointer { Half.convert(bf16: src, to: $0) }
            }
            for (i, bits) in halves.enumerated() {
                let f = Half.float(f16: bits), b = Half.float(bf16: bits)
                XCTAssertTrue(f.isNaN ? fromF16[i].isNaN : fromF16[i].bitPattern == f.bitPattern, "\(isa) f16 \(bits)")
                XCTAssertEqual(fromBF16[i].bitPattern, b.bitPattern, "\(isa) bf16 \(bits)")
            }
        }
    }
}
