import Foundation
import GrokModel
import GrokRuntime
import GrokTopology
import XCTest

/// Every file in Topologies/ parses and fits the models it is written for.
final class ShippedTopologyTests: XCTestCase {
    func jsonFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: topologiesDirectory).filter { $0.hasSuffix(".json") }.sorted()
    }

    func testTheDocumentedFilesAreShipped() throws {
        let expected = ["tiny-1r.json", "tiny-2r-tp2.json", "tiny-4r-tp4.json", "tiny-4r-ep4.json", "tiny-2r-slice2.json",
                        "tiny-2r-pp2.json", "tiny-4r-pp2-tp2.json", "tiny-8r-mixed.json", "tiny-2r-ep2.json",
                        "grok1-q8-4n.json", "grok1-q8-8n.json", "grok1-q8-16n.json", "grok2-q8-8n.json", "grok2-q8-16n.json"]
        let files = Set(try jsonFiles())
        for name in expected { XCTAssertTrue(files.contains(name), name) }
        let readme = try String(contentsOfFile: topologiesDirectory + "/README.md", encoding: .utf8)
        for name in files { XCTAssertTrue(readme.contains(name), "README.md describes \(name)") }
    }

    func testEveryTinyFileValidatesForBothTinyModels() throws {
        let tiny = try jsonFiles().filter { $0.hasPrefix("tiny-") }
        XCTAssertGreaterThanOrEqual(tiny.count, 9)
        for name in tiny {
            let t = try shipped(name)
            XCTAssertFalse(t.description.isEmpty, name)
            let ranks = Int(name.dropFirst(5).prefix { $0.isNumber })!
            XCTAssertEqual(t.worldSize, ranks, "\(name): the name gives the rank count")
            for (model, shape) in tinyShapes {
                XCTAssertNoThrow(try t.validate(shape: shape, worldSize: t.worldSize), "\(name) for \(model)")
                XCTAssertThrowsError(try t.validate(shape: shape, worldSize: t.worldSize + 1))
                // Every derived plan is self-consistent: each (layer, expert) held somewhere, heads covered.
                let plans = t.plans(shape: shape)
                for stage in plans[0].stages {
                    let members = plans.filter { $0.stage == stage.index }
                    for l in stage.layers {
                        let held = Set(members.flatMap { $0.experts[l]! })
                        XCTAssertEqual(held, Set(0..<shape.experts), "\(name) \(model): layer \(l)")
                    }
                    let heads = members.flatMap { Array($0.queryHeads) }
                    XCTAssertEqual(Set(heads), Set(0..<shape.queryHeads), "\(name) \(model): stage \(stage.index) heads")
                    XCTAssertEqual(Set(members.flatMap { Array($0.kvHeads) }), Set(0..<shape.kvHeads))
                }
                // Vocabulary rows tile the vocabulary on the first and on the last stage.
                XCTAssertEqual(plans.map(\.embeddingRows.count).reduce(0, +), shape.vocabulary)
                XCTAssertEqual(plans.map(\.outputRows.count).reduce(0, +), shape.vocabulary)
                // And the bytes can be computed in Q8_0 (slices fall on blocks).
                let m = try TopologyExplainer.model(model, dtype: .q8_0)
                XCTAssertNoThrow(try TopologyExplainer.explain(t, model: m), "\(name) \(model) in Q8_0")
            }
        }
    }

    /// The real layouts validate for their model and leave room on 128 GiB nodes.
    func testRealLayoutsFitTheirNodes() throws {
        let real = try jsonFiles().filter { $0.hasPrefix("grok") }
        XCTAssertGreaterThanOrEqual(real.count, 5)
        for name in real {
            let t = try shipped(name)
            let preset = name.hasPrefix("grok1") ? "grok-1" : "grok-2"
            XCTAssertEqual(t.model, preset, name)
            let nodes = Int(name.split(separator: "-")[2].prefix { $0.isNumber })!
            XCTAssertEqual(t.worldSize, nodes, name)
            let e = try TopologyExplainer.explain(t, model: try TopologyExplainer.model(preset, dtype: nil))
            XCTAssertEqual(e.model.tensorsByDType["Q8_0"], e.model.tensorsByDType.values.reduce(0, +) - e.model.tensorsByDType["F32"]!)
            let gib = Double(e.totals.maxBytes) / Double(1 << 30)
            XCTAssertLessThan(gib, 100, "\(name): \(gib) GiB of weights on one rank leaves too little of 128 GiB")
            // Room for at least one full-context sequence of KV cache beside the weights and ~8 GiB for the OS.
            let config = ModelConfig.preset(preset)!
            let kv = Double(e.totals.maxKVCacheBytesPerToken * config.contextLength) / Double(1 << 30)
            XCTAssertLessThan(gib + kv + 8, 128, name)
        }
        // Grok-1 Q8_0 is ~335 GB, Grok-2 ~286 GB (grok-architecture.md §4, §6).
        let g1 = try TopologyExplainer.explain(try shipped("grok1-q8-8n.json"), model: try TopologyExplainer.model("grok-1", dtype: nil))
        XCTAssertEqual(Double(g1.model.bytes) / 1e9, 335.4, accuracy: 0.1)
        let g2 = try TopologyExplainer.explain(try shipped("grok2-q8-8n.json"), model: try TopologyExplainer.model("grok-2", dtype: nil))
        XCTAssertEqual(Double(g2.model.bytes) / 1e9, 286.4, accuracy: 0.1)
    }

    /// 12-way tensor parallelism divides Grok-1's 48 query heads, but a rank's 4 heads would straddle
    /// two KV groups of 6; 16-way (3 heads, each KV head on 2 ranks) is fine for both models.
    func testTwelveWayTensorParallelismCannotSplitGrok1() throws {
        let t = try parse("""
            {"worldSize": 12, "stages": [{"layers": "0-63", "ranks": [0,1,2,3,4,5,6,7,8,9,10,11]}]}
            """)
        XCTAssertEqual(message { try t.validate(shape: Grok1.config.shape, worldSize: 12) },
                       "topology t.json: stages[0]: tensor-parallel size 12 is larger than the 8 KV heads but not a multiple of them (the query heads of a rank must share one KV head)")
        XCTAssertNoThrow(try shipped("grok1-q8-16n.json").validate(shape: Grok2.config.shape, worldSize: 16))
    }
}
