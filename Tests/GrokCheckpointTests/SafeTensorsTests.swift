import Foundation
import XCTest
@testable import GrokCheckpoint
import GrokTensor

/// The safetensors reader and writer: a round trip, and a one-line error for each kind of broken file.
final class SafeTensorsTests: XCTestCase {
    /// `u64 header length | header | data`, assembled by hand for files the writer will not produce.
    func rawFile(header: String, data: [UInt8], headerLength: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        return withUnsafeBytes(of: (headerLength ?? UInt64(h.count)).littleEndian) { Array($0) } + h + data
    }

    func testWrittenTensorsAndMetadataReadBackBitForBit() throws {
        let dir = try makeScratchDirectory(for: self)
        let path = dir.appendingPathComponent("a.safetensors").path
        let bf16 = patternBytes(2 * 3 * 2, seed: 1), f16 = patternBytes(5 * 2, seed: 2), f32 = patternBytes(4 * 4, seed: 3)
        var writer = SafeTensorsWriter()
        writer.setMetadata("format", "pt")
        writer.add(name: "m.bf16", dtype: .bf16, shape: [2, 3], bytes: bf16)
        writer.add(name: "m.f16", dtype: .f16, shape: [5], bytes: f16)
        writer.add(name: "m.f32", dtype: .f32, shape: [2, 1, 2], producer: { f32 })
        try writer.write(to: path)

        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(file.dataOffset % 8, 0, "the header is padded to a multiple of 8 bytes")
        XCTAssertEqual(file.tensors.map(\.name), ["m.bf16", "m.f16", "m.f32"])
        XCTAssertEqual(file.tensor("m.bf16"), SafeTensorInfo(name: "m.bf16", dtype: .bf16, shape: [2, 3], dataOffsets: 0..<12))
        XCTAssertEqual(file.tensor("m.f32")?.shape, [2, 1, 2])
        XCTAssertEqual(Array(file.data(of: file.tensor("m.bf16")!)), bf16)
        XCTAssertEqual(Array(file.data(of: file.tensor("m.f16")!)), f16)
        XCTAssertEqual(Array(file.data(of: file.tensor("m.f32")!)), f32)
        XCTAssertNil(file.tensor("absent"))
    }

    func testAHeaderLongerThanTheFileIsRefused() throws {
        let dir = try makeScratchDirectory(for: self)
        let path = try writeFile(rawFile(header: "{}", data: [], headerLength: 1 << 40), named: "long.safetensors", in: dir)
        assertCheckpointError(path: path, field: "header length", mentioning: ["1099511627776", "at most 2"]) { _ = try SafeTensorsFile(path: path) }
        let short = try writeFile([1, 2, 3], named: "short.safetensors", in: dir)
        assertCheckpointError(path: short, field: "header length", mentioning: ["3 bytes"]) { _ = try SafeTensorsFile(path: short) }
    }

    func testAHeaderThatIsNotAJSONObjectIsRefused() throws {
        let dir = try makeScratchDirectory(for: self)
        let path = try writeFile(rawFile(header: "[1, 2]", data: []), named: "array.safetensors", in: dir)
        assertCheckpointError(path: path, field: "header", mentioning: ["JSON object"]) { _ = try SafeTensorsFile(path: path) }
    }

    func testOffsetsOutsideTheDataAreRefused() throws {
        let dir = try makeScratchDirectory(for: self)
        let header = #"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}"#
        let path = try writeFile(rawFile(header: header, data: patternBytes(16, seed: 4)), named: "outside.safetensors", in: dir)
        assertCheckpointError(path: path, field: "tensor \"w\" data_offsets", mentioning: ["16 data bytes", "[8, 24]", "truncated"]) {
            _ = try SafeTensorsFile(path: path)
        }
    }

    func testATruncatedFileIsRefusedAtTheTensorItCuts() throws {
        let dir = try makeScratchDirectory(for: self)
        let path = dir.appendingPathComponent("cut.safetensors").path
        var writer = SafeTensorsWriter()
        writer.add(name: "first", dtype: .f32, shape: [4], bytes: patternBytes(16, seed: 5))
        writer.add(name: "second", dtype: .bf16, shape: [8], bytes: patternBytes(16, seed: 6))
        try writer.write(to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.dropLast(3).write(to: URL(fileURLWithPath: path))
        assertCheckpointError(path: path, field: "tensor \"second\" data_offsets", mentioning: ["29 data bytes", "[16, 32]"]) {
            _ = try SafeTensorsFile(path: path)
        }
    }

    func testAnUnknownDTypeIsRefusedNamingTheKnownOnes() throws {
        let dir = try makeScratchDirectory(for: self)
        let header = #"{"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}"#
        let path = try writeFile(rawFile(header: header, data: patternBytes(16, seed: 7)), named: "i64.safetensors", in: dir)
        assertCheckpointError(path: path, field: "tensor \"ids\" dtype", mentioning: ["\"I64\"", "BF16, F16, F32"]) {
            _ = try SafeTensorsFile(path: path)
        }
    }

    func testOffsetsThatDisagreeWithTheShapeOrOverlapAreRefused() throws {
        let dir = try makeScratchDirectory(for: self)
        let wrong = #"{"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 10]}}"#
        let path = try writeFile(rawFile(header: wrong, data: patternBytes(16, seed: 8)), named: "size.safetensors", in: dir)
        assertCheckpointError(path: path, field: "tensor \"w\" data_offsets", mentioning: ["12 bytes for shape [2, 3] BF16", "10 bytes"]) {
            _ = try SafeTensorsFile(path: path)
        }
        let overlap = #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#
        let both = try writeFile(rawFile(header: overlap, data: patternBytes(16, seed: 9)), named: "overlap.safetensors", in: dir)
        assertCheckpointError(path: both, field: "tensor \"b\" data_offsets", mentioning: ["not overlapping tensor \"a\""]) {
            _ = try SafeTensorsFile(path: both)
        }
    }

    func testTheWriterRefusesQuantizedTypesAndDuplicateNames() throws {
        let dir = try makeScratchDirectory(for: self)
        let path = dir.appendingPathComponent("bad.safetensors").path
        var quantized = SafeTensorsWriter()
        quantized.add(name: "q", dtype: .q8_0, shape: [32], bytes: patternBytes(34, seed: 10))
        assertCheckpointError(path: path, field: "tensor \"q\" dtype", mentioning: ["Q8_0"]) { try quantized.write(to: path) }
        var twice = SafeTensorsWriter()
        twice.add(name: "t", dtype: .f32, shape: [1], bytes: [0, 0, 0, 0])
        twice.add(name: "t", dtype: .f32, shape: [1], bytes: [0, 0, 0, 0])
        assertCheckpointError(path: path, field: "tensor \"t\"", mentioning: ["unique"]) { try twice.write(to: path) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }
}
