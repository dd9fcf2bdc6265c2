import Foundation
import GrokTensor
import XCTest
@testable import GrokCheckpoint

/// The official `ckpt-0` layout, the writer and `Grok1Checkpoint` on the tiny reference model and
/// on a 12-layer model (where the file order of layers differs from their numeric order).
final class Grok1CheckpointTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../GrokModelTests/Fixtures/grok1").standardized.path
    static let referenceGGUF = fixtures + "/grok1-tiny-ref-f32.gguf"

    /// §2.12: 770 files; tensor00000 the embedding, 00001 the final norm, then 12 per layer with the
    /// layers in string order, so layer 2 is files 146-157 and layer 9 files 758-769.
    func testOfficialLayout() {
        let leaves = Grok1Layout.leaves(.official)
        XCTAssertEqual(leaves.count, 770)
        XCTAssertEqual(leaves.map(\.index), Array(0..<770))
        XCTAssertEqual(Grok1CheckpointConfig.official.ffnSize, 32768)
        func files(_ layer: Int) -> [String] { leaves.filter { $0.name.hasPrefix("blk.\(layer).") }.map(\.fileName) }
        XCTAssertEqual(files(2), (146...157).map(Grok1Layout.fileName))
        XCTAssertEqual(files(9), (758...769).map(Grok1Layout.fileName))
        XCTAssertEqual(files(10), (26...37).map(Grok1Layout.fileName))
        XCTAssertEqual(leaves[146...157].map { String($0.name.dropFirst(6).dropLast(7)) },
                       ["ffn_gate_exps", "ffn_down_exps", "ffn_up_exps", "attn_k", "attn_output", "attn_q", "attn_v",
                        "attn_norm", "attn_output_norm", "ffn_norm", "layer_output_norm", "ffn_gate_inp"])
        XCTAssertEqual(leaves[147].path, "transformer/decoder_layer_2/moe/linear_1/w")
        let byName = Dictionary(uniqueKeysWithValues: leaves.map { ($0.name, $0) })
        func check(_ name: String, shape: [Int], dims: [Int], dtype: DType) {
            XCTAssertEqual(byName[name]?.shape, shape, name)
            XCTAssertEqual(byName[name]?.info.dims, dims, name)
            XCTAssertEqual(byName[name]?.info.dtype, dtype, name)
        }
        check("token_embd.weight", shape: [131072, 6144], dims: [6144, 131072], dtype: .f32)
        check("output_norm.weight", shape: [6144], dims: [6144], dtype: .f32)
        check("blk.0.ffn_gate_exps.weight", shape: [8, 6144, 32768], dims: [6144, 32768, 8], dtype: .q8_0)
        check("blk.0.ffn_down_exps.weight", shape: [8, 32768, 6144], dims: [32768, 6144, 8], dtype: .q8_0)
        check("blk.0.attn_k.weight", shape: [6144, 1024], dims: [6144, 1024], dtype: .q8_0)
        check("blk.0.attn_output.weight", shape: [6144, 6144], dims: [6144, 6144], dtype: .q8_0)
        check("blk.0.ffn_gate_inp.weight", shape: [6144, 8], dims: [6144, 8], dtype: .f32)
    }

    func testConfigJSON() throws {
        let tiny = try Grok1CheckpointConfig(contentsOf: Self.fixtures + "/config.json")   // extra keys are ignored
        XCTAssertEqual([tiny.vocabularySize, tiny.embeddingSize, tiny.layers, tiny.queryHeads, tiny.kvHeads, tiny.keySize, tiny.ffnSize],
                       [512, 256, 4, 8, 2, 32, 128])
        XCTAssertEqual(Grok1CheckpointConfig.ffnSize(embeddingSize: 256, wideningFactor: 0.75), 128)
        let directory = try makeScratchDirectory(for: self)
        let empty = try writeFile(Array("{}".utf8), named: "empty.json", in: directory)
        XCTAssertEqual(try Grok1CheckpointConfig(contentsOf: empty), .official)
        let heads = try writeFile(Array(#"{"num_kv_heads": 5}"#.utf8), named: "heads.json", in: directory)
        assertCheckpointError(path: heads, field: "num_kv_heads", mentioning: ["a divisor of num_q_heads 48", "found 5"]) {
            _ = try Grok1CheckpointConfig(contentsOf: heads)
        }
        let typed = try writeFile(Array(#"{"emb_size": "wide"}"#.utf8), named: "typed.json", in: directory)
        assertCheckpointError(path: typed, field: "emb_size", mentioning: ["an integer"]) { _ = try Grok1CheckpointConfig(contentsOf: typed) }
    }

    /// GGUF → ckpt-0 → Grok1Checkpoint on the reference model: names, dims and metadata as the
    /// GGUF's; every block exactly int8 · scale of the written arrays (dequantized here directly
    /// from the pickles), within half a scale step of the GGUF's weights; F32 tensors exact.
    func testReferenceModelRoundTrip() throws {
        let gguf = try GGUFFile(path: Self.referenceGGUF)
        let directory = try makeScratchDirectory(for: self).path
        try Grok1CheckpointWriter.write(from: gguf, to: directory)
        let checkpoint = try Grok1Checkpoint(directory: directory)
        XCTAssertTrue(checkpoint.metadataFile.tensors.isEmpty)

        for key in gguf.metadataKeys where key.hasPrefix("grok.") && key != "grok.router_logit_softcapping" {
            XCTAssertEqual(try checkpoint.metadataFile.double(key), try gguf.double(key), key)
        }
        XCTAssertEqual(try checkpoint.metadataFile.int("grok.vocab_size"), 512)
        XCTAssertEqual(try checkpoint.metadataFile.stringArray("tokenizer.ggml.tokens"), try gguf.stringArray("tokenizer.ggml.tokens"))
        XCTAssertEqual(try checkpoint.metadataFile.floatArray("tokenizer.ggml.scores"), try gguf.floatArray("tokenizer.ggml.scores"))
        XCTAssertEqual(try checkpoint.metadataFile.intArray("tokenizer.ggml.token_type"), try gguf.intArray("tokenizer.ggml.token_type"))
        for key in ["bos", "eos", "unknown", "padding"] {
            XCTAssertEqual(try checkpoint.metadataFile.int("tokenizer.ggml.\(key)_token_id"), try gguf.int("tokenizer.ggml.\(key)_token_id"), key)
        }
        XCTAssertEqual(try checkpoint.metadataFile.bool("tokenizer.ggml.add_bos_token"), false)

        XCTAssertEqual(Set(gguf.tensors.map(\.name)), Set(Grok1Layout.leaves(checkpoint.config).map(\.name)))
        for tensor in gguf.tensors {
            try assertBlocksMatch(checkpoint, tensor, gguf)
        }
    }

    /// A 12-layer model: layer l is in the files of slot l of the string order 0, 1, 10, 11, 2, …, 9.
    func testTwelveLayerFileOrder() throws {
        let directory = try makeScratchDirectory(for: self).path
        let ggufPath = directory + "/twelve.gguf"
        try writeSyntheticGrok1(layers: 12, to: ggufPath)
        let gguf = try GGUFFile(path: ggufPath)
        try Grok1CheckpointWriter.write(from: gguf, to: directory + "/model")
        let slots = ["0", "1", "10", "11", "2", "3", "4", "5", "6", "7", "8", "9"]
        for layer in 0..<12 {
            let router = try PickleFile(path: directory + "/model/ckpt-0/" + Grok1Layout.fileName(2 + 12 * slots.firstIndex(of: String(layer))! + 11))
            defer { withExtendedLifetime(router) {} }   // its arrays live as long as the file
            guard case .array(let jax) = router.leaf else { return XCTFail("layer \(layer): router is not an array") }
            let values = floats(gguf, "blk.\(layer).ffn_gate_inp.weight")   // [E, d]; JAX [d, E]
            XCTAssertEqual(jax.shape, [64, 4])
            XCTAssertEqual((0..<64).flatMap { c in (0..<4).map { e in values[e * 64 + c] } }, jaxFloats(jax), "layer \(layer)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/model/ckpt-0/" + Grok1Layout.fileName(145)))
        let checkpoint = try Grok1Checkpoint(directory: directory + "/model/ckpt-0")   // ckpt-0 itself; config.json beside it
        XCTAssertEqual(checkpoint.config.layers, 12)
        for tensor in gguf.tensors where tensor.name.hasPrefix("blk.2.") || tensor.name.hasPrefix("blk.10.") {
            try assertBlocksMatch(checkpoint, tensor, gguf)
        }
    }

    func testTokenizerModelRoundTrip() throws {
        let gguf = try GGUFFile(path: Self.referenceGGUF)
        let model = try XCTUnwrap(try SentencePieceModel(gguf: gguf))
        XCTAssertEqual([model.unknownID, model.bosID, model.eosID, model.paddingID], [3, 1, 2, 0])
        XCTAssertEqual(try SentencePieceModel(bytes: model.serialized, file: "tokenizer.model"), model)
        let corrupt = Array(model.serialized.dropLast(3))
        XCTAssertThrowsError(try SentencePieceModel(bytes: corrupt, file: "tokenizer.model")) { error in
            XCTAssertTrue("\(error)".hasPrefix("tokenizer.model: ModelProto field 3 at offset"), "\(error)")
        }
    }

    func testRefusesMissingFilesAndAMismatchedConfiguration() throws {
        let directory = try writtenReference()
        let checkpoint = directory + "/ckpt-0"
        try FileManager.default.removeItem(atPath: checkpoint + "/tensor00049_000")
        assertCheckpointError(path: checkpoint, field: "files", mentioning: ["50 files", "found 49, tensor00049_000 missing"]) {
            _ = try Grok1Checkpoint(directory: directory)
        }
        try FileManager.default.removeItem(atPath: directory + "/config.json")
        assertCheckpointError(path: checkpoint, field: "files", mentioning: ["770 files", "the official Grok-1 values"]) {
            _ = try Grok1Checkpoint(directory: directory)
        }
        assertCheckpointError(path: directory + "/nowhere", field: "directory", mentioning: ["no such directory"]) {
            _ = try Grok1Checkpoint(directory: directory + "/nowhere")
        }
    }

    func testRefusesLeavesThatDoNotFit() throws {
        let directory = try writtenReference()
        let file = { (index: Int) in directory + "/ckpt-0/" + Grok1Layout.fileName(index) }
        // blk.0.attn_q (tensor00007) replaced by blk.0.attn_k's file.
        try FileManager.default.removeItem(atPath: file(7))
        try FileManager.default.copyItem(atPath: file(5), toPath: file(7))
        // blk.0.attn_k (tensor00005): a scale f16 cannot hold exactly (bf16 of 1e-7 is not a multiple of 2^-24).
        try writeQuantized(to: file(5), shape: [256, 64], scaleShape: [1, 64], scale: 1e-7)
        // blk.0.attn_output (tensor00006): 16 groups of 16 inputs.
        try writeQuantized(to: file(6), shape: [256, 256], scaleShape: [16, 256], scale: 0.5)
        // blk.0.attn_v (tensor00008): something else entirely.
        try Data(bytesFromHex("800263706f7369780a73797374656d0a710058020000006c7371018571025271032e")).write(to: URL(fileURLWithPath: file(8)))

        let checkpoint = try Grok1Checkpoint(directory: directory)
        let layer = "transformer/decoder_layer_0/multi_head_attention/"
        func block(_ name: String) throws { _ = try checkpoint.block("blk.0.\(name).weight", expert: nil, rows: 0..<32, columns: 0..<64) }
        assertCheckpointError(path: file(7), field: layer + "query/w weight", mentioning: ["int8 [256, 256] (blk.0.attn_q.weight", "found int8 [256, 64]"]) {
            try block("attn_q")
        }
        assertCheckpointError(path: file(5), field: layer + "key/w scales[0, 0]", mentioning: ["exactly representable in f16", "found 1.0011718e-07"]) {
            try block("attn_k")
        }
        assertCheckpointError(path: file(6), field: layer + "linear/w scales", mentioning: ["whole Q8_0 blocks", "16 groups of 16 inputs"]) {
            try block("attn_output")
        }
        assertCheckpointError(path: file(8), field: "pickle offset 2 opcode 0x63 GLOBAL", mentioning: ["found posix.system"]) {
            try block("attn_v")
        }
    }

    // MARK: - Helpers

    /// The reference model written as a checkpoint in a scratch directory.
    private func writtenReference() throws -> String {
        let directory = try makeScratchDirectory(for: self).path
        try Grok1CheckpointWriter.write(from: try GGUFFile(path: Self.referenceGGUF), to: directory)
        return directory
    }

    private func writeQuantized(to path: String, shape: [Int], scaleShape: [Int], scale: Float) throws {
        let weight = [Int8](repeating: 1, count: shape.reduce(1, *))
        let scales = [UInt16](repeating: Half.bf16(scale), count: scaleShape.reduce(1, *))
        try weight.withUnsafeBytes { w in
            try scales.withUnsafeBytes { s in
                try PickleWriter(.quantized(weight: .array(.int8, shape: shape, data: w), scales: .array(.bfloat16, shape: scaleShape, data: s)))
                    .write(to: path)
            }
        }
    }

    /// Whole-tensor blocks (every expert), one sliced block, against the pickles and the GGUF.
    private func assertBlocksMatch(_ checkpoint: Grok1Checkpoint, _ tensor: GGUFTensorInfo, _ gguf: GGUFFile) throws {
        let info = try XCTUnwrap(checkpoint.tensor(tensor.name))
        XCTAssertEqual(info.dims, tensor.dims, tensor.name)
        let original = floats(gguf, tensor.name)
        let experts = tensor.dims.count == 3 ? tensor.dims[2] : 1, rows = tensor.dims.count > 1 ? tensor.dims[1] : 1, columns = tensor.dims[0]
        let leaf = Grok1Layout.leaves(checkpoint.config).first { $0.name == tensor.name }!
        let expected = try dequantizedPickle(checkpoint.path + "/" + leaf.fileName, leaf)   // GGUF order
        for e in 0..<experts {
            let bytes = try checkpoint.block(tensor.name, expert: experts > 1 ? e : nil, rows: 0..<rows, columns: 0..<columns)
            let got = Quantizer.dequantize(bytes, dtype: info.dtype, count: rows * columns)
            let steps = info.dtype == .q8_0 ? (0..<rows * columns / 32).map { Half.float(f16: bytes.loadUnaligned(fromByteOffset: 34 * $0, as: UInt16.self)) } : []
            checkpoint.release(bytes)
            let range = e * rows * columns ..< (e + 1) * rows * columns
            XCTAssertEqual(got, Array(expected[range]), "\(tensor.name) expert \(e)")
            if info.dtype == .f32 {
                XCTAssertEqual(got, Array(original[range]), tensor.name)
            } else {
                XCTAssertEqual(info.dtype, .q8_0, tensor.name)
                let worst = (0..<rows * columns).map { abs(got[$0] - original[range.lowerBound + $0]) / steps[$0 / 32] }.max()!
                XCTAssertLessThanOrEqual(worst, 0.5001, "\(tensor.name): quantization error in scale steps")
            }
        }
        guard rows >= 40, columns >= 96 else { return }
        let slice = try checkpoint.block(tensor.name, expert: experts > 1 ? experts - 1 : nil, rows: 8..<40, columns: 32..<96)
        let got = Quantizer.dequantize(slice, dtype: info.dtype, count: 32 * 64)
        let base = (experts - 1) * rows * columns
        XCTAssertEqual(got, (8..<40).flatMap { r in (32..<96).map { c in expected[base + r * columns + c] } }, "\(tensor.name) slice")
    }

    /// A leaf's pickle dequantized the straightforward way (f32 values, or Float(int8) · Float(bf16
    /// scale of the element's group)), rearranged to GGUF order `[(E,) rows, columns]`.
    private func dequantizedPickle(_ path: String, _ leaf: Grok1Leaf) throws -> [Float] {
        let file = try PickleFile(path: path)
        defer { withExtendedLifetime(file) {} }
        var jax: [Float]
        switch file.leaf {
        case .array(let a): jax = jaxFloats(a)
        case .quantized(let weight, let scales):
            let n = weight.shape[weight.shape.count - 1], k = weight.shape[weight.shape.count - 2], g = scales.shape[scales.shape.count - 2]
            let s = jaxFloats(scales)
            jax = weight.bytes.enumerated().map { i, byte in
                let e = i / (k * n), row = i / n % k, column = i % n
                return Float(Int8(bitPattern: byte)) * s[(e * g + row / (k / g)) * n + column]
            }
        }
        let shape = leaf.shape
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in shape.indices.dropLast().reversed() { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        let experts = leaf.expertAxis.map { shape[$0] } ?? 1, rows = leaf.rowAxis.map { shape[$0] } ?? 1, columns = shape[leaf.columnAxis]
        return (0..<experts).flatMap { e in (0..<rows).flatMap { r in (0..<columns).map { c in
            jax[e * (leaf.expertAxis.map { strides[$0] } ?? 0) + r * (leaf.rowAxis.map { strides[$0] } ?? 0) + c * strides[leaf.columnAxis]]
        } } }
    }

    private func jaxFloats(_ a: PickleArray) -> [Float] {
        switch a.dtype {
        case .float32: return (0..<a.bytes.count / 4).map { a.bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        case .bfloat16: return (0..<a.bytes.count / 2).map { Half.float(bf16: a.bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
        case .int8: return a.bytes.map { Float(Int8(bitPattern: $0)) }
        }
    }

    private func floats(_ file: GGUFFile, _ name: String) -> [Float] {
        let info = file.tensor(name)!
        return Quantizer.dequantize(file.data(of: info), dtype: info.dtype, count: info.elementCount)
    }

    /// A small Grok-1 GGUF (no tokenizer): d 64, 2 query heads and 1 KV head of 32, 4 experts of
    /// width 64 (top 2), vocabulary 96; weights ~ N(0, 1/64) from a fixed seed.
    private func writeSyntheticGrok1(layers: Int, to path: String) throws {
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("grok"))
        for (key, value) in [("context_length", 64), ("embedding_length", 64), ("block_count", layers), ("feed_forward_length", 64),
                             ("attention.head_count", 2), ("attention.head_count_kv", 1), ("attention.key_length", 32),
                             ("expert_count", 4), ("expert_used_count", 2)] {
            writer.set("grok.\(key)", .uint32(UInt32(value)))
        }
        writer.set("grok.attention.layer_norm_rms_epsilon", .float32(1e-5))
        var seed: UInt64 = 7
        func tensor(_ name: String, _ dims: [Int]) {
            let bytes = patternBytes(dims.reduce(1, *), seed: seed)
            seed += 1
            let values = bytes.map { (Float($0) - 127.5) / 1024 }
            writer.addTensor(name: name, dims: dims, dtype: .f32, bytes: values.withUnsafeBytes { Array($0) })
        }
        tensor("token_embd.weight", [64, 96])
        tensor("output_norm.weight", [64])
        for l in 0..<layers {
            for (name, dims) in [("attn_norm", [64]), ("attn_q", [64, 64]), ("attn_k", [64, 32]), ("attn_v", [64, 32]), ("attn_output", [64, 64]),
                                 ("attn_output_norm", [64]), ("ffn_norm", [64]), ("ffn_gate_inp", [64, 4]), ("ffn_gate_exps", [64, 64, 4]),
                                 ("ffn_down_exps", [64, 64, 4]), ("ffn_up_exps", [64, 64, 4]), ("layer_output_norm", [64])] {
                tensor("blk.\(l).\(name).weight", dims)
            }
        }
        try writer.write(to: path)
    }
}
