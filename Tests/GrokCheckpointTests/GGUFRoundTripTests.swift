import Foundation
import GrokTensor
import XCTest
@testable import GrokCheckpoint

final class GGUFRoundTripTests: XCTestCase {
    /// One value of every GGUF type, including nested and empty arrays and empty strings.
    static let everyValue: [(String, GGUFValue)] = [
        ("test.uint8", .uint8(250)),
        ("test.int8", .int8(-120)),
        ("test.uint16", .uint16(65_000)),
        ("test.int16", .int16(-32_000)),
        ("test.uint32", .uint32(4_000_000_000)),
        ("test.int32", .int32(-2_000_000_000)),
        ("test.float32", .float32(0.5773502588272095)),
        ("test.bool.true", .bool(true)),
        ("test.bool.false", .bool(false)),
        ("test.string", .string("grok ✓ — 文字")),
        ("test.string.empty", .string("")),
        ("test.uint64", .uint64(UInt64.max)),
        ("test.int64", .int64(Int64.min)),
        ("test.float64", .float64(78.38367176906169)),
        ("test.array.empty", .array([])),
        ("test.array.strings", .array([.string("[PAD]"), .string(""), .string("\n\n")])),
        ("test.array.float32", .array([.float32(0), .float32(-1.5), .float32(.infinity)])),
        ("test.array.int32", .array([.int32(3), .int32(-1)])),
        ("test.array.bool", .array([.bool(true), .bool(false)])),
        ("test.array.nested", .array([.array([.int32(1), .int32(2)]), .array([]), .array([.string("x")])])),
        ("test.array.deep", .array([.array([.array([.uint64(7)])])])),
    ]

    func testEveryMetadataTypeAndDTypeSurvivesAWriteAndRead() throws {
        let directory = try makeScratchDirectory(for: self)
        var writer = GGUFWriter()
        for (key, value) in Self.everyValue { writer.set(key, value) }

        var expected: [(name: String, dims: [Int], dtype: DType, bytes: [UInt8])] = []
        for dtype in DType.allCases {
            for rank in 1...4 {
                let dims = Array([dtype.blockSize * 2, 3, 2, 5].prefix(rank))
                let name = "\(dtype.name.lowercased()).rank\(rank)"
                let count = dtype.rowBytes(dims[0]) * dims.dropFirst().reduce(1, *)
                let bytes = patternBytes(count, seed: UInt64(expected.count + 1))
                // Alternate the two ways of adding data.
                if rank % 2 == 0 {
                    writer.addTensor(name: name, dims: dims, dtype: dtype, bytes: bytes)
                } else {
                    writer.addTensor(name: name, dims: dims, dtype: dtype, producer: { bytes })
                }
                expected.append((name, dims, dtype, bytes))
            }
        }
        let path = directory.appendingPathComponent("all.gguf").path
        try writer.write(to: path)

        let file = try GGUFFile(path: path)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, 32)
        XCTAssertEqual(file.metadataKeys, Self.everyValue.map(\.0))
        for (key, value) in Self.everyValue {
            XCTAssertEqual(file.metadata[key], value, key)
        }
        XCTAssertEqual(file.tensors.map(\.name), expected.map(\.name))
        for want in expected {
            let info = try XCTUnwrap(file.tensor(want.name))
            XCTAssertEqual(info.dims, want.dims)
            XCTAssertEqual(info.shape, Array(want.dims.reversed()))
            XCTAssertEqual(info.dtype, want.dtype)
            XCTAssertEqual(info.elementCount, want.dims.reduce(1, *))
            XCTAssertEqual(info.byteCount, want.bytes.count)
            XCTAssertEqual(info.offset % 32, 0)
            let data = file.data(of: info)
            XCTAssertEqual(Int(bitPattern: data.baseAddress) % 32, 0, "\(want.name) data is not aligned")
            XCTAssertEqual(Array(data), want.bytes, want.name)
        }
        XCTAssertEqual(file.dataOffset % 32, 0)
        let last = try XCTUnwrap(file.tensors.last)
        XCTAssertEqual(file.fileSize, file.dataOffset + (last.offset + last.byteCount + 31) / 32 * 32)
    }

    func testTypedGettersConvertAndKeepAbsentKeysNil() throws {
        let directory = try makeScratchDirectory(for: self)
        var writer = GGUFWriter()
        for (key, value) in Self.everyValue { writer.set(key, value) }
        let path = directory.appendingPathComponent("meta.gguf").path
        try writer.write(to: path)
        let file = try GGUFFile(path: path)

        XCTAssertEqual(try file.int("test.uint8"), 250)
        XCTAssertEqual(try file.int("test.int64"), Int(Int64.min))
        XCTAssertEqual(try file.double("test.int16"), -32_000)
        XCTAssertEqual(try file.double("test.float64"), 78.38367176906169)
        XCTAssertEqual(try file.string("test.string.empty"), "")
        XCTAssertEqual(try file.bool("test.bool.true"), true)
        XCTAssertEqual(try file.stringArray("test.array.strings"), ["[PAD]", "", "\n\n"])
        XCTAssertEqual(try file.floatArray("test.array.float32"), [0, -1.5, .infinity])
        XCTAssertEqual(try file.intArray("test.array.int32"), [3, -1])
        XCTAssertEqual(try file.intArray("test.array.empty"), [])
        XCTAssertNil(try file.int("absent"))
        XCTAssertNil(try file.stringArray("absent"))
        // A uint64 above Int.max is not an Int.
        assertCheckpointError(path: path, field: "metadata \"test.uint64\"", mentioning: ["an integer", "uint64"]) {
            _ = try file.int("test.uint64")
        }
    }

    func testSettingAKeyAgainKeepsItsPosition() throws {
        let directory = try makeScratchDirectory(for: self)
        var writer = GGUFWriter()
        writer.set("a", .uint32(1))
        writer.set("b", .uint32(2))
        writer.set("a", .string("again"))
        let path = directory.appendingPathComponent("order.gguf").path
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        XCTAssertEqual(file.metadataKeys, ["a", "b"])
        XCTAssertEqual(file.metadata["a"], .string("again"))
        XCTAssertTrue(file.tensors.isEmpty)
    }

    func testANonDefaultAlignmentIsRecordedAndHonoured() throws {
        let directory = try makeScratchDirectory(for: self)
        var writer = GGUFWriter(alignment: 256)
        writer.set("general.name", .string("aligned"))
        writer.addTensor(name: "a", dims: [3], dtype: .f32, bytes: patternBytes(12, seed: 1))
        writer.addTensor(name: "b", dims: [32, 2], dtype: .q8_0, bytes: patternBytes(68, seed: 2))
        let path = directory.appendingPathComponent("aligned.gguf").path
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        XCTAssertEqual(file.alignment, 256)
        XCTAssertEqual(file.metadata["general.alignment"], .uint32(256))
        XCTAssertEqual(file.metadataKeys, ["general.alignment", "general.name"])
        XCTAssertEqual(file.tensor("b")?.offset, 256)
        XCTAssertEqual(file.dataOffset % 256, 0)
        XCTAssertEqual(Array(file.data(of: file.tensor("b")!)), patternBytes(68, seed: 2))
    }

    func testRewritingTheGrok1ReferenceReproducesItByteForByte() throws {
        let source = try GGUFFile(path: ReferenceFiles.grok1)
        var writer = GGUFWriter(alignment: source.alignment)
        for key in source.metadataKeys { writer.set(key, source.metadata[key]!) }
        for tensor in source.tensors {
            writer.addTensor(name: tensor.name, dims: tensor.dims, dtype: tensor.dtype,
                             producer: { Array(source.data(of: tensor)) })
        }
        let directory = try makeScratchDirectory(for: self)
        let path = directory.appendingPathComponent("copy.gguf").path
        try writer.write(to: path)
        let original = try Data(contentsOf: URL(fileURLWithPath: ReferenceFiles.grok1))
        let copy = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(copy.count, original.count)
        XCTAssertTrue(copy == original, "the rewritten file differs from the gguf-py original")
    }

    func testVersion2FilesAreRead() throws {
        var raw = RawGGUF()
        raw.version = 2
        raw.add("general.architecture", string: "grok")
        raw.add("grok.block_count", u32: 4)
        raw.addTensor("w", dims: [4, 2], type: 0, offset: 0)
        raw.addTensor("q", dims: [32], type: 8, offset: 32)
        raw.dataBytes = 32 + 34
        let directory = try makeScratchDirectory(for: self)
        let path = try writeFile(raw.bytes, named: "v2.gguf", in: directory)
        let file = try GGUFFile(path: path)
        XCTAssertEqual(file.version, 2)
        XCTAssertEqual(try file.string("general.architecture"), "grok")
        XCTAssertEqual(try file.int("grok.block_count"), 4)
        XCTAssertEqual(file.tensors.map(\.name), ["w", "q"])
        XCTAssertEqual(file.tensor("q")?.dtype, .q8_0)
        XCTAssertEqual(Array(file.data(of: file.tensor("w")!)), [UInt8](repeating: 0x5A, count: 32))
    }

    // MARK: - Writer mistakes

    func testWriterRejectsAWrongByteCount() throws {
        let directory = try makeScratchDirectory(for: self)
        let path = directory.appendingPathComponent("bad.gguf").path
        var writer = GGUFWriter()
        writer.addTensor(name: "w", dims: [32, 2], dtype: .q8_0, bytes: [UInt8](repeating: 0, count: 64))
        assertCheckpointError(path: path, field: "tensor \"w\" data", mentioning: ["68 bytes", "64 bytes"]) {
            try writer.write(to: path)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testWriterRejectsAProducerOfTheWrongLengthAndLeavesNoFile() throws {
        let directory = try makeScratchDirectory(for: self)
        let path = directory.appendingPathComponent("bad.gguf").path
        var writer = GGUFWriter()
        writer.addTensor(name: "ok", dims: [4], dtype: .f32, bytes: [UInt8](repeating: 1, count: 16))
        writer.addTensor(name: "short", dims: [4], dtype: .f16, producer: { [0, 0] })
        assertCheckpointError(path: path, field: "tensor \"short\" data", mentioning: ["8 bytes", "2 bytes"]) {
            try writer.write(to: path)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        XCTAssertEqual(leftovers, [], "a failed write must leave neither the file nor its partial")
    }

    func testWriterRejectsDuplicateNamesBadDimsAndMixedArrays() throws {
        let directory = try makeScratchDirectory(for: self)
        let path = directory.appendingPathComponent("bad.gguf").path

        var duplicate = GGUFWriter()
        duplicate.addTensor(name: "w", dims: [1], dtype: .f32, bytes: [0, 0, 0, 0])
        duplicate.addTensor(name: "w", dims: [1], dtype: .f32, bytes: [0, 0, 0, 0])
        assertCheckpointError(path: path, field: "tensor \"w\"", mentioning: ["unique"]) { try duplicate.write(to: path) }

        var tooManyDims = GGUFWriter()
        tooManyDims.addTensor(name: "w", dims: [1, 1, 1, 1, 1], dtype: .f32, bytes: [0, 0, 0, 0])
        assertCheckpointError(path: path, field: "tensor \"w\" n_dims") { try tooManyDims.write(to: path) }

        var notABlock = GGUFWriter()
        notABlock.addTensor(name: "w", dims: [16], dtype: .q4_0, producer: { [] })
        assertCheckpointError(path: path, field: "tensor \"w\" ne[0]", mentioning: ["32"]) { try notABlock.write(to: path) }

        var mixed = GGUFWriter()
        mixed.set("m", .array([.int32(1), .string("two")]))
        assertCheckpointError(path: path, field: "metadata \"m\"", mentioning: ["element 1"]) { try mixed.write(to: path) }

        var badAlignment = GGUFWriter(alignment: 48)
        badAlignment.set("x", .bool(true))
        assertCheckpointError(path: path, field: "metadata \"general.alignment\"", mentioning: ["48"]) {
            try badAlignment.write(to: path)
        }
    }
}
