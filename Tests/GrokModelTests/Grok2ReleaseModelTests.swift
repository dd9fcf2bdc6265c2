import Foundation
import GrokCheckpoint
import GrokModel
import GrokRuntime
import GrokTensor
import GrokTopology
import XCTest

/// A synthetic BF16 Grok-2 written in xAI's release layout (safetensors, experts split over 8 TP
/// ranks, config.json, tokenizer.tok.json) runs exactly as the GGUF it was written from.
final class Grok2ReleaseModelTests: XCTestCase {
    /// The BF16 grok-2-tiny GGUF and the release written from it.
    func release() throws -> (gguf: GGUFFile, release: Grok2Release) {
        let dir = try temporaryDirectory(self)
        let path = (dir as NSString).appendingPathComponent("grok-2-tiny-bf16.gguf")
        try Synthesizer.write(Grok2.tiny, dtype: .bf16, seed: 11, name: "grok-2-tiny", to: path)
        let gguf = try GGUFFile(path: path)
        let directory = (dir as NSString).appendingPathComponent("release")
        try Grok2ReleaseWriter.write(from: gguf, to: directory)
        return (gguf, try Grok2Release(directory: directory))
    }

    func testSameConfigurationLogitsAndGreedyTokensAsTheGGUF() throws {
        let (gguf, release) = try release()
        let expected = try GrokModel(source: gguf, pool: ThreadPool(threads: 2))
        let model = try GrokModel(source: release, pool: ThreadPool(threads: 2))
        XCTAssertEqual(model.config, expected.config)
        XCTAssertEqual(model.config.architecture, .grok2)

        let prompt: [Int32] = (0..<70).map { Int32(($0 * 7919 + 5) % Grok2.tiny.vocabularySize) }   // past temperature length 64
        XCTAssertEqual(try fullSequenceLogits(model, prompt), try fullSequenceLogits(expected, prompt), "bit-identical logits")

        var options = GenerationOptions()
        options.maxTokens = 10
        options.sampler = .greedy
        options.stopOnEOS = false
        let prompts = [Array(prompt.prefix(9)), Array(prompt.suffix(4))]
        let mine = try Generator(model: model, tokenizer: nil).generate(prompts: prompts, options: options).results
        let theirs = try Generator(model: expected, tokenizer: nil).generate(prompts: prompts, options: options).results
        XCTAssertEqual(mine.map(\.generatedTokens), theirs.map(\.generatedTokens))
    }

    /// Every block two sliced layouts ask for: 2 tensor-parallel ranks (expert columns 0..<64 and
    /// 64..<128, each spanning four TP files) and 8 ranks without tensor parallelism (16 columns
    /// each, exactly one TP file's piece).
    func testEveryBlockOfExpertSlicingLayoutsEqualsTheGGUF() throws {
        let (gguf, release) = try release()
        let shape = Grok2.tiny.shape
        for layout in [Topology(worldSize: 2, stages: [.init(layers: 0..<4, ranks: [0, 1], experts: .slice)]),
                       Topology(worldSize: 8, stages: [.init(layers: 0..<4, ranks: Array(0..<8), tensorParallel: false, experts: .slice)])] {
            try layout.validate(shape: shape, worldSize: nil)
            for plan in layout.plans(shape: shape) {
                for block in WeightBlock.list(config: Grok2.tiny, plan: plan) {
                    XCTAssertEqual(try release.requireTensor(block.name, dims: block.dims).dtype, gguf.tensor(block.name)?.dtype)
                    let mine = try release.block(block.name, expert: block.expert, rows: block.rows, columns: block.columns)
                    let theirs = try gguf.block(block.name, expert: block.expert, rows: block.rows, columns: block.columns)
                    XCTAssertEqual(Array(mine), Array(theirs), "rank \(plan.rank) of \(layout.worldSize): \(block.label)")
                }
            }
        }
    }

    func testTokenizerEncodesAndDecodesAsTheGGUFs() throws {
        let (gguf, release) = try release()
        let expected = try XCTUnwrap(try ModelSource.tokenizer(of: gguf))
        let tokenizer = try XCTUnwrap(try ModelSource.tokenizer(of: release.metadataFile))
        XCTAssertEqual(tokenizer.vocabularySize, expected.vocabularySize)
        XCTAssertEqual(tokenizer.eosID, 2)
        XCTAssertNil(tokenizer.bosID)
        XCTAssertEqual(try release.metadataFile.stringArray("tokenizer.ggml.merges"), try gguf.stringArray("tokenizer.ggml.merges"),
                       "the merges recovered from the tiktoken ranks are the trained ones")
        let texts = [
            "The keeper stayed awake through the whole night, watching the water.",
            "Human: What is 2+2?<|separator|>\n\nAssistant: 4<|eos|>",
            "She said, \"I don't think we're ready yet, but we'll see.\"",
            "The meeting is on 2024-03-15 at 09:30, room 12B; tickets cost $45.99.",
            "func greet(name: String) -> [String] {\n\treturn [\"hi \\(name)\"]\n}",
            "naïve café, Grüße, 日本語のテキスト, русский текст, 🙂👍",
            "   leading spaces,\ttabs\t\tand\r\nnewlines\n\n\n  ",
        ]
        for text in texts {
            for special in [false, true] {
                let ids = tokenizer.encode(text, addBOS: false, parseSpecial: special)
                XCTAssertEqual(ids, expected.encode(text, addBOS: false, parseSpecial: special), "\(text.debugDescription) special \(special)")
                XCTAssertEqual(tokenizer.decode(ids), expected.decode(ids))
            }
        }
        XCTAssertEqual(tokenizer.encode("<|separator|>", addBOS: false, parseSpecial: true), [1])
    }
}
