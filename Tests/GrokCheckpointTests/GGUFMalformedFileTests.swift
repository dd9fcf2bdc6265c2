import Foundation
import XCTest
@testable import GrokCheckpoint

/// Every structural failure is a one-line ``CheckpointError`` naming the file and the field, never a crash.
final class GGUFMalformedFileTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = try makeScratchDirectory(for: self)
    }

    private func write(_ bytes: [UInt8], _ name: String) throws -> String {
        try writeFile(bytes, named: name, in: directory)
    }

    private func grok1Bytes() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: ReferenceFiles.grok1)))
    }

    /// Where tensor info `name` starts in `bytes` (its u64 name length).
    private func infoStart(of name: String, in bytes: [UInt8]) throws -> Int {
        let needle = RawGGUF.str(name)
        let start = try XCTUnwrap((0...(bytes.count - needle.count)).first { i in
            bytes[i..<i + needle.count].elementsEqual(needle)
        })
        return start
    }

    /// Overwrites `bytes` at `offset` with the little-endian `value`.
    private func patch<T: FixedWidthInteger>(_ bytes: inout [UInt8], at offset: Int, _ value: T) {
        bytes.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: RawGGUF.le(value))
    }

    /// A small valid file: two keys, tensors "a" ([8] F32 at 0) and "b" ([32, 2] Q8_0 at 32).
    private func validRaw() -> RawGGUF {
        var raw = RawGGUF()
        raw.add("general.architecture", string: "grok")
        raw.add("grok.block_count", u32: 1)
        raw.addTensor("a", dims: [8], type: 0, offset: 0)
        raw.addTensor("b", dims: [32, 2], type: 8, offset: 32)
        raw.dataBytes = 32 + 68
        return raw
    }

    func testTheValidHandBuiltFileOpens() throws {
        let file = try GGUFFile(path: try write(validRaw().bytes, "valid.gguf"))
        XCTAssertEqual(file.tensors.map(\.name), ["a", "b"])
    }

    // MARK: - The file itself

    func testMissingFileAndDirectoryAreReported() throws {
        let missing = directory.appendingPathComponent("absent.gguf").path
        assertOpenFails(missing, field: "file", mentioning: ["No such file"])
        assertOpenFails(directory.path, field: "file", mentioning: ["a regular file"])
    }

    func testEmptyAndTinyFilesAreShorterThanAHeader() throws {
        assertOpenFails(try write([], "empty.gguf"), field: "header", mentioning: ["24 bytes", "0 bytes"])
        assertOpenFails(try write(Array("GG".utf8), "two.gguf"), field: "header")
        assertOpenFails(try write(Array("GGUF".utf8) + RawGGUF.le(UInt32(3)) + [0, 0], "ten.gguf"), field: "header",
                        mentioning: ["10 bytes"])
    }

    func testWrongMagicShowsTheBytesFound() throws {
        var raw = validRaw()
        raw.magic = Array("GGUL".utf8)
        assertOpenFails(try write(raw.bytes, "magic.gguf"), field: "magic", mentioning: ["47 47 55 4C", "\"GGUL\""])
        raw.magic = [0x89, 0x50, 0x4E, 0x47]
        assertOpenFails(try write(raw.bytes, "png.gguf"), field: "magic", mentioning: ["89 50 4E 47", "\".PNG\""])
        raw.magic = Array("GGJT".utf8)
        assertOpenFails(try write(raw.bytes, "ggjt.gguf"), field: "magic", mentioning: ["pre-GGUF"])
    }

    func testVersionsOtherThan2And3AreRejected() throws {
        var raw = validRaw()
        raw.version = 1
        assertOpenFails(try write(raw.bytes, "v1.gguf"), field: "version", mentioning: ["expected 2 or 3", "found 1", "32-bit"])
        raw.version = 99
        assertOpenFails(try write(raw.bytes, "v99.gguf"), field: "version", mentioning: ["found 99"])
        raw.version = UInt32(3).byteSwapped
        assertOpenFails(try write(raw.bytes, "be.gguf"), field: "version", mentioning: ["big-endian"])
    }

    // MARK: - Truncation of the real Grok-1 file

    func testTruncatingTheRealFileAnywhereIsReported() throws {
        let bytes = try grok1Bytes()
        let reference = try GGUFFile(path: ReferenceFiles.grok1)
        let infos = try infoStart(of: "token_embd.weight", in: bytes)
        // Cuts so early that the counts cannot fit are reported on the counts; later cuts where they happen.
        let cuts: [(Int, (String) -> Bool)] = [
            (3, { $0 == "header" }),
            (7, { $0 == "header" }),
            (20, { $0 == "header" }),
            (24, { $0 == "metadata_kv_count" }),
            (60, { $0 == "metadata_kv_count" }),
            (1_700, { $0 == "metadata \"tokenizer.ggml.tokens\"" }),
            (5_000, { $0 == "metadata \"tokenizer.ggml.tokens\"" }),
            (infos - 1, { $0.hasPrefix("metadata \"") }),
            (infos + 4, { $0 == "tensor_count" }),
            (infos + 1_300, { $0.hasPrefix("tensor #") || $0.hasPrefix("tensor \"blk.") }),
            (reference.dataOffset - 1, { $0.hasPrefix("tensor \"") }),
            (reference.dataOffset, { $0 == "tensor \"token_embd.weight\" data" }),
            (reference.dataOffset + 1_000, { $0 == "tensor \"token_embd.weight\" data" }),
            (bytes.count - 1, { $0 == "tensor \"\(reference.tensors.last!.name)\" data" }),
        ]
        for (length, isExpectedField) in cuts {
            let path = try write(Array(bytes.prefix(length)), "cut-\(length).gguf")
            do {
                _ = try GGUFFile(path: path)
                XCTFail("a file cut to \(length) bytes opened")
            } catch let error as CheckpointError {
                XCTAssertTrue(isExpectedField(error.field), "cut at \(length): \(error)")
                assertWellFormed(error, path: path, field: error.field, mentioning: [])
            }
        }
        // A cut the counts can still explain says how many bytes were found.
        assertOpenFails(try write(Array(bytes.prefix(30)), "cut-30.gguf"), field: "metadata_kv_count",
                        mentioning: ["found 31", "truncated at 30 bytes"])
        // Cutting inside the data names the tensor, its byte range and the file size.
        let path = try write(Array(bytes.prefix(reference.dataOffset + 1_000)), "cut-data.gguf")
        let end = reference.dataOffset + 256 * 512 * 4
        assertOpenFails(path, field: "tensor \"token_embd.weight\" data",
                        mentioning: ["bytes \(reference.dataOffset)..<\(end)", "\(reference.dataOffset + 1_000) bytes"])
    }

    // MARK: - Counts and values

    func testAbsurdCountsAndLengthsAreRejectedBeforeAllocating() throws {
        var raw = validRaw()
        raw.tensorCount = 1 << 40
        assertOpenFails(try write(raw.bytes, "tensors.gguf"), field: "tensor_count", mentioning: ["1099511627776"])

        raw = validRaw()
        raw.keyValueCount = UInt64.max
        assertOpenFails(try write(raw.bytes, "kv.gguf"), field: "metadata_kv_count")

        raw = validRaw()
        raw.keyValues[0].key = []
        var bytes = raw.bytes
        patch(&bytes, at: 24, UInt64(1) << 62)  // the first key's length
        assertOpenFails(try write(bytes, "keylength.gguf"), field: "metadata #0 key", mentioning: ["4611686018427387904"])

        raw = validRaw()
        raw.add("big.array", type: 9, RawGGUF.le(UInt32(4)) + RawGGUF.le(UInt64(1) << 60))
        assertOpenFails(try write(raw.bytes, "array.gguf"), field: "metadata \"big.array\"", mentioning: ["uint32 elements"])

        raw = validRaw()
        raw.add("big.string", type: 8, RawGGUF.le(UInt64(1_000_000)) + Array("abc".utf8))
        assertOpenFails(try write(raw.bytes, "string.gguf"), field: "metadata \"big.string\"", mentioning: ["1000000"])
    }

    func testUnknownValueTypesAndBadValuesAreRejected() throws {
        var raw = validRaw()
        raw.add("odd.value", type: 13, [0, 0, 0, 0])
        assertOpenFails(try write(raw.bytes, "type.gguf"), field: "metadata \"odd.value\"", mentioning: ["found 13"])

        raw = validRaw()
        raw.add("odd.array", type: 9, RawGGUF.le(UInt32(77)) + RawGGUF.le(UInt64(1)))
        assertOpenFails(try write(raw.bytes, "elementtype.gguf"), field: "metadata \"odd.array\"", mentioning: ["found 77"])

        raw = validRaw()
        raw.add("odd.bool", type: 7, [2])
        assertOpenFails(try write(raw.bytes, "bool.gguf"), field: "metadata \"odd.bool\"", mentioning: ["0 or 1"])

        raw = validRaw()
        raw.add("dup", u32: 1)
        raw.add("dup", u32: 2)
        assertOpenFails(try write(raw.bytes, "dupkey.gguf"), field: "metadata \"dup\"", mentioning: ["unique keys"])
    }

    func testInvalidUTF8InKeysStringsAndNamesIsRejected() throws {
        var raw = validRaw()
        raw.keyValues.insert(([0x67, 0xFF, 0x6B], 4, RawGGUF.le(UInt32(1))), at: 0)
        assertOpenFails(try write(raw.bytes, "key.gguf"), field: "metadata #0 key", mentioning: ["valid UTF-8"])

        raw = validRaw()
        raw.add("bad.string", type: 8, RawGGUF.le(UInt64(2)) + [0xC3, 0x28])
        assertOpenFails(try write(raw.bytes, "string.gguf"), field: "metadata \"bad.string\"", mentioning: ["valid UTF-8"])

        raw = validRaw()
        raw.tensors[1].name = "b"
        var bytes = raw.bytes
        let nameAt = try infoStart(of: "b", in: Array(bytes[0..<bytes.count - raw.dataBytes])) + 8
        bytes[nameAt] = 0x80
        assertOpenFails(try write(bytes, "name.gguf"), field: "tensor #1 name", mentioning: ["valid UTF-8"])
    }

    // MARK: - Tensor infos

    func testUnknownGGMLTypesNameTheTensorAndTheSupportedTypes() throws {
        var raw = validRaw()
        raw.tensors[0].type = 99
        assertOpenFails(try write(raw.bytes, "99.gguf"), field: "tensor \"a\" type",
                        mentioning: ["found 99 (not a ggml type)", "F32 (0)", "Q8_0 (8)", "BF16 (30)"])
        raw.tensors[0].type = 12
        assertOpenFails(try write(raw.bytes, "q4k.gguf"), field: "tensor \"a\" type", mentioning: ["found 12 (Q4_K"])

        // The same corruption in the real file.
        var bytes = try grok1Bytes()
        let info = try infoStart(of: "output_norm.weight", in: bytes)
        let typeAt = info + 8 + "output_norm.weight".utf8.count + 4 + 8  // name, n_dims, ne[0]
        patch(&bytes, at: typeAt, UInt32(99))
        assertOpenFails(try write(bytes, "real-99.gguf"), field: "tensor \"output_norm.weight\" type", mentioning: ["99"])
    }

    func testDimensionProblemsAreRejected() throws {
        var raw = validRaw()
        raw.tensors[0].dims = [8, 1, 1, 1, 1]
        assertOpenFails(try write(raw.bytes, "ndims.gguf"), field: "tensor \"a\" n_dims", mentioning: ["at most 4", "found 5"])

        raw = validRaw()
        raw.tensors[0].dims = [8, 0]
        assertOpenFails(try write(raw.bytes, "zero.gguf"), field: "tensor \"a\" ne[1]", mentioning: ["found 0"])

        raw = validRaw()
        raw.tensors[0].dims = [8, UInt64(bitPattern: -4)]
        assertOpenFails(try write(raw.bytes, "negative.gguf"), field: "tensor \"a\" ne[1]", mentioning: ["found -4"])

        raw = validRaw()
        raw.tensors[1].dims = [48, 2]
        assertOpenFails(try write(raw.bytes, "block.gguf"), field: "tensor \"b\" ne[0]", mentioning: ["multiple of 32"])

        raw = validRaw()
        raw.tensors[0].dims = [1 << 40, 1 << 40]
        assertOpenFails(try write(raw.bytes, "huge.gguf"), field: "tensor \"a\" dims")
    }

    func testDuplicateTensorNamesAreRejected() throws {
        var raw = validRaw()
        raw.tensors[1].name = "a"
        assertOpenFails(try write(raw.bytes, "dup.gguf"), field: "tensor \"a\"", mentioning: ["unique", "#0 and #1"])
    }

    func testOffsetsMustBeAlignedInsideTheFileAndDisjoint() throws {
        var raw = validRaw()
        raw.tensors[1].offset = 17
        assertOpenFails(try write(raw.bytes, "unaligned.gguf"), field: "tensor \"b\" offset",
                        mentioning: ["multiple of 32", "found 17"])

        raw = validRaw()
        raw.tensors[1].offset = 4096
        let path = try write(raw.bytes, "past.gguf")
        let size = raw.bytes.count
        assertOpenFails(path, field: "tensor \"b\" data", mentioning: ["68 bytes at data offset 4096", "\(size) bytes"])

        raw = validRaw()
        raw.tensors[0].dims = [16]  // 64 bytes: runs into "b" at 32
        assertOpenFails(try write(raw.bytes, "overlap.gguf"), field: "tensor \"b\" offset", mentioning: ["overlapping"])

        // The real file: output_norm.weight moved off its alignment, then past the end.
        var bytes = try grok1Bytes()
        let offsetAt = try infoStart(of: "output_norm.weight", in: bytes) + 8 + "output_norm.weight".utf8.count + 4 + 8 + 4
        patch(&bytes, at: offsetAt, UInt64(524_288 + 4))
        assertOpenFails(try write(bytes, "real-unaligned.gguf"), field: "tensor \"output_norm.weight\" offset")
        patch(&bytes, at: offsetAt, UInt64(bytes.count))
        assertOpenFails(try write(bytes, "real-past.gguf"), field: "tensor \"output_norm.weight\" data",
                        mentioning: ["\(bytes.count) bytes"])
    }

    func testAlignmentMustBeAPowerOfTwo() throws {
        for (name, value) in [("48", RawGGUF.le(UInt32(48))), ("0", RawGGUF.le(UInt32(0)))] {
            var raw = validRaw()
            raw.add("general.alignment", type: 4, value)
            assertOpenFails(try write(raw.bytes, "align-\(name).gguf"), field: "metadata \"general.alignment\"",
                            mentioning: ["power of two", "found \(name)"])
        }
        var raw = validRaw()
        raw.add("general.alignment", string: "32")
        assertOpenFails(try write(raw.bytes, "align-string.gguf"), field: "metadata \"general.alignment\"",
                        mentioning: ["string"])

        // A valid non-default alignment moves the data section.
        raw = validRaw()
        raw.add("general.alignment", u32: 64)
        raw.alignment = 64
        raw.tensors[1].offset = 64
        raw.dataBytes = 64 + 68
        let file = try GGUFFile(path: try write(raw.bytes, "align-64.gguf"))
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.dataOffset % 64, 0)
    }

    // MARK: - Fuzzing

    /// Random byte damage to a file with every value type never crashes the parser: it either
    /// parses or throws a well-formed ``CheckpointError``.
    func testRandomlyDamagedHeadersNeverCrashTheParser() throws {
        var writer = GGUFWriter()
        for (key, value) in GGUFRoundTripTests.everyValue { writer.set(key, value) }
        writer.addTensor(name: "a", dims: [32, 2], dtype: .q8_0, bytes: patternBytes(68, seed: 1))
        writer.addTensor(name: "b", dims: [3, 1, 2], dtype: .f16, bytes: patternBytes(12, seed: 2))
        let path = directory.appendingPathComponent("fuzz.gguf").path
        try writer.write(to: path)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let reference = try GGUFFile(path: path)
        let headerLength = reference.dataOffset
        let last = try XCTUnwrap(reference.tensors.last)
        let dataEnd = reference.dataOffset + last.offset + last.byteCount

        var random = patternBytes(4 * 20_000, seed: 99).makeIterator()
        var failures = 0
        for _ in 0..<5_000 {
            var bytes = original
            let damage = Int(random.next()! % 4) + 1
            for _ in 0..<damage {
                let at = (Int(random.next()!) << 8 | Int(random.next()!)) % headerLength
                bytes[at] = random.next()!
            }
            do {
                try bytes.withUnsafeBytes { buffer in
                    var parser = GGUFParser(file: "fuzz.gguf", bytes: buffer)
                    _ = try parser.parse()
                }
            } catch let error as CheckpointError {
                failures += 1
                XCTAssertFalse(error.description.contains("\n"))
                XCTAssertTrue(error.description.hasPrefix("fuzz.gguf: "))
            }
        }
        XCTAssertGreaterThan(failures, 1_000, "most damage should be detected")

        // Every cut before the end of the last tensor's data is an error (the padding after it may go).
        for length in 0..<dataEnd {
            XCTAssertThrowsError(try Array(original.prefix(length)).withUnsafeBytes { buffer in
                var parser = GGUFParser(file: "fuzz.gguf", bytes: buffer)
                _ = try parser.parse()
            }, "cut at \(length)")
        }
    }
}
