import Foundation
import GrokModel
import GrokRuntime
import GrokTensor
import XCTest

/// The paths that must agree with each other: prefill vs decode, batch vs alone, our forward vs
/// an independent NumPy implementation on synthetic models of both architectures and every dtype.
final class ConsistencyTests: XCTestCase {
    /// Tolerance for two f32 evaluations of the same math that differ only in summation order
    /// (batched sgemm vs per-row dot products), relative to the largest logit.
    static let reassociationTolerance: Float = 1e-4

    func synthesize(_ config: ModelConfig, _ dtype: DType, seed: UInt64 = 3) throws -> String {
        let path = (try temporaryDirectory(self) as NSString).appendingPathComponent("model.gguf")
        try Synthesizer.write(config, dtype: dtype, seed: seed, name: "test", to: path)
        return path
    }

    /// A prompt of `count` token ids spread over the vocabulary.
    func prompt(_ count: Int, vocabulary: Int, salt: Int = 0) -> [Int32] {
        (0..<count).map { Int32(($0 * 7919 + salt * 104_729 + 5) % vocabulary) }
    }

    /// Prefill of a prompt prefix, then token-by-token decode, gives the logits of one full pass.
    /// Grok-2 tiny has temperature length 64, so 80 positions cross it.
    func testPrefillThenDecodeEqualsFullSequence() throws {
        for config in [Grok1.tiny, Grok2.tiny] {
            let model = try loadModel(try synthesize(config, .f32))
            let tokens = prompt(80, vocabulary: config.vocabularySize)
            let full = try fullSequenceLogits(model, tokens)
            let cache = model.makeCache(slots: 1, capacity: tokens.count)
            let split = 33
            var stepwise = try model.forward(ForwardBatch(tokens: Array(tokens[..<split]), slots: Array(repeating: 0, count: split),
                                                          positions: Array(0..<split)), cache: cache, logitRows: Array(0..<split)).array
            for p in split..<tokens.count {
                stepwise += try model.forward(ForwardBatch(tokens: [tokens[p]], slots: [0], positions: [p]), cache: cache, logitRows: [0]).array
            }
            let diff = maxAbsDifference(full, stepwise)
            XCTAssertLessThan(diff, Self.reassociationTolerance * maxAbs(full), "\(config.architecture): prefill+decode vs full: \(diff)")
        }
    }

    /// Three prompts of different lengths generated as one batch give each the tokens and logits
    /// it gets alone.
    func testBatchEqualsEachPromptAlone() throws {
        for config in [Grok1.tiny, Grok2.tiny] {
            let model = try loadModel(try synthesize(config, .q8_0))
            let prompts = [prompt(5, vocabulary: config.vocabularySize, salt: 1), prompt(17, vocabulary: config.vocabularySize, salt: 2),
                           prompt(9, vocabulary: config.vocabularySize, salt: 3)]
            var options = GenerationOptions()
            options.maxTokens = 12
            options.sampler = .greedy
            options.stopOnEOS = false
            options.recordLogits = true
            options.prefillChunk = 7   // chunks that cut across prompts
            let generator = Generator(model: model, tokenizer: nil)
            let (batch, _) = try generator.generate(prompts: prompts, options: options)
            for (i, p) in prompts.enumerated() {
                let (alone, _) = try generator.generate(prompts: [p], options: options)
                XCTAssertEqual(batch[i].generatedTokens, alone[0].generatedTokens, "\(config.architecture) prompt \(i)")
                XCTAssertEqual(batch[i].logitRows, p.count + options.maxTokens - 1)
                let diff = maxAbsDifference(batch[i].logits, alone[0].logits)
                XCTAssertLessThan(diff, Self.reassociationTolerance * maxAbs(alone[0].logits), "\(config.architecture) prompt \(i): \(diff)")
            }
        }
    }

    /// Our forward vs the independent NumPy implementation (Tests/GrokModelTests/Reference), on
    /// synthetic models in every dtype, with prompts past Grok-2's attention temperature length.
    func testMatchesIndependentNumPyImplementation() throws {
        let dir = try temporaryDirectory(self)
        for (config, dtypes) in [(Grok2.tiny, DType.allCases), (Grok1.tiny, [DType.f32, .bf16, .q4_0])] {
            for dtype in dtypes {
                let path = (dir as NSString).appendingPathComponent("\(config.architecture.rawValue)-\(dtype.name).gguf")
                try Synthesizer.write(config, dtype: dtype, seed: 11, name: "oracle", to: path)
                let model = try loadModel(path)
                let tokens = prompt(70, vocabulary: config.vocabularySize, salt: 4)
                let ours = try fullSequenceLogits(model, tokens)
                let theirs = try oracleLogits(model: path, tokens: tokens, directory: dir)
                let diff = maxAbsDifference(ours, theirs)
                XCTAssertLessThan(diff, 1e-3 * maxAbs(theirs), "\(config.architecture) \(dtype): max |Δ| \(diff)")
                print("oracle \(config.architecture.rawValue) \(dtype): max |Δlogit| \(diff), largest \(maxAbs(theirs))")
            }
        }
    }
}
