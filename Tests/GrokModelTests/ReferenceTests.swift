import Foundation
import GrokModel
import GrokRuntime
import GrokTensor
import XCTest

/// The single-rank forward against logits the official code produced (../shared/reference).
final class ReferenceTests: XCTestCase {
    /// Tiny Grok-1 vs xai-org/grok-1's JAX model.py run in float32: every prompt position, then
    /// 16 greedy tokens through the KV cache and the logits each was taken from.
    func testGrok1MatchesOfficialJAX() throws {
        let model = try loadModel(Fixture.path("grok1/grok1-tiny-ref-f32.gguf"))
        XCTAssertEqual(model.config.architecture, .grok1)
        XCTAssertEqual(model.config.routerSoftCap, 0, "the official Grok-1 has no router soft-cap")
        let prompt: [Int32] = [1, 39, 389, 34, 400, 364, 173, 290]
        let expected = try NPY.readFloat32(Fixture.path("grok1/jax-logits.npy"))
        XCTAssertEqual(expected.shape, [8, 512])
        let logits = try fullSequenceLogits(model, prompt)
        let bar = 1e-3 * maxAbs(expected.values)
        let diff = maxAbsDifference(logits, expected.values)
        XCTAssertLessThan(diff, bar, "prefill logits differ from JAX by \(diff)")
        print("grok-1 reference: max |Δlogit| prefill \(diff) (bar \(bar))")

        var options = GenerationOptions()
        options.maxTokens = 16
        options.sampler = .greedy
        options.stopOnEOS = false
        options.recordLogits = true
        let (results, _) = try Generator(model: model, tokenizer: nil).generate(prompts: [prompt], options: options)
        let greedy = try NPY.readInt32(Fixture.path("grok1/jax-greedy.npy")).values
        XCTAssertEqual(results[0].generatedTokens, greedy)
        let decodeExpected = try NPY.readFloat32(Fixture.path("grok1/jax-decode-logits.npy")).values
        // Rows: 8 prompt positions, then 15 fed-back tokens; JAX's decode rows start at the last prompt position.
        XCTAssertEqual(results[0].logitRows, 8 + 15)
        let decodeRows = Array(results[0].logits[(7 * 512)...])
        let decodeDiff = maxAbsDifference(decodeRows, decodeExpected)
        XCTAssertLessThan(decodeDiff, 1e-3 * maxAbs(decodeExpected))
        print("grok-1 reference: max |Δlogit| decode \(decodeDiff)")
    }

    /// Tiny Grok-2 (Q8_0) vs the reference computed under xAI's SGLang conventions.
    func testGrok2MatchesServingReference() throws {
        let model = try loadModel(Fixture.path("grok2/grok2-tiny-ref-q8_0.gguf"))
        XCTAssertEqual(model.config.architecture, .grok2)
        XCTAssertFalse(model.config.tiedEmbeddings)
        XCTAssertEqual(model.config.attentionTemperatureLength, 64)
        let prompt: [Int32] = [321, 475, 453, 284, 170, 66, 362, 112, 256, 477]
        let expected = try NPY.readFloat32(Fixture.path("grok2/logits.npy"))
        XCTAssertEqual(expected.shape, [10, 512])
        let logits = try fullSequenceLogits(model, prompt)
        let diff = maxAbsDifference(logits, expected.values)
        XCTAssertLessThan(diff, 1e-3 * maxAbs(expected.values), "logits differ from the reference by \(diff)")
        print("grok-2 reference: max |Δlogit| \(diff) (largest |logit| \(maxAbs(expected.values)))")

        var options = GenerationOptions()
        options.maxTokens = 16
        options.sampler = .greedy
        options.stopOnEOS = false
        let (results, _) = try Generator(model: model, tokenizer: nil).generate(prompts: [prompt], options: options)
        XCTAssertEqual(results[0].generatedTokens, try NPY.readInt32(Fixture.path("grok2/greedy.npy")).values)
    }
}
