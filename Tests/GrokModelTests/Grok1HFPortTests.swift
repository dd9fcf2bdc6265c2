import Foundation
import GrokCheckpoint
import GrokModel
import GrokRuntime
import GrokTensor
import XCTest

/// A synthetic BF16 Grok-1 written as a Hugging Face port (keyfan/grok-1-hf layout: unstacked
/// experts, config.json, SentencePiece tokenizer.model) reads back as the GGUF it came from.
final class Grok1HFPortTests: XCTestCase {
    func port() throws -> (gguf: GGUFFile, port: Grok1HFPort) {
        let dir = try temporaryDirectory(self)
        let path = (dir as NSString).appendingPathComponent("grok-1-tiny-bf16.gguf")
        try Synthesizer.write(Grok1.tiny, dtype: .bf16, seed: 13, name: "grok-1-tiny", to: path)
        let gguf = try GGUFFile(path: path)
        let directory = (dir as NSString).appendingPathComponent("port")
        try Grok1HFPortWriter.write(from: gguf, to: directory)
        return (gguf, try Grok1HFPort(directory: directory))
    }

    func testEveryTensorIsTheGGUFsAndTheModelRunsTheSame() throws {
        let (gguf, port) = try port()
        XCTAssertEqual(port.files.count, 3, "embedding and norm, then two files of two layers")
        for info in gguf.tensors {
            let mine = try XCTUnwrap(port.tensor(info.name), info.name)
            XCTAssertEqual(mine.dims, info.dims, info.name)
            XCTAssertEqual(mine.dtype, info.dtype, info.name)
            let experts: [Int?] = info.dims.count == 3 ? (0..<info.dims[2]).map(Optional.init) : [nil]
            let rows = info.dims.count > 1 ? info.dims[1] : 1
            for e in experts {
                XCTAssertEqual(Array(try port.block(info.name, expert: e, rows: 0..<rows, columns: 0..<info.dims[0])),
                               Array(try gguf.block(info.name, expert: e, rows: 0..<rows, columns: 0..<info.dims[0])), info.name)
            }
        }
        let columns = try port.block("blk.1.ffn_down_exps.weight", expert: 5, rows: 3..<40, columns: 32..<96)
        XCTAssertEqual(Array(columns), Array(try gguf.block("blk.1.ffn_down_exps.weight", expert: 5, rows: 3..<40, columns: 32..<96)))

        let expected = try GrokModel(source: gguf, pool: ThreadPool(threads: 2))
        let model = try GrokModel(source: port, pool: ThreadPool(threads: 2))
        XCTAssertEqual(model.config, expected.config)
        XCTAssertTrue(model.config.tiedEmbeddings)
        let prompt: [Int32] = (0..<24).map { Int32(($0 * 7919 + 5) % Grok1.tiny.vocabularySize) }
        XCTAssertEqual(try fullSequenceLogits(model, prompt), try fullSequenceLogits(expected, prompt), "bit-identical logits")
    }

    func testTokenizerEncodesAsTheGGUFs() throws {
        let (gguf, port) = try port()
        let expected = try XCTUnwrap(try ModelSource.tokenizer(of: gguf))
        let tokenizer = try XCTUnwrap(try ModelSource.tokenizer(of: port.metadataFile))
        for text in ["The keeper stayed awake through the whole night.", "naïve café 日本語 🙂", "  two  spaces\n\n<|separator|>"] {
            XCTAssertEqual(tokenizer.encode(text, addBOS: false, parseSpecial: true), expected.encode(text, addBOS: false, parseSpecial: true), text)
        }
    }

    func testAGrok2ConfigIsRefused() throws {
        let (_, port) = try port()
        let config = (port.path as NSString).appendingPathComponent("config.json")
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config))) as? [String: Any])
        json["moe_intermediate_size"] = 128
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: config))
        XCTAssertThrowsError(try Grok1HFPort(directory: port.path)) { error in
            XCTAssertEqual((error as? CheckpointError)?.field, "moe_intermediate_size", "\(error)")
        }
    }
}
