import Foundation
import XCTest
@testable import GrokCheckpoint
import GrokTensor

/// A Grok-2 GGUF written in xAI's release layout and read back as a `TensorSource`: every tensor
/// and block bit-identical to the GGUF's, metadata and tokenizer keys equal, and one-line errors
/// for broken releases.
final class Grok2ReleaseTests: XCTestCase {
    private func assertBlock(_ release: Grok2Release, _ gguf: GGUFFile, _ name: String, expert: Int? = nil, rows: Range<Int>? = nil,
                             columns: Range<Int>? = nil, zeroCopy: Bool? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let info = try XCTUnwrap(gguf.tensor(name), file: file, line: line)
        let rows = rows ?? 0..<(info.dims.count > 1 ? info.dims[1] : 1), columns = columns ?? 0..<info.dims[0]
        let expected = Array(try gguf.block(name, expert: expert, rows: rows, columns: columns))
        let got = try release.block(name, expert: expert, rows: rows, columns: columns)
        XCTAssertEqual(Array(got), expected, "\(name) expert \(expert ?? -1) rows \(rows) columns \(columns)", file: file, line: line)
        if let zeroCopy {
            let mapped = release.files.contains { $0.file.contains(got.baseAddress!) }
            XCTAssertEqual(mapped, zeroCopy, "\(name) rows \(rows) columns \(columns): zero-copy view", file: file, line: line)
        }
    }

    func testEveryTensorAndEveryExpertEqualsTheGGUFBitForBit() throws {
        for dtype in [DType.bf16, .f32] {
            let (gguf, directory) = try TinyGrok2.release(in: try makeScratchDirectory(for: self), dtype: dtype)
            let release = try Grok2Release(directory: directory)
            XCTAssertEqual(release.rankCount, 8)
            XCTAssertEqual(release.files.count, 2 + 2 + 2 * 8, "00001, 00002, two layer groups of one common and eight rank files")
            for info in gguf.tensors {
                let mine = try XCTUnwrap(release.tensor(info.name), info.name)
                XCTAssertEqual([mine.name, "\(mine.dims)", mine.dtype.name], [info.name, "\(info.dims)", info.dtype.name])
                let experts: [Int?] = info.dims.count == 3 ? (0..<info.dims[2]).map(Optional.init) : [nil]
                for e in experts {
                    try assertBlock(release, gguf, info.name, expert: e, zeroCopy: info.dims.count == 2 || info.dims.count == 1)
                }
            }
            XCTAssertEqual(release.tensor("blk.0.ffn_gate_exps.weight")?.dtype, dtype, "stored dtype kept")
        }
    }

    func testRowsInsideOneRankAreViewsAndBlocksAcrossRanksAreCopies() throws {
        let (gguf, directory) = try TinyGrok2.release(in: try makeScratchDirectory(for: self))
        let release = try Grok2Release(directory: directory)
        let d = TinyGrok2.width
        // Expert width 32 over 8 ranks: rank r holds gate/up rows and down columns 4r..<4r+4.
        try assertBlock(release, gguf, "blk.1.ffn_gate_exps.weight", expert: 2, rows: 4..<8, columns: 0..<d, zeroCopy: true)
        try assertBlock(release, gguf, "blk.2.ffn_up_exps.weight", expert: 1, rows: 5..<7, columns: 0..<d, zeroCopy: true)
        try assertBlock(release, gguf, "blk.0.ffn_up_exps.weight", expert: 3, rows: 2..<13, columns: 0..<d, zeroCopy: false)
        try assertBlock(release, gguf, "blk.0.ffn_gate_exps.weight", expert: 0, rows: 8..<12, columns: 16..<32, zeroCopy: false)
        try assertBlock(release, gguf, "blk.0.ffn_down_exps.weight", expert: 0, rows: 0..<d, columns: 4..<8, zeroCopy: true)
        try assertBlock(release, gguf, "blk.1.ffn_down_exps.weight", expert: 1, rows: 3..<9, columns: 28..<32, zeroCopy: true)
        try assertBlock(release, gguf, "blk.2.ffn_down_exps.weight", expert: 3, rows: 0..<d, columns: 6..<22, zeroCopy: false)
        try assertBlock(release, gguf, "blk.1.ffn_down_exps.weight", expert: 2, rows: 10..<20, columns: 0..<32, zeroCopy: false)
        try assertBlock(release, gguf, "blk.1.ffn_down_exps.weight", expert: 2, rows: 10..<20, columns: 5..<6, zeroCopy: false)
        try assertBlock(release, gguf, "blk.2.attn_output.weight", rows: 0..<d, columns: 16..<48, zeroCopy: false)
        try assertBlock(release, gguf, "token_embd.weight", rows: 100..<130, columns: 0..<d, zeroCopy: true)
        try assertBlock(release, gguf, "blk.0.attn_q.weight", rows: 16..<32, columns: 0..<d, zeroCopy: true)
        // Releasing a view or a copy is always safe; the bytes read back the same.
        let view = try release.block("blk.1.ffn_gate_exps.weight", expert: 2, rows: 4..<8, columns: 0..<d)
        let before = Array(view)
        release.release(view)
        XCTAssertEqual(Array(view), before)
        XCTAssertThrowsError(try release.block("blk.0.ffn_down_exps.weight", expert: 4, rows: 0..<1, columns: 0..<1))
    }

    /// A merged release (experts whole in a common file, no rank files) is read the same way.
    func testAMergedReleaseWithWholeExpertsInACommonFileReadsTheSame() throws {
        let (gguf, directory) = try TinyGrok2.release(in: try makeScratchDirectory(for: self))
        try remove(directory) { Grok2ReleaseLayout.rank(ofFile: $0) != nil }
        var merged = SafeTensorsWriter()
        for l in 0..<TinyGrok2.layers {
            for t in Grok2ReleaseLayout.experts {
                let info = gguf.tensor(Grok2ReleaseLayout.gguf(layer: l, t.gguf))!
                for e in 0..<TinyGrok2.experts {
                    let bytes = try gguf.block(info.name, expert: e, rows: 0..<info.dims[1], columns: 0..<info.dims[0])
                    merged.add(name: Grok2ReleaseLayout.hf(layer: l, expert: e, t.hf), dtype: info.dtype, shape: [info.dims[1], info.dims[0]], bytes: Array(bytes))
                }
            }
        }
        try merged.write(to: (directory as NSString).appendingPathComponent("pytorch_model-00099-TP-common.safetensors"))
        let release = try Grok2Release(directory: directory)
        XCTAssertEqual(release.rankCount, 0)
        for info in gguf.tensors where info.dims.count == 3 {
            for e in 0..<TinyGrok2.experts { try assertBlock(release, gguf, info.name, expert: e, zeroCopy: true) }
        }
    }

    func testMetadataCarriesTheGGUFsKeysTheStructureAndTheTokenizer() throws {
        let (gguf, directory) = try TinyGrok2.release(in: try makeScratchDirectory(for: self))
        let meta = try Grok2Release(directory: directory).metadataFile
        XCTAssertTrue(meta.tensors.isEmpty, "metadata only")
        for key in gguf.metadataKeys where key.hasPrefix("grok.") || key.hasPrefix("tokenizer.") || key == "general.architecture" {
            XCTAssertEqual(meta.metadata[key], gguf.metadata[key], key)
        }
        XCTAssertEqual(try meta.int("grok.vocab_size"), TinyGrok2.vocabulary)
        XCTAssertEqual(try meta.bool("grokcluster.dense_mlp"), true)
        XCTAssertEqual(try meta.bool("grokcluster.tied_embeddings"), false)
    }

    func testTheWrittenFilesHaveTheReleaseForm() throws {
        let (_, directory) = try TinyGrok2.release(in: try makeScratchDirectory(for: self))
        func json(_ name: String) throws -> [String: Any] {
            let data = try Data(contentsOf: URL(fileURLWithPath: (directory as NSString).appendingPathComponent(name)))
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
        let config = try json("config.json")
        XCTAssertEqual(config["architectures"] as? [String], ["Grok1ForCausalLM"])
        XCTAssertEqual(config["torch_dtype"] as? String, "bfloat16")
        XCTAssertEqual(config["moe_intermediate_size"] as? Int, TinyGrok2.expertWidth)
        XCTAssertEqual(config["intermediate_size"] as? Int, TinyGrok2.denseWidth)
        XCTAssertEqual(config["rope_type"] as? String, "original")
        XCTAssertEqual(config["rms_norm_eps"] as? Double, 1e-05)
        XCTAssertNil(config["attn_output_multiplier"], "0.25 is head_dim^-0.5, which the release leaves implicit")

        let tok = try json("tokenizer.tok.json")
        XCTAssertEqual(tok["word_split"] as? String, "V1")
        XCTAssertNil(tok["vocab_size"], "tiktoken's explicit_n_vocab would count the unused id")
        let specials = try XCTUnwrap(tok["special_tokens"] as? [[String: Any]])
        XCTAssertEqual(specials.map { String(decoding: ($0["bytes"] as! [Int]).map(UInt8.init), as: UTF8.self) },
                       ["<|pad|>", "<|separator|>", "<|eos|>", "<|reserved_3|>"])
        XCTAssertEqual(specials.map { $0["token"] as? Int }, [0, 1, 2, 269])
        let regular = try XCTUnwrap(tok["regular_tokens"] as? [[String: Any]])
        XCTAssertEqual(regular.count, 256 + TinyGrok2.merges.count, "the unused id is a gap")
        XCTAssertEqual(regular[3 + 32 - 3]["bytes"] as? [Int], [32], "byte 0x20, not its byte-level form Ġ")
        XCTAssertEqual(regular.last?["bytes"] as? [Int], Array("or".utf8).map(Int.init))

        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        XCTAssertTrue(names.contains("pytorch_model-00001-TP-common.safetensors"))
        XCTAssertTrue(names.contains("pytorch_model-00006-TP-007.safetensors"))
        let piece = try SafeTensorsFile(path: (directory as NSString).appendingPathComponent("pytorch_model-00004-TP-003.safetensors"))
        XCTAssertEqual(piece.tensor("model.layers.1.block_sparse_moe.experts.2.w1.weight")?.shape, [4, TinyGrok2.width])
        XCTAssertEqual(piece.tensor("model.layers.1.block_sparse_moe.experts.2.w2.weight")?.shape, [TinyGrok2.width, 4])
    }

    func testTheTiktokenVocabularyRecoversTheMerges() throws {
        let dir = try makeScratchDirectory(for: self)
        let path = dir.appendingPathComponent("v.gguf").path
        try TinyGrok2.write(to: path, dtype: .bf16)
        let vocabulary = try TiktokenVocabulary(gguf: GGUFFile(path: path))
        XCTAssertEqual(vocabulary.recoveredMerges(), TinyGrok2.merges)
        let json = dir.appendingPathComponent("tokenizer.tok.json").path
        try Data(vocabulary.jsonText().utf8).write(to: URL(fileURLWithPath: json))
        XCTAssertEqual(try TiktokenVocabulary(path: json), vocabulary)
    }

    // MARK: - Broken releases

    private func remove(_ directory: String, _ matching: (String) -> Bool) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where matching(name) {
            try FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(name))
        }
    }

    func testMissingRanksAreRefused() throws {
        let (_, directory) = try TinyGrok2.release(in: try makeScratchDirectory(for: self))
        try remove(directory) { $0.hasSuffix("-TP-007.safetensors") }
        assertCheckpointError(path: directory, field: "tensor \"model.layers.0.block_sparse_moe.experts.0.w1.weight\"",
                              mentioning: ["TP pieces adding up to 32", "found 28"]) { _ = try Grok2Release(directory: directory) }
        try remove(directory) { $0.hasSuffix("-TP-003.safetensors") }
        assertCheckpointError(path: directory, field: "TP rank files", mentioning: ["ranks 000 to 5", "[0, 1, 2, 4, 5, 6]"]) {
            _ = try Grok2Release(directory: directory)
        }
    }

    func testMissingMisshapenAndUnknownTensorsAreRefusedNamingTheFile() throws {
        let (gguf, directory) = try TinyGrok2.release(in: try makeScratchDirectory(for: self))
        let head = (directory as NSString).appendingPathComponent("pytorch_model-00002-TP-common.safetensors")
        let lmHead = gguf.tensor("output.weight")!
        func rewriteHead(norm shape: [Int]?) throws {
            var w = SafeTensorsWriter()
            w.add(name: "lm_head.weight", dtype: .bf16, shape: lmHead.shape, bytes: Array(gguf.data(of: lmHead)))
            if let shape { w.add(name: "model.norm.weight", dtype: .f32, shape: shape, bytes: patternBytes(4 * shape.reduce(1, *), seed: 1)) }
            try w.write(to: head)
        }
        try rewriteHead(norm: [TinyGrok2.width - 1])
        assertCheckpointError(path: head, field: "tensor \"model.norm.weight\" shape", mentioning: ["[64]", "[63]"]) {
            _ = try Grok2Release(directory: directory)
        }
        try rewriteHead(norm: nil)
        assertCheckpointError(path: directory, field: "tensor \"model.norm.weight\"", mentioning: ["TP-common", "no such tensor"]) {
            _ = try Grok2Release(directory: directory)
        }
        try rewriteHead(norm: [TinyGrok2.width])
        _ = try Grok2Release(directory: directory)

        let extra = (directory as NSString).appendingPathComponent("pytorch_model-00099-TP-common.safetensors")
        var w = SafeTensorsWriter()
        w.add(name: "model.layers.0.block_sparse_moe.experts.0.w1.weight_scale", dtype: .f32, shape: [1], bytes: [0, 0, 0, 0])
        try w.write(to: extra)
        assertCheckpointError(path: extra, field: "tensor \"model.layers.0.block_sparse_moe.experts.0.w1.weight_scale\"",
                              mentioning: ["no GGUF tensor maps to"]) { _ = try Grok2Release(directory: directory) }
        var twice = SafeTensorsWriter()
        twice.add(name: "model.norm.weight", dtype: .f32, shape: [TinyGrok2.width], bytes: patternBytes(4 * TinyGrok2.width, seed: 2))
        try twice.write(to: extra)
        assertCheckpointError(path: extra, field: "tensor \"model.norm.weight\"", mentioning: ["00002-TP-common"]) {
            _ = try Grok2Release(directory: directory)
        }
    }

    func testTheWriterRefusesQuantizedGGUFs() throws {
        let directory = try makeScratchDirectory(for: self).appendingPathComponent("q8").path
        let reference = try GGUFFile(path: ReferenceFiles.grok2)
        assertCheckpointError(path: reference.path, field: "tensor \"token_embd.weight\" dtype", mentioning: ["Q8_0"]) {
            try Grok2ReleaseWriter.write(from: reference, to: directory)
        }
    }
}
