import Foundation
import GrokCheckpoint
import GrokModel
import GrokRuntime
import GrokTopology
import XCTest

/// The cost model on cases computed by hand, and its memory figures for the real presets.
final class PlannerTests: XCTestCase {
    static let topologies = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Topologies")

    /// A profile with round numbers and no overheads: 1 GB/s for everything, α = 10 µs.
    static let simple = ClusterProfile(
        description: "hand-made", nodes: nil,
        node: .init(memoryBytes: 1 << 40, cores: 1, readBandwidth: [.init(threads: 1, bytesPerSecond: 1e9)],
                    kernels: [.init(dtype: "f32", threads: 1, matvecBytesPerSecond: 1e9, matmatFlopsPerSecond: 1e15)]),
        network: .init(collectives: ["pointToPoint", "allreduce", "allgather", "alltoallv", "broadcast"].map {
            .init(kind: $0, ranks: 2, alphaSeconds: 10e-6, bytesPerSecond: 1e9)
        }))

    func planner(_ layout: String, _ config: ModelConfig = Grok1.tiny) throws -> Planner {
        let model = try TopologyExplainer.model("grok-1-tiny", dtype: .f32)
        var m = model
        m.config = config
        return Planner(model: m, topology: try Topology(contentsOf: Self.topologies.appendingPathComponent(layout).path),
                       profile: Self.simple, threads: 1, ranksPerNode: 1)
    }

    /// One rank, batch 1: every weight but the experts is read once; exactly top-2 of 8 experts
    /// per layer; the KV cache of `context` positions; the token's activation; 1 GB/s.
    func testOneRankBatchOneReadsTheActiveWeights() throws {
        let c = Grok1.tiny
        let p = try planner("tiny-1r.json").predict(batch: 1, context: 10)
        let d = c.modelWidth, L = c.layerCount, F = c.expertFFNWidth
        let attention = L * (d * c.queryWidth * 2 + d * c.kvWidth * 2) * 4
        let router = L * c.expertCount * d * 4, norms = (4 * L + 1) * d * 4
        let head = c.vocabularySize * d * 4                      // tied: the embedding's rows are the head
        let experts = L * 2 * 3 * d * F * 4
        let kv = 10 * L * c.kvHeads * c.headDim * 4 * 2
        let bytes = Double(attention + router + norms + head + experts + kv + d * 4)
        XCTAssertEqual(p.ranks[0].bytesRead, bytes, accuracy: 1)
        XCTAssertEqual(p.computeSeconds, (bytes - Double(d * 4)) / 1e9, accuracy: 1e-12)   // the activation is counted read, not timed
        XCTAssertEqual(p.bubbleSeconds, 0)
        // One command broadcast (α + 8·7 bytes) is the only communication.
        XCTAssertEqual(p.communicationSeconds, 10e-6 + 56 / 1e9, accuracy: 1e-12)
        XCTAssertEqual(p.stepSeconds, p.computeSeconds + p.communicationSeconds, accuracy: 1e-12)
    }

    /// The collectives a TP2 + expert-parallel stage makes per step, as the forward pass does:
    /// an embedding join, an attention join and a moe combine per layer (allreduce), row counts
    /// and two all-to-alls per layer.
    func testCollectivesOfTensorAndExpertParallel() throws {
        let p = try planner("tiny-2r-tp2.json").predict(batch: 4, context: 8)
        for r in p.ranks {
            XCTAssertEqual(r.messages["allreduce"], 1 + 2 * 4)
            XCTAssertEqual(r.messages["alltoallv"], 3 * 4)
            XCTAssertEqual(r.bytesSent["allreduce"]!, 9 * 4 * 256 * 4, accuracy: 1e-6)
        }
        let sliced = try planner("tiny-2r-slice2.json").predict(batch: 4, context: 8)
        XCTAssertNil(sliced.ranks[0].messages["alltoallv"])
        XCTAssertEqual(sliced.ranks[0].messages["allreduce"], 1 + 2 * 4)
    }

    /// Every layer of a multi-rank stage ends in a collective, so a stage waits, layer by layer,
    /// for its slowest rank: Σ over layers of the max, not the max of the sums.
    func testStageWaitsForItsSlowestRankInEveryLayer() {
        // Two ranks, one draw, two layers and the rest: rank 0 is slow in layer 0, rank 1 in layer 1.
        let ranks: [[[Double]]] = [[[3, 1, 0.5]], [[1, 2, 0.5]]]
        XCTAssertEqual(Planner.synchronised(ranks), 3 + 2 + 0.5)
        // Draws are averaged.
        XCTAssertEqual(Planner.synchronised([[[1, 1], [3, 3]], [[2, 2], [1, 1]]]), ((2 + 2) + (3 + 3)) / 2)
    }

    /// The direct path's rate is interpolated over row lengths on a log scale, flat beyond the
    /// measured ones; a measurement without a row length counts as `ClusterProfile.kernelColumns`.
    func testDirectRateFollowsRowLength() {
        var profile = Self.simple
        profile.node.kernels = [.init(dtype: "q8_0", threads: 1, matvecBytesPerSecond: 32, matmatFlopsPerSecond: 1,
                                      direct: [.init(tokens: 1, bytesPerSecond: 32), .init(tokens: 2, bytesPerSecond: 16),
                                               .init(tokens: 1, bytesPerSecond: 16, columns: 1024), .init(tokens: 2, bytesPerSecond: 8, columns: 1024)])]
        XCTAssertEqual(ClusterProfile.kernelColumns, 4096)
        XCTAssertEqual(profile.directRate("q8_0", threads: 1, tokens: 1, columns: 4096), 32)
        XCTAssertEqual(profile.directRate("q8_0", threads: 1, tokens: 1, columns: 2048)!, 24, accuracy: 1e-12)
        XCTAssertEqual(profile.directRate("q8_0", threads: 1, tokens: 1.5, columns: 1024)!, 12, accuracy: 1e-12)
        XCTAssertEqual(profile.directRate("q8_0", threads: 1, tokens: 1, columns: 512), 16)
        XCTAssertEqual(profile.directRate("q8_0", threads: 1, tokens: 1, columns: 6144), 32)
        XCTAssertNil(profile.directRate("f32", threads: 1, tokens: 1, columns: 4096))
    }

    /// With the workload's routing trace, a step's experts are the trace's: when every token
    /// picks experts 0 and 1 (both on rank 0 of tiny-2r-ep2), rank 0 reads two experts in every
    /// layer while rank 1 reads none, and the step takes one expert's read per layer longer than
    /// when tokens pick 0 and 4 (one on each rank).
    func testRoutingTraceDecidesWhichRanksWork() throws {
        let c = Grok1.tiny
        func trace(_ pair: [Int]) -> RoutingTrace {
            RoutingTrace(experts: c.expertCount, perToken: Array(repeating: Array(repeating: pair, count: c.layerCount), count: 5))
        }
        var hot = try planner("tiny-2r-ep2.json"), split = hot
        hot.routing = trace([0, 1])
        split.routing = trace([0, 4])
        let h = try hot.predict(batch: 1, context: 8), s = try split.predict(batch: 1, context: 8)
        let expert = Double(3 * c.modelWidth * c.expertFFNWidth * 4) / 1e9          // one expert's f32 bytes at 1 GB/s
        XCTAssertEqual(h.stepSeconds - s.stepSeconds, Double(c.layerCount) * expert, accuracy: 1e-12)
        XCTAssertEqual(h.ranks[1].bytesRead + Double(c.layerCount) * 2 * expert * 1e9, h.ranks[0].bytesRead, accuracy: 1)
        XCTAssertTrue(h.bottleneck.hasPrefix("expert imbalance in stage 0: rank 0 holds 8 hot experts; the busiest rank"), h.bottleneck)
        XCTAssertEqual(h.ranks.map(\.hotExperts), [8, 0])         // experts 0 and 1 of each of 4 layers
        // Uniform routing lies between the two.
        let uniform = try planner("tiny-2r-ep2.json").predict(batch: 1, context: 8)
        XCTAssertEqual(uniform.ranks.map(\.hotExperts), [0, 0])   // uniform routing has no hot experts
        XCTAssertGreaterThan(uniform.stepSeconds, s.stepSeconds)
        XCTAssertLessThan(uniform.stepSeconds, h.stepSeconds)
    }

    /// A trace of another model is refused in one line naming it and what differs.
    func testRoutingTraceOfAnotherModelIsRefused() throws {
        var p = try planner("tiny-1r.json")
        p.routing = RoutingTrace(experts: 8, perToken: [[[0, 1], [0, 1], [0, 1]]])
        XCTAssertThrowsError(try p.predict(batch: 1, context: 8)) { error in
            XCTAssertEqual("\(error)", "trace (in memory): 3 layers, 8 experts, top-2, but model grok-1-tiny has 4, 8, top-2")
        }
    }

    /// Two stages at batch 1: the stages run one after the other, the second waits (bubble), and
    /// the activations cross once.
    func testPipelineBubbleAtBatchOne() throws {
        let p = try planner("tiny-2r-pp2.json").predict(batch: 1, context: 8)
        XCTAssertEqual(p.microBatches, 1)
        XCTAssertGreaterThan(p.bubbleSeconds, 0.3 * p.stepSeconds)
        XCTAssertEqual(p.ranks[0].messages["pointToPoint"], 1)
        XCTAssertNil(p.ranks[1].messages["pointToPoint"])
    }

    /// Real presets: the planner's memory equals explain's bytes, and the KV cache per token
    /// follows §4/§6 (Grok-1: 64 layers × 8 KV heads × 128 × 2 × 4 bytes over the ranks).
    func testRealPresetMemory() throws {
        let model = try TopologyExplainer.model("grok-1", dtype: .q8_0)
        let layout = try Topology(contentsOf: Self.topologies.appendingPathComponent("grok1-q8-8n.json").path)
        let planner = Planner(model: model, topology: layout, profile: .default, threads: 64, ranksPerNode: 1)
        let p = try planner.predict(batch: 1, context: 1000)
        let explained = try TopologyExplainer.explain(layout, model: model)
        for (r, rank) in zip(p.ranks, explained.ranks) {
            XCTAssertEqual(r.weightBytes, rank.bytes.total)
            XCTAssertEqual(r.kvCacheBytes, 1000 * 64 * 1 * 128 * 2 * 4)   // one KV head per rank
        }
        XCTAssertTrue(p.fitsInMemory)
        XCTAssertEqual(Double(p.ranks.map(\.weightBytes).reduce(0, +)) / 1e9, 335.5, accuracy: 0.5)   // §4: Grok-1 Q8_0 ≈ 335 GB
        // At batch 1 a rank reads its eighth of the active weights: about 86B active parameters (§4).
        XCTAssertEqual(p.ranks[0].bytesRead / 1e9, 11.2, accuracy: 0.6)
    }
}

/// `grok plan --search` over the tiny model.
final class PlanSearchTests: XCTestCase {
    func testSearchRanksLayoutsAndWritesAValidWinner() throws {
        let model = try TopologyExplainer.model("grok-1-tiny", dtype: .f32)
        var profile = PlannerTests.simple
        let all = try PlanSearch.candidates(model: model, profile: profile, maxNodes: 4, batch: 1, context: 16, threads: 1)
        // 1 node; 2 nodes: 1 or 2 stages × TP on/off × slice/parallel; 4 nodes likewise (8 heads, 2 KV heads, 4 layers).
        XCTAssertGreaterThanOrEqual(all.count, 9)
        XCTAssertEqual(PlanSearch.rank(all, goal: .fit, maxLatency: nil).first?.nodes, 1)
        let fastest = try XCTUnwrap(PlanSearch.rank(all, goal: .latency, maxLatency: nil).first)
        XCTAssertTrue(all.allSatisfy { $0.prediction.stepSeconds >= fastest.prediction.stepSeconds })
        // A node too small for the whole model: the fewest nodes that fit are more than one.
        profile.node.memoryBytes = 8 << 20
        let small = try PlanSearch.candidates(model: model, profile: profile, maxNodes: 4, batch: 1, context: 16, threads: 1)
        XCTAssertGreaterThan(PlanSearch.rank(small, goal: .fit, maxLatency: nil).first?.nodes ?? 0, 1)
        // The winner as a file is a layout the runtime accepts.
        let text = PlanSearch.json(fastest.topology, reason: "test")
        let parsed = try Topology(json: Data(text.utf8), source: "winner.json")
        try parsed.validate(shape: model.config.shape, worldSize: fastest.nodes, source: "winner.json")
        XCTAssertEqual(parsed.stages.map(\.layers), fastest.topology.stages.map(\.layers))
    }
}
