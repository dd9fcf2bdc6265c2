import Foundation
import GrokCheckpoint
import GrokModel
@testable import GrokRuntime
import GrokTensor
import XCTest

final class GeneratorTests: XCTestCase {
    /// A tiny synthetic Grok-1 with its tokenizer.
    func makeGenerator() throws -> Generator {
        let path = NSTemporaryDirectory() + "/gen-\(UUID().uuidString).gguf"
        try Synthesizer.write(Grok1.tiny, dtype: .f32, seed: 5, name: "gen", to: path)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        let file = try GGUFFile(path: path)
        return Generator(model: try GrokModel(source: file, pool: ThreadPool(threads: 1)), tokenizer: try ModelSource.tokenizer(of: file))
    }

    func testGenerationStopsAtTheContextLength() throws {
        let generator = try makeGenerator()
        var options = GenerationOptions()
        options.maxTokens = 20
        options.sampler = .greedy
        options.stopOnEOS = false
        let prompt = (0..<250).map { Int32(300 + $0 % 100) }
        let (results, _) = try generator.generate(prompts: [prompt], options: options)
        XCTAssertEqual(results[0].stopReason, .context)
        XCTAssertEqual(results[0].generatedTokens.count, 6, "positions 250..255 are the last of a 256 context")
        XCTAssertThrowsError(try generator.generate(prompts: [Array(repeating: 5, count: 257)], options: options)) {
            XCTAssertTrue("\($0)".contains("longer than the model's context length 256"), "\($0)")
        }
        XCTAssertThrowsError(try generator.generate(prompts: [[]], options: options))
    }

    /// What streams out is exactly the final text, chunk by chunk, for every sequence of a batch.
    func testStreamedTextEqualsFinalText() throws {
        let generator = try makeGenerator()
        var options = GenerationOptions()
        options.maxTokens = 40
        options.sampler.seed = 3
        options.sampler.temperature = 1.5   // wander through byte pieces and multi-byte characters
        options.sampler.topK = 0; options.sampler.topP = 1; options.sampler.minP = 0
        options.stopOnEOS = false
        let prompts = [[Int32(400), 401], [402], [403, 404, 405]]
        var streamed = ["", "", ""]
        let (results, timings) = try generator.generate(prompts: prompts, options: options) { s, text in streamed[s] += text }
        for s in prompts.indices {
            XCTAssertEqual(streamed[s], results[s].text)
            let bytes = results[s].generatedTokens.flatMap { generator.tokenizer!.bytes(of: $0) }
            XCTAssertEqual(results[s].text, String(decoding: bytes, as: UTF8.self), "streaming never splits or loses characters")
        }
        XCTAssertEqual(timings.generatedTokens, 120)
        XCTAssertEqual(timings.promptTokens, 6)
    }

    /// Stop strings are held back while they could still be forming, then cut.
    func testTextStreamHoldsBackPossibleStopStrings() throws {
        let tokenizer = try makeGenerator().tokenizer!
        let tokens = tokenizer.encode("hello world again", addBOS: false)
        let full = String(decoding: tokens.flatMap { tokenizer.bytes(of: $0) }, as: UTF8.self)
        var stream = TextStream(tokenizer: tokenizer, stops: ["wor"])
        var emitted = "", stopped = false
        for t in tokens {
            stopped = stream.push(t)
            emitted += stopped ? stream.finish() : stream.takeReady()
            XCTAssertFalse(emitted.contains("w") && !stopped, "a possible stop-string prefix was released: \(emitted)")
            if stopped { break }
        }
        XCTAssertTrue(stopped)
        XCTAssertEqual(emitted, String(full[..<full.range(of: "wor")!.lowerBound]))
        XCTAssertEqual(stream.text, emitted)
    }
}
