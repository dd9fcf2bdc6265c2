import GrokTensor
import XCTest
@testable import GrokCheckpoint

/// The two example files written by llama.cpp's gguf-py (grok-architecture.md §5).
final class GGUFReferenceFileTests: XCTestCase {
    func testGrok1ReferenceOpensWithItsKnownShape() throws {
        let file = try GGUFFile(path: ReferenceFiles.grok1)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, 32)
        XCTAssertEqual(file.tensors.count, 50)
        XCTAssertEqual(file.metadataKeys.count, 31)
        XCTAssertEqual(file.metadataKeys.first, "general.architecture")
        XCTAssertEqual(try file.string("general.architecture"), "grok")
        XCTAssertEqual(try file.int("grok.embedding_length"), 256)
        XCTAssertEqual(try file.int("grok.block_count"), 4)
        XCTAssertEqual(try file.double("grok.attention.layer_norm_rms_epsilon") ?? 0, 1e-5, accuracy: 1e-10)
        XCTAssertEqual(try file.bool("tokenizer.ggml.add_bos_token"), false)
        let tokens = try XCTUnwrap(try file.stringArray("tokenizer.ggml.tokens"))
        XCTAssertEqual(tokens.count, 512)
        XCTAssertEqual(Array(tokens.prefix(4)), ["[PAD]", "[BOS]", "[EOS]", "[UNK]"])
        XCTAssertEqual(try file.floatArray("tokenizer.ggml.scores")?.count, 512)
        XCTAssertEqual(Array(try file.intArray("tokenizer.ggml.token_type")!.prefix(4)), [3, 3, 3, 2])

        let embedding = try file.require("token_embd.weight", dims: [256, 512], dtypes: [.f32])
        XCTAssertEqual(embedding.shape, [512, 256])
        XCTAssertEqual(embedding.offset, 0)
        XCTAssertEqual(embedding.byteCount, 256 * 512 * 4)
        let experts = try file.require("blk.0.ffn_down_exps.weight", dims: [128, 256, 8])
        XCTAssertEqual(experts.offset, 2_240_512)
        XCTAssertEqual(try file.require("output_norm.weight", dims: [256]).offset, 524_288)

        // The last tensor ends at the end of the file, and the data are finite floats.
        let last = try XCTUnwrap(file.tensors.last)
        XCTAssertEqual(file.dataOffset + last.offset + last.byteCount, file.fileSize)
        let floats = file.data(of: embedding).bindMemory(to: Float.self)
        XCTAssertTrue(floats.allSatisfy(\.isFinite))
        XCTAssertTrue(floats.contains { $0 != 0 })
    }

    func testGrok2ReferenceOpensWithItsKnownShape() throws {
        let file = try GGUFFile(path: ReferenceFiles.grok2)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.tensors.count, 63)
        let output = try file.require("output.weight", dims: [256, 512], dtypes: [.q8_0])
        XCTAssertEqual(output.byteCount, 256 / 32 * 34 * 512)
        XCTAssertEqual(try file.double("grok.final_logit_softcapping"), 50)
        XCTAssertEqual(try file.int("grok.expert_feed_forward_length"), 128)
        XCTAssertEqual(try file.string("grok.rope.scaling.type"), "yarn")
        XCTAssertEqual(file.tensor("blk.0.ffn_gate_inp.weight")?.dtype, .f32)
        XCTAssertNotNil(file.tensor("blk.0.post_ffw_norm.weight"))
        XCTAssertNil(file.tensor("blk.0.layer_output_norm.weight"))
        // Q8_0 blocks start with an f16 scale: every one finite (exponent bits not all one), some non-zero.
        let data = file.data(of: output)
        let scales = stride(from: 0, to: data.count, by: 34).map {
            UInt16(littleEndian: data.loadUnaligned(fromByteOffset: $0, as: UInt16.self))
        }
        XCTAssertEqual(scales.count, 8 * 512)
        XCTAssertTrue(scales.allSatisfy { ($0 >> 10) & 0x1F != 0x1F })
        XCTAssertTrue(scales.contains { $0 & 0x7FFF != 0 })
    }

    func testRequireNamesTheTensorAndTheMismatch() throws {
        let path = ReferenceFiles.grok1
        let file = try GGUFFile(path: path)
        assertCheckpointError(path: path, field: "tensor \"output.weight\"", mentioning: ["no such tensor", "[256, 512]"]) {
            _ = try file.require("output.weight", dims: [256, 512])
        }
        assertCheckpointError(path: path, field: "tensor \"token_embd.weight\" dims",
                              mentioning: ["expected [512, 256]", "found [256, 512]"]) {
            _ = try file.require("token_embd.weight", dims: [512, 256])
        }
        assertCheckpointError(path: path, field: "tensor \"token_embd.weight\" dtype",
                              mentioning: ["one of F16, Q8_0", "found F32"]) {
            _ = try file.require("token_embd.weight", dims: [256, 512], dtypes: [.q8_0, .f16])
        }
    }

    func testWronglyTypedMetadataGettersNameTheKey() throws {
        let path = ReferenceFiles.grok1
        let file = try GGUFFile(path: path)
        assertCheckpointError(path: path, field: "metadata \"general.name\"", mentioning: ["an integer", "string"]) {
            _ = try file.int("general.name")
        }
        assertCheckpointError(path: path, field: "metadata \"grok.block_count\"", mentioning: ["a string", "uint32 4"]) {
            _ = try file.string("grok.block_count")
        }
        assertCheckpointError(path: path, field: "metadata \"general.architecture\"", mentioning: ["a number"]) {
            _ = try file.double("general.architecture")
        }
        assertCheckpointError(path: path, field: "metadata \"grok.block_count\"", mentioning: ["a bool"]) {
            _ = try file.bool("grok.block_count")
        }
        assertCheckpointError(path: path, field: "metadata \"tokenizer.ggml.scores\"",
                              mentioning: ["an array of strings", "array[float32]"]) {
            _ = try file.stringArray("tokenizer.ggml.scores")
        }
        assertCheckpointError(path: path, field: "metadata \"tokenizer.ggml.tokens\"", mentioning: ["an array of integers"]) {
            _ = try file.intArray("tokenizer.ggml.tokens")
        }
        assertCheckpointError(path: path, field: "metadata \"general.name\"", mentioning: ["an array of numbers"]) {
            _ = try file.floatArray("general.name")
        }
    }
}
