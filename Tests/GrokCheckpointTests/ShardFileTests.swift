import Foundation
import GrokCheckpoint
import GrokTensor
import XCTest

/// The shard container on its own: blocks written are read back bit-identical, compressed or
/// not, and every kind of damage is refused with a line naming the rank, file, tensor and chunk.
final class ShardFileTests: XCTestCase {
    var directory = ""
    var metadata: GGUFFile!

    override func setUpWithError() throws {
        directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("shard-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("grok"))
        try writer.write(to: "\(directory)/model.gguf")
        metadata = try GGUFFile(path: "\(directory)/model.gguf")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    /// Two blocks: a 3×64 f32 matrix slice and a 5×64 Q8_0 expert slice, with deterministic bytes.
    let blocks = [
        (WeightBlock(name: "a.weight", dims: [128, 3], rows: 0..<3, columns: 64..<128), DType.f32),
        (WeightBlock(name: "b.weight", dims: [64, 10, 4], expert: 2, rows: 5..<10, columns: 0..<64), DType.q8_0),
    ]

    func bytes(_ block: WeightBlock, _ dtype: DType) -> [UInt8] {
        let count = block.rows.count * dtype.rowBytes(block.columns.count)
        return (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ block.name.count) }
    }

    @discardableResult
    func write(rank: Int = 1, level: Int?, chunkSize: Int = 100) throws -> String {
        let path = "\(directory)/rank-\(rank).gshard"
        let writer = try ShardWriter(path: path, rank: rank, layoutDigest: "layout", zstdLevel: level, chunkSize: chunkSize)
        for (block, dtype) in blocks {
            try bytes(block, dtype).withUnsafeBytes { try writer.add(block, dtype: dtype, bytes: $0, pool: ThreadPool(threads: 2)) }
        }
        try writer.finish()
        return path
    }

    func open(_ path: String, rank: Int = 1) throws -> ShardFile {
        try ShardFile(path: path, rank: rank, metadata: metadata, pool: ThreadPool(threads: 2))
    }

    func testRoundTripCompressedAndUncompressed() throws {
        for level in [nil, 1, 9] {
            let shard = try open(try write(level: level))
            XCTAssertEqual(shard.index.compression, level == nil ? "none" : "zstd")
            XCTAssertEqual(shard.storedBlocks, blocks.map(\.0))
            for (block, dtype) in blocks {
                XCTAssertEqual(shard.tensor(block.name)?.dtype, dtype)
                XCTAssertEqual(shard.tensor(block.name)?.dims, block.dims)
                let got = try shard.block(block.name, expert: block.expert, rows: block.rows, columns: block.columns)
                XCTAssertEqual(Array(got), bytes(block, dtype), "level \(String(describing: level))")
            }
            XCTAssertThrowsError(try shard.block("a.weight", expert: nil, rows: 0..<3, columns: 0..<64)) {
                XCTAssertTrue("\($0)".contains("a.weight rows 0..<3 columns 0..<64"), "\($0)")
            }
        }
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    func testFlippedByteNamesTensorAndChunk() throws {
        for level in [nil, 3] {
            let path = try write(level: level)
            let shard = try open(path)
            let chunk = shard.index.blocks[1].chunks[2]
            var data = try Data(contentsOf: URL(fileURLWithPath: path))
            data[chunk.offset + chunk.stored / 2] ^= 0x40
            try data.write(to: URL(fileURLWithPath: path))
            let text = message { _ = try self.open(path) }
            XCTAssertTrue(text.hasPrefix("shard \(path) (rank 1): tensor b.weight expert 2 rows 5..<10 columns 0..<64, chunk 2 at byte \(chunk.offset)"), text)
            XCTAssertTrue(text.contains("corrupted"), text)
            XCTAssertFalse(text.contains("\n"))
        }
    }

    func testTruncatedFile() throws {
        let path = try write(level: 3)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        XCTAssertTrue(message { _ = try self.open(path) }.contains("truncated"))
        try data.prefix(10).write(to: URL(fileURLWithPath: path))
        XCTAssertTrue(message { _ = try self.open(path) }.contains("truncated"))
    }

    func testAnotherRanksFileIsRefused() throws {
        let path = try write(rank: 2, level: nil)
        let text = message { _ = try self.open(path, rank: 1) }
        XCTAssertTrue(text.contains("rank 2: this file belongs to another rank"), text)
    }

    func testNotAShard() throws {
        let path = "\(directory)/model.gguf"
        XCTAssertTrue(message { _ = try self.open(path) }.contains("not a shard file"))
    }
}
