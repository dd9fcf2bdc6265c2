import Foundation
import GrokCheckpoint
import GrokModel
import GrokRuntime
import GrokTensor
import GrokTopology
import XCTest

/// The bytes of weights a rank holds, against files and hand computations.
final class ShardBytesTests: XCTestCase {
    func synthesize(_ config: ModelConfig, _ dtype: DType) throws -> String {
        let path = NSTemporaryDirectory() + "/topo-\(UUID().uuidString).gguf"
        try Synthesizer.write(config, dtype: dtype, seed: 3, name: "topology-test", to: path)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// One rank holds exactly the file's tensors, each once (Grok-1's tied head included).
    func testOneRankHoldsEveryTensorOfTheFile() throws {
        for config in [Grok1.tiny, Grok2.tiny] {
            for dtype in [DType.f32, .q8_0, .q4_0] {
                let path = try synthesize(config, dtype)
                let file = try GGUFFile(path: path)
                let model = try TopologyExplainer.Model.file(path)
                let plan = Topology.singleRank(layers: config.layerCount).plan(rank: 0, shape: config.shape)
                let bytes = try ShardBytes.perRank(config: config, plan: plan, dtypeOf: model.dtype(of:))
                let fileBytes = file.tensors.map(\.byteCount).reduce(0, +)
                XCTAssertEqual(bytes.total, fileBytes, "\(config.architecture) \(dtype)")
                XCTAssertEqual(try ShardBytes.model(config: config, dtypeOf: model.dtype(of:)), fileBytes)
                XCTAssertEqual(ShardBytes.tensors(of: config).count, file.tensors.count)
                // A preset of the same dtype gives the same bytes as the file.
                let preset = try TopologyExplainer.Model.preset("p", config: config, matrixType: dtype)
                XCTAssertEqual(try ShardBytes.perRank(config: config, plan: plan, dtypeOf: preset.dtype(of:)), bytes)
            }
        }
    }

    /// grok-1-tiny in F32 on tiny-2r-tp2, by hand: d 256, 4 of 8 heads of 32, 1 of 2 KV heads, 4 of 8 experts
    /// of width 128, half the (tied) vocabulary of 512.
    func testTwoRankTensorParallelGrok1ByHand() throws {
        let t = try shipped("tiny-2r-tp2.json")
        let model = try TopologyExplainer.model("grok-1-tiny", dtype: nil)   // F32 by default
        let plan = t.plan(rank: 0, shape: Grok1.tiny.shape)
        let b = try ShardBytes.perRank(config: Grok1.tiny, plan: plan, dtypeOf: model.dtype(of:))
        let f = 4
        let attention = 128 * 256 * f + 2 * (32 * 256 * f) + 256 * 128 * f                 // q rows, k/v rows, o columns
        XCTAssertEqual(b.attention, 4 * attention)
        XCTAssertEqual(b.experts, 4 * 4 * (128 * 256 * f * 2 + 256 * 128 * f))
        XCTAssertEqual(b.dense, 0)
        XCTAssertEqual(b.router, 4 * 8 * 256 * f)
        XCTAssertEqual(b.norms, 4 * 4 * 256 * f + 256 * f)
        XCTAssertEqual(b.embedding, 256 * 256 * f)
        XCTAssertEqual(b.output, 0, "tied: the output rows are the embedding rows already counted")
        XCTAssertEqual(b.total, 7_914_496)
        // The two ranks together hold one copy plus a second copy of routers and norms.
        let e = try TopologyExplainer.explain(t, model: model)
        XCTAssertEqual(e.totals.bytes, e.totals.modelBytes + 4 * 8 * 256 * f + 4 * 4 * 256 * f + 256 * f)
        XCTAssertEqual(e.totals.modelBytes, 15_778_816)
    }

    /// grok-2-tiny in Q8_0 (a row of 256 is 8 blocks of 34 bytes; of 128, 4 blocks) on rank 0 of tiny-2r-tp2.
    func testTwoRankTensorParallelGrok2InQ8ByHand() throws {
        let t = try shipped("tiny-2r-tp2.json")
        let model = try TopologyExplainer.model("grok-2-tiny", dtype: .q8_0)
        let b = try ShardBytes.perRank(config: Grok2.tiny, plan: t.plan(rank: 0, shape: Grok2.tiny.shape), dtypeOf: model.dtype(of:))
        let row256 = 272, row128 = 136
        XCTAssertEqual(b.attention, 4 * (128 * row256 + 2 * 64 * row256 + 256 * row128))
        XCTAssertEqual(b.experts, 4 * 4 * (2 * 128 * row256 + 256 * row128))
        XCTAssertEqual(b.dense, 4 * (2 * 128 * row256 + 256 * row128))
        XCTAssertEqual(b.router, 4 * 8 * 1024, "the router stays F32")
        XCTAssertEqual(b.norms, 17 * 1024)
        XCTAssertEqual(b.embedding, 256 * row256)
        XCTAssertEqual(b.output, 256 * row256, "untied: output.weight rows")
        XCTAssertEqual(b.total, 2_696_192)
    }

    /// Replicas count on every rank that holds them; slices count their columns.
    func testMixedLayoutBytes() throws {
        let e = try TopologyExplainer.explain(try shipped("tiny-8r-mixed.json"), model: try TopologyExplainer.model("grok-1-tiny", dtype: nil))
        let expert = 3 * 128 * 256 * 4   // one whole F32 expert of layer: gate, up, down
        XCTAssertEqual(e.ranks.map(\.bytes.experts), [5, 5, 4, 4].map { $0 * expert } + Array(repeating: 2 * 8 * expert / 4, count: 4))
        XCTAssertEqual(e.ranks[0].replicatedExperts, ["0": [7]])
        XCTAssertEqual(e.ranks[1].replicatedExperts, ["1": [0]])
        XCTAssertEqual(e.totals.maxRank, 0)
        XCTAssertEqual(e.ranks[4].bytes.embedding, 0)
        XCTAssertEqual(e.ranks[4].bytes.output, 128 * 256 * 4)
        XCTAssertEqual(e.ranks.map(\.kvCacheBytesPerToken), Array(repeating: 2 * 2 * 32 * 4, count: 8))
    }

    /// A slice that cuts through quantization blocks is an error naming the rank and tensor.
    func testSlicesMustFallOnBlocks() throws {
        let t = try parse("""
            {"worldSize": 8, "stages": [{"layers": "0-3", "ranks": [0,1,2,3,4,5,6,7], "tensorParallel": false, "experts": {"mode": "slice"}}]}
            """)
        XCTAssertNoThrow(try TopologyExplainer.explain(t, model: try TopologyExplainer.model("grok-1-tiny", dtype: .f32)))
        XCTAssertEqual(message { _ = try TopologyExplainer.explain(t, model: try TopologyExplainer.model("grok-1-tiny", dtype: .q8_0)) },
                       "topology t.json: rank 0 holds columns 0-15 of blk.0.ffn_down_exps.weight, which is Q8_0: a slice must start and end on its blocks of 32")
    }

    func testModelArgument() throws {
        XCTAssertEqual(try TopologyExplainer.model("grok-1", dtype: nil).dtypes["blk.0.attn_q.weight"], .q8_0)
        XCTAssertEqual(try TopologyExplainer.model("grok-1", dtype: nil).dtypes["blk.0.ffn_gate_inp.weight"], .f32)
        XCTAssertEqual(try TopologyExplainer.model("grok-2-small", dtype: nil).dtypes["blk.0.ffn_up.weight"], .f32)
        XCTAssertEqual(message { _ = try TopologyExplainer.model("grok-3", dtype: nil) },
                       #"--model: "grok-3" is neither a file nor a preset (grok-1, grok-1-small, grok-1-tiny, grok-2, grok-2-small, grok-2-tiny, or embedded)"#)
        XCTAssertEqual(try TopologyExplainer.model("embedded", dtype: nil).config, ModelSource.embeddedConfig)
        let path = try synthesize(Grok1.tiny, .f32)
        XCTAssertTrue(message { _ = try TopologyExplainer.model(path, dtype: .q8_0) }.hasPrefix("--dtype q8_0: only for presets"))
    }

    func testTextAndJSON() throws {
        let e = try TopologyExplainer.explain(try shipped("tiny-8r-mixed.json"), model: try TopologyExplainer.model("grok-1-tiny", dtype: nil))
        let text = TopologyExplainer.text(e)
        for piece in ["8 ranks in 2 stages, 4 micro-batches", "1, each KV head on 2 ranks",
                      "parallel: explicit placement, layer 1 overridden, 2 replicas",
                      "slice: over 4 ranks, 32 of the 128 columns of every expert each",
                      "L0 e0-1,7* | L1 e4-5", "e0-7 (all layers)", "busiest rank 0:"] {
            XCTAssertTrue(text.contains(piece), piece + "\n" + text)
        }
        let json = try TopologyExplainer.json(e)
        XCTAssertEqual(try JSONDecoder().decode(TopologyExplanation.self, from: Data(json.utf8)), e)
        XCTAssertTrue(json.contains(#""embeddingRows" : [\#n        0,\#n        128\#n      ]"#), json)
    }
}
