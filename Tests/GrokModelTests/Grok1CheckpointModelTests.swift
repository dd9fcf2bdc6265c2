import Foundation
import GrokCheckpoint
import GrokModel
import GrokRuntime
import GrokTensor
import GrokTopology
import XCTest

/// The reference tiny Grok-1 converted to the official `ckpt-0` layout (int8 weights with bf16
/// scales) and run through `Grok1Checkpoint`: same configuration and tokenizer as the GGUF; logits
/// those of the dequantized weights (up to the order of f32 sums), and close to the f32 original.
final class Grok1CheckpointModelTests: XCTestCase {
    static let reference = Fixture.path("grok1/grok1-tiny-ref-f32.gguf")
    static let prompt: [Int32] = [1, 39, 389, 34, 400, 364, 173, 290]   // Fixtures/grok1/prompt.json

    /// The reference GGUF and the checkpoint written from it.
    func converted() throws -> (gguf: GGUFFile, checkpoint: Grok1Checkpoint, directory: String) {
        let directory = try temporaryDirectory(self)
        let gguf = try GGUFFile(path: Self.reference)
        try Grok1CheckpointWriter.write(from: gguf, to: directory)
        return (gguf, try Grok1Checkpoint(directory: directory), directory)
    }

    /// The official values GrokCheckpoint falls back on without a config.json (run.py) describe
    /// the model GrokModel knows as `Grok1.config`.
    func testOfficialDefaultsAreGrok1Config() throws {
        var writer = GGUFWriter()
        for (key, value) in Grok1CheckpointConfig.official.ggufMetadata { writer.set(key, value) }
        let path = (try temporaryDirectory(self) as NSString).appendingPathComponent("official.gguf")
        try writer.write(to: path)
        XCTAssertEqual(try ModelConfig(gguf: GGUFFile(path: path)), Grok1.config)
    }

    func testSameConfigurationAndTokenizerAsTheGGUF() throws {
        let (gguf, checkpoint, _) = try converted()
        XCTAssertEqual(try ModelConfig(gguf: checkpoint.metadataFile), try ModelConfig(gguf: gguf))
        let mine = try XCTUnwrap(try ModelSource.tokenizer(of: checkpoint.metadataFile))
        let theirs = try XCTUnwrap(try ModelSource.tokenizer(of: gguf))
        XCTAssertEqual(mine.vocabularySize, 512)
        XCTAssertEqual([mine.bosID, mine.eosID], [theirs.bosID, theirs.eosID])
        for text in ["The answer to life, the universe and everything is 42.", "  two spaces\tand a tab\n\nnew lines",
                     "Ünïcödé: 漢字 → byte fallback", "<|separator|> user-defined pieces 0123456789", ""] {
            XCTAssertEqual(mine.encode(text, addBOS: false), theirs.encode(text, addBOS: false), text)
        }
    }

    /// A synthesized 12-layer model (layers in files 0, 1, 10, 11, 2, …) with a 4096-piece
    /// vocabulary: the same configuration and tokenizer as its GGUF, and a model runs from it.
    func testSynthesizedTwelveLayerModel() throws {
        var config = Grok1.tiny
        config.layerCount = 12
        config.vocabularySize = 4096
        let directory = try temporaryDirectory(self)
        let path = (directory as NSString).appendingPathComponent("grok-1-12.gguf")
        try Synthesizer.write(config, dtype: .f32, seed: 3, name: "grok-1-12", to: path)
        let gguf = try GGUFFile(path: path)
        try Grok1CheckpointWriter.write(from: gguf, to: directory)
        let checkpoint = try Grok1Checkpoint(directory: directory)
        XCTAssertEqual(try ModelConfig(gguf: checkpoint.metadataFile), config)
        let mine = try XCTUnwrap(try ModelSource.tokenizer(of: checkpoint.metadataFile))
        let theirs = try XCTUnwrap(try ModelSource.tokenizer(of: gguf))
        let text = "The quick brown fox jumps over the lazy dog 1234567890 times.\n\tÜnïcödé 漢字"
        XCTAssertEqual(mine.encode(text, addBOS: false), theirs.encode(text, addBOS: false))
        let model = try GrokModel(source: checkpoint, pool: ThreadPool(threads: 2))
        let logits = try fullSequenceLogits(model, theirs.encode(text, addBOS: false))
        XCTAssertEqual(logits.count, theirs.encode(text, addBOS: false).count * 4096)
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
    }

    /// Weight for weight, the checkpoint is int8 · scale: a model on an f32 GGUF of exactly those
    /// values gives the same logits up to the order of f32 sums (Q8_0 and f32 kernels).
    func testLogitsEqualTheDequantizedWeights() throws {
        let (gguf, checkpoint, directory) = try converted()
        let dequantized = (directory as NSString).appendingPathComponent("dequantized.gguf")
        var writer = GGUFWriter()
        for key in gguf.metadataKeys { writer.set(key, gguf.metadata[key]!) }
        for tensor in gguf.tensors {
            let experts = tensor.dims.count == 3 ? tensor.dims[2] : 1, rows = tensor.dims.count > 1 ? tensor.dims[1] : 1
            let info = try XCTUnwrap(checkpoint.tensor(tensor.name))
            let values = try (0..<experts).flatMap { e in
                Quantizer.dequantize(try checkpoint.block(tensor.name, expert: experts > 1 ? e : nil, rows: 0..<rows, columns: 0..<tensor.dims[0]),
                                     dtype: info.dtype, count: rows * tensor.dims[0])
            }
            writer.addTensor(name: tensor.name, dims: tensor.dims, dtype: .f32, bytes: values.withUnsafeBytes { Array($0) })
        }
        try writer.write(to: dequantized)

        let model = try GrokModel(source: checkpoint, pool: ThreadPool(threads: 2))
        let logits = try fullSequenceLogits(model, Self.prompt)
        let expected = try fullSequenceLogits(try loadModel(dequantized), Self.prompt)
        let diff = maxAbsDifference(logits, expected)
        XCTAssertLessThan(diff, 1e-4, "max |Δlogit| against the dequantized weights")
        print("grok-1 ckpt-0: max |Δlogit| against its dequantized weights in f32 \(diff)")

        var options = GenerationOptions()
        options.maxTokens = 16
        options.sampler = .greedy
        options.stopOnEOS = false
        let mine = try Generator(model: model, tokenizer: nil).generate(prompts: [Self.prompt], options: options).results
        let theirs = try Generator(model: try loadModel(dequantized), tokenizer: nil).generate(prompts: [Self.prompt], options: options).results
        XCTAssertEqual(mine[0].generatedTokens, theirs[0].generatedTokens)
    }

    /// Against the f32 original the difference is the int8 quantization of the weights (0.5-0.7%
    /// RMS of each matrix, measured: half a step of max|column| / 127 per weight), amplified by
    /// this tiny model's near-tied routing (its smallest 2nd/3rd expert gap is 4.5e-4, README):
    /// measured max |Δlogit| 0.72 and RMS 6.5% of the logits' RMS. For scale, llama.cpp's Q8_0 of
    /// the same f32 weights (blocks of 32, less error per weight) gives 1.59 and 12.5% on this
    /// prompt. Bound: max |Δlogit| < 1.0 (15% of the largest |logit|, 6.6) and RMS < 10%. Greedy
    /// decoding is not robust to this: it follows the f32 model for 8 tokens, then departs, so
    /// tokens are not compared.
    func testLogitsCloseToTheF32Original() throws {
        let (_, checkpoint, _) = try converted()
        let logits = try fullSequenceLogits(try GrokModel(source: checkpoint, pool: ThreadPool(threads: 2)), Self.prompt)
        let expected = try fullSequenceLogits(try loadModel(Self.reference), Self.prompt)
        func rms(_ a: [Float]) -> Float { (a.map { $0 * $0 }.reduce(0, +) / Float(a.count)).squareRoot() }
        let diff = maxAbsDifference(logits, expected), relative = rms(zip(logits, expected).map { $0 - $1 }) / rms(expected)
        XCTAssertLessThan(diff, 1.0)
        XCTAssertLessThan(relative, 0.1)
        print("grok-1 ckpt-0: max |Δlogit| against the f32 original \(diff), RMS \(relative) of the logits' (largest |logit| \(maxAbs(expected)))")
    }

    /// Every block tensor-parallel and expert-slicing layouts ask for equals the same rectangle of
    /// the whole tensor (row and column slices of transposed int8 weights and of the router).
    func testBlocksOfSlicedLayoutsEqualTheWholeTensor() throws {
        let (gguf, checkpoint, _) = try converted()
        let config = try ModelConfig(gguf: gguf)
        for layout in [Topology(worldSize: 2, stages: [.init(layers: 0..<4, ranks: [0, 1], experts: .slice)]),
                       Topology(worldSize: 4, stages: [.init(layers: 0..<4, ranks: Array(0..<4), tensorParallel: false, experts: .slice)])] {
            try layout.validate(shape: config.shape, worldSize: nil)
            for plan in layout.plans(shape: config.shape) {
                for block in WeightBlock.list(config: config, plan: plan) {
                    let info = try checkpoint.requireTensor(block.name, dims: block.dims)
                    let rows = block.dims.count > 1 ? block.dims[1] : 1
                    let whole = try checkpoint.block(block.name, expert: block.expert, rows: 0..<rows, columns: 0..<block.dims[0])
                    let rowBytes = info.dtype.rowBytes(block.dims[0])
                    let part = try checkpoint.block(block.name, expert: block.expert, rows: block.rows, columns: block.columns)
                    let expected = block.rows.flatMap { r in
                        Array(whole[r * rowBytes + info.dtype.rowBytes(block.columns.lowerBound) ..< r * rowBytes + info.dtype.rowBytes(block.columns.upperBound)])
                    }
                    XCTAssertEqual(Array(part), expected, "rank \(plan.rank) of \(layout.worldSize): \(block.label)")
                    checkpoint.release(part)
                    checkpoint.release(whole)
                }
            }
        }
    }
}
