import XCTest
@testable import GrokCheckpoint

final class ZstdTests: XCTestCase {
    func testCompressedDataRoundTrips() throws {
        let random = patternBytes(300_000, seed: 7)
        let repetitive = [UInt8]((0..<1_000_000).map { UInt8($0 % 7) })
        for (name, data) in [("random", random), ("repetitive", repetitive), ("empty", []), ("one", [42])] {
            for level in [1, 3, 19] {
                let compressed = try data.withUnsafeBytes { try Zstd.compress($0, level: level) }
                let restored = try compressed.withUnsafeBytes { try Zstd.decompress($0) }
                XCTAssertEqual(restored, data, "\(name) at level \(level)")
                let checked = try compressed.withUnsafeBytes { try Zstd.decompress($0, expectedSize: data.count) }
                XCTAssertEqual(checked, data)
            }
        }
        let compressed = try repetitive.withUnsafeBytes { try Zstd.compress($0) }
        XCTAssertLessThan(compressed.count, repetitive.count / 100)
    }

    func testConcatenatedFramesDecompressByStreaming() throws {
        let a = patternBytes(70_000, seed: 1), b = [UInt8](repeating: 9, count: 50_000)
        let frames = try a.withUnsafeBytes { try Zstd.compress($0) } + b.withUnsafeBytes { try Zstd.compress($0) }
        XCTAssertEqual(try frames.withUnsafeBytes { try Zstd.decompress($0) }, a + b)
        XCTAssertEqual(try frames.withUnsafeBytes { try Zstd.decompress($0, expectedSize: a.count + b.count) }, a + b)
    }

    func testAFrameWithoutAContentSizeDecompressesByStreaming() throws {
        // Magic, descriptor 0x00 (no content size, not single-segment), window 1 KiB,
        // then one last raw block of 11 bytes: header (11 << 3) | 1.
        let text = Array("hello, zstd".utf8)
        let frame: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x00, 0x59, 0x00, 0x00] + text
        XCTAssertEqual(try frame.withUnsafeBytes { try Zstd.decompress($0) }, text)
        XCTAssertThrowsError(try frame.withUnsafeBytes { try Zstd.decompress($0, expectedSize: 5) })
        // The same frame cut short is truncated.
        XCTAssertThrowsError(try Array(frame.dropLast(3)).withUnsafeBytes { try Zstd.decompress($0) }) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
    }

    func testCorruptedFramesThrowZstdErrors() throws {
        let data = patternBytes(100_000, seed: 3) + [UInt8](repeating: 1, count: 100_000)
        let compressed = try data.withUnsafeBytes { try Zstd.compress($0) }

        var corrupted = compressed
        for i in stride(from: 20, to: corrupted.count - 8, by: 97) { corrupted[i] ^= 0x5A }
        XCTAssertThrowsError(try corrupted.withUnsafeBytes { try Zstd.decompress($0) }) { error in
            XCTAssertTrue(error is ZstdError, "\(error)")
        }
        var badMagic = compressed
        badMagic[0] = 0
        XCTAssertThrowsError(try badMagic.withUnsafeBytes { try Zstd.decompress($0) }) { error in
            XCTAssertEqual((error as? ZstdError)?.operation, "decompress")
        }
        XCTAssertThrowsError(try Array(compressed.prefix(compressed.count / 2)).withUnsafeBytes { try Zstd.decompress($0) })
        XCTAssertThrowsError(try compressed.withUnsafeBytes { try Zstd.decompress($0, expectedSize: 5) }) { error in
            XCTAssertTrue("\(error)".contains("expected 5"), "\(error)")
        }
        XCTAssertThrowsError(try [UInt8]().withUnsafeBytes { try Zstd.decompress($0) })
        XCTAssertThrowsError(try (compressed + [1, 2, 3]).withUnsafeBytes { try Zstd.decompress($0) })
    }

    func testRandomlyDamagedFramesNeverCrash() throws {
        let data = patternBytes(5_000, seed: 5) + [UInt8](repeating: 3, count: 20_000)
        let compressed = try data.withUnsafeBytes { try Zstd.compress($0) }
        var random = patternBytes(3 * 3_000, seed: 77).makeIterator()
        for _ in 0..<1_000 {
            var damaged = compressed
            for _ in 0..<Int(random.next()! % 3 + 1) {
                damaged[(Int(random.next()!) << 8 | Int(random.next()!)) % damaged.count] ^= 0xA5
            }
            do {
                let restored = try damaged.withUnsafeBytes { try Zstd.decompress($0) }
                XCTAssertEqual(restored, data, "damage went undetected")
            } catch {
                XCTAssertTrue(error is ZstdError, "\(error)")
            }
        }
    }
}
