import Foundation
import GrokCheckpoint
import GrokComm
import GrokModel
import GrokRuntime
import GrokTensor
import GrokTopology
import XCTest

/// Every shipped tiny layout, run in-process (threads as ranks behind the same Communicator the
/// MPI runs use), gives the single rank's greedy tokens and logits within 1e-4 of the largest.
final class DistributedTests: XCTestCase {
    static let tolerance: Float = 1e-4

    static var topologies: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Topologies").path
    }

    static var tinyTopologies: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: topologies)) ?? []
        return names.filter { $0.hasPrefix("tiny-") && $0.hasSuffix(".json") }.sorted().map { "\(topologies)/\($0)" }
    }

    func synthesize(_ config: ModelConfig, _ dtype: DType) throws -> String {
        let path = (try temporaryDirectory(self) as NSString).appendingPathComponent("model-\(dtype).gguf")
        try Synthesizer.write(config, dtype: dtype, seed: 5, name: "test", to: path)
        return path
    }

    /// Three prompts of different lengths, prefilled in chunks that cut across them, then decoded.
    static func prompts(vocabulary: Int) -> [[Int32]] {
        [5, 17, 9].enumerated().map { salt, count in (0..<count).map { Int32(($0 * 7919 + salt * 104_729 + 5) % vocabulary) } }
    }

    static var options: GenerationOptions {
        var options = GenerationOptions()
        options.maxTokens = 6
        options.sampler = .greedy
        options.stopOnEOS = false
        options.recordLogits = true
        options.prefillChunk = 7
        return options
    }

    func testEveryTinyTopologyEqualsSingleRank() throws {
        let layouts = Self.tinyTopologies
        XCTAssertGreaterThanOrEqual(layouts.count, 8, "tiny layouts in \(Self.topologies)")
        for config in [Grok1.tiny, Grok2.tiny] {
            for dtype in [DType.f32, .q8_0] {
                let path = try synthesize(config, dtype)
                let prompts = Self.prompts(vocabulary: config.vocabularySize)
                let single = try Generator(model: loadModel(path, threads: 1), tokenizer: nil)
                    .generate(prompts: prompts, options: Self.options).results
                for layout in layouts {
                    let name = "\(config.architecture) \(dtype) \((layout as NSString).lastPathComponent)"
                    let spread = try generateSpread(path, topology: layout, prompts: prompts, options: Self.options)
                    XCTAssertEqual(spread.count, prompts.count, name)
                    for (a, b) in zip(single, spread) {
                        XCTAssertEqual(a.generatedTokens, b.generatedTokens, name)
                        let diff = maxAbsDifference(a.logits, b.logits)
                        XCTAssertLessThan(diff, Self.tolerance * maxAbs(a.logits), "\(name): max |Δlogit| \(diff)")
                    }
                }
            }
        }
    }

    /// Layouts no shipped file has: rank 0 in the last stage, stage ranks listed out of order,
    /// three uneven stages, a stage of one rank between multi-rank ones, replicated attention with
    /// sliced experts.
    func testUnusualLayoutsEqualSingleRank() throws {
        let layouts = [
            #"{"worldSize": 2, "stages": [{"layers": "0-2", "ranks": [1]}, {"layers": "3", "ranks": [0]}]}"#,
            #"{"worldSize": 2, "stages": [{"layers": "0-3", "ranks": [1, 0], "experts": {"mode": "parallel", "rule": "round-robin"}}]}"#,
            #"{"worldSize": 5, "microBatches": 3, "stages": [{"layers": "0", "ranks": [4, 2]}, {"layers": "1-2", "ranks": [0]}, {"layers": "3", "ranks": [1, 3], "experts": {"mode": "slice"}}]}"#,
            #"{"worldSize": 2, "stages": [{"layers": "0-3", "ranks": [0, 1], "tensorParallel": false, "experts": {"mode": "slice"}}]}"#,
        ]
        let dir = try temporaryDirectory(self)
        for config in [Grok1.tiny, Grok2.tiny] {
            let path = try synthesize(config, .f32)
            let prompts = Self.prompts(vocabulary: config.vocabularySize)
            let single = try Generator(model: loadModel(path, threads: 1), tokenizer: nil).generate(prompts: prompts, options: Self.options).results
            for (i, json) in layouts.enumerated() {
                let file = "\(dir)/layout-\(i).json"
                try json.write(toFile: file, atomically: true, encoding: .utf8)
                let spread = try generateSpread(path, topology: file, prompts: prompts, options: Self.options)
                for (a, b) in zip(single, spread) {
                    XCTAssertEqual(a.generatedTokens, b.generatedTokens, "\(config.architecture) layout \(i)")
                    let diff = maxAbsDifference(a.logits, b.logits)
                    XCTAssertLessThan(diff, Self.tolerance * maxAbs(a.logits), "\(config.architecture) layout \(i): \(diff)")
                }
            }
        }
    }

    /// The expert-parallel stage really moves tokens with all-to-all, and every routed token is
    /// computed exactly once per chosen expert (counted across ranks).
    func testExpertParallelDispatchCountsEveryRoutedToken() throws {
        let config = Grok1.tiny
        let path = try synthesize(config, .f32)
        let prompts = Self.prompts(vocabulary: config.vocabularySize)
        let layout = "\(Self.topologies)/tiny-4r-ep4.json"
        var stats: [CommunicationStats] = []
        var tokens: [[Int: [Int: Int]]] = []
        _ = try generateSpread(path, topology: layout, prompts: prompts, options: Self.options) { model, s in
            stats.append(s)
            tokens.append(model.expertTokens)
        }
        let processed = prompts.map(\.count).reduce(0, +) + prompts.count * (Self.options.maxTokens - 1)
        for layer in 0..<config.layerCount {
            let total = tokens.map { $0[layer]?.values.reduce(0, +) ?? 0 }.reduce(0, +)
            XCTAssertEqual(total, processed * config.expertsPerToken, "layer \(layer)")
        }
        XCTAssertTrue(stats.allSatisfy { $0[.alltoall].calls > 0 })
    }

    /// Runs `prompts` with the model spread over the ranks of `topology` (threads as ranks):
    /// rank 0 drives the generator, the others serve. Returns rank 0's results.
    func generateSpread(_ path: String, topology: String, prompts: [[Int32]], options: GenerationOptions,
                        inspect: ((GrokModel, CommunicationStats) -> Void)? = nil) throws -> [SequenceResult] {
        let file = try GGUFFile(path: path)
        let shape = try ModelConfig(gguf: file).shape
        let layout = try Topology(contentsOf: topology)
        try layout.validate(shape: shape, worldSize: nil, source: topology)
        let lock = NSLock()
        let perRank = try LocalCommunicator.run(ranks: layout.worldSize) { local -> [SequenceResult] in
            let stats = CommunicationStats()
            let comm = InstrumentedCommunicator(local, stats: stats)
            let model = try GrokModel(source: file, plan: layout.plan(rank: comm.rank, shape: shape), pool: ThreadPool(threads: 1))
            try model.connect(comm)
            defer { lock.lock(); inspect?(model, stats); lock.unlock() }
            if comm.rank != 0 {
                _ = try ClusterWorker.serve(model, world: comm)
                return []
            }
            let cluster = ClusterModel(model: model, world: comm)
            do {
                let results = try Generator(model: cluster, tokenizer: nil).generate(prompts: prompts, options: options).results
                try cluster.finish()
                return results
            } catch {
                try? cluster.finish()
                throw error
            }
        }
        return perRank[0]
    }
}
