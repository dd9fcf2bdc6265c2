import Foundation
import GrokModel
import GrokTopology
import XCTest

/// Derived plans, checked by hand against the rules in Topologies/README.md.
final class PlanTests: XCTestCase {
    let g1 = Grok1.tiny.shape   // 4 layers, 8/2 heads, 8 experts × 128, vocabulary 512
    let g2 = Grok2.tiny.shape   // 4 layers, 8/4 heads, 8 experts × 128, dense 256, vocabulary 512

    func testOneRankPlanIsTheWholeModel() throws {
        for shape in [g1, g2, Grok1.config.shape, Grok2.config.shape] {
            let t = try shipped("tiny-1r.json")
            if shape.layers == 4 {
                try t.validate(shape: shape, worldSize: 1)
                XCTAssertEqual(t.plan(rank: 0, shape: shape), RankPlan.whole(shape))
            }
            let single = Topology.singleRank(layers: shape.layers)
            try single.validate(shape: shape, worldSize: 1)
            XCTAssertEqual(single.plan(rank: 0, shape: shape), RankPlan.whole(shape))
        }
        // Slice mode or tensorParallel on one rank split nothing: still the whole model.
        let t = try parse("""
            {"worldSize": 1, "stages": [{"layers": "0-3", "ranks": [0], "tensorParallel": true, "experts": {"mode": "slice"}}]}
            """)
        try t.validate(shape: g2, worldSize: 1)
        XCTAssertEqual(t.plan(rank: 0, shape: g2), RankPlan.whole(g2))
    }

    func testFourWayTensorParallelismReplicatesGrok1KVHeads() throws {
        let t = try shipped("tiny-4r-tp4.json")
        let plans = (0..<4).map { t.plan(rank: $0, shape: g1) }
        XCTAssertEqual(plans.map(\.queryHeads), [0..<2, 2..<4, 4..<6, 6..<8])
        XCTAssertEqual(plans.map(\.kvHeads), [0..<1, 0..<1, 1..<2, 1..<2], "query heads 0-3 use KV head 0, 4-7 KV head 1")
        XCTAssertEqual(plans.map(\.denseColumns), Array(repeating: 0..<0, count: 4))
        XCTAssertEqual(plans.map(\.expertColumns), Array(repeating: 0..<128, count: 4))
        XCTAssertEqual(plans.map { $0.experts[2]! }, [[0, 1], [2, 3], [4, 5], [6, 7]], "contiguous: expert e on rank e·4/8")
        XCTAssertEqual(plans.map(\.embeddingRows), [0..<128, 128..<256, 256..<384, 384..<512])
        XCTAssertEqual(plans.map(\.outputRows), plans.map(\.embeddingRows))
        XCTAssertEqual(plans[0].microBatches, 1)
        XCTAssertTrue(plans[0].stagePlan.tensorParallel)
        XCTAssertEqual(plans[0].stagePlan.tensorParallelSize, 4)

        let p2 = (0..<4).map { t.plan(rank: $0, shape: g2) }
        XCTAssertEqual(p2.map(\.kvHeads), [0..<1, 1..<2, 2..<3, 3..<4], "grok-2-tiny: one of 4 KV heads each")
        XCTAssertEqual(p2.map(\.denseColumns), [0..<64, 64..<128, 128..<192, 192..<256])
    }

    func testTwoWayTensorParallelism() throws {
        let t = try shipped("tiny-2r-tp2.json")
        XCTAssertEqual((0..<2).map { t.plan(rank: $0, shape: g1).kvHeads }, [0..<1, 1..<2])
        XCTAssertEqual((0..<2).map { t.plan(rank: $0, shape: g2).kvHeads }, [0..<2, 2..<4])
        XCTAssertEqual((0..<2).map { t.plan(rank: $0, shape: g2).denseColumns }, [0..<128, 128..<256])
        XCTAssertEqual((0..<2).map { t.plan(rank: $0, shape: g2).experts[0]! }, [[0, 1, 2, 3], [4, 5, 6, 7]])
    }

    func testSliceModeSplitsEveryExpertsColumns() throws {
        let t = try shipped("tiny-2r-slice2.json")
        let plans = (0..<2).map { t.plan(rank: $0, shape: g2) }
        XCTAssertEqual(plans.map(\.expertColumns), [0..<64, 64..<128])
        for p in plans {
            XCTAssertEqual(p.stagePlan.expertMode, .slice)
            for l in 0..<4 {
                XCTAssertEqual(p.experts[l], Array(0..<8))
                XCTAssertEqual(p.stagePlan.placement[l], Array(repeating: [0, 1], count: 8))
            }
        }
        XCTAssertEqual(plans.map(\.queryHeads), [0..<4, 4..<8])
    }

    func testRoundRobinPlacement() throws {
        let t = try shipped("tiny-4r-ep4.json")
        XCTAssertEqual((0..<4).map { t.plan(rank: $0, shape: g1).experts[3]! }, [[0, 4], [1, 5], [2, 6], [3, 7]])
        XCTAssertEqual(t.plan(rank: 0, shape: g1).stagePlan.placement[0], [[0], [1], [2], [3], [0], [1], [2], [3]])
    }

    func testContiguousRuleWithRanksThatDoNotDivideTheExperts() throws {
        let t = try parse("""
            {"worldSize": 3, "stages": [{"layers": "0-3", "ranks": [2, 0, 1], "tensorParallel": false}]}
            """)
        try t.validate(shape: g1, worldSize: 3)
        // Expert e on stage rank e·3/8: stage ranks 0,0,0,1,1,1,2,2 = world ranks 2,2,2,0,0,0,1,1.
        XCTAssertEqual(t.plan(rank: 2, shape: g1).experts[0], [0, 1, 2])
        XCTAssertEqual(t.plan(rank: 0, shape: g1).experts[0], [3, 4, 5])
        XCTAssertEqual(t.plan(rank: 1, shape: g1).experts[0], [6, 7])
        // Not tensor-parallel: every rank has every head; the vocabulary still splits by stage position.
        XCTAssertEqual(t.plan(rank: 0, shape: g1).queryHeads, 0..<8)
        XCTAssertEqual(t.plan(rank: 0, shape: g1).kvHeads, 0..<2)
        XCTAssertEqual(t.plan(rank: 2, shape: g1).embeddingRows, 0..<170)
        XCTAssertEqual(t.plan(rank: 0, shape: g1).embeddingRows, 170..<341)
        XCTAssertEqual(t.plan(rank: 1, shape: g1).outputRows, 341..<512)
    }

    func testReplicatedAttentionWithExpertParallelism() throws {
        let t = try shipped("tiny-2r-ep2.json")
        for rank in 0..<2 {
            let p = t.plan(rank: rank, shape: g2)
            XCTAssertFalse(p.stagePlan.tensorParallel)
            XCTAssertEqual(p.queryHeads, 0..<8)
            XCTAssertEqual(p.kvHeads, 0..<4)
            XCTAssertEqual(p.denseColumns, 0..<256)
            XCTAssertEqual(p.expertColumns, 0..<128)
            XCTAssertEqual(p.experts[1], rank == 0 ? [0, 1, 2, 3] : [4, 5, 6, 7])
        }
    }

    func testEmbeddingOnTheFirstStageOutputOnTheLast() throws {
        let t = try shipped("tiny-4r-pp2-tp2.json")
        let plans = (0..<4).map { t.plan(rank: $0, shape: g1) }
        XCTAssertEqual(plans.map(\.stage), [0, 0, 1, 1])
        XCTAssertEqual(plans.map(\.layers), [0..<2, 0..<2, 2..<4, 2..<4])
        XCTAssertEqual(plans.map(\.embeddingRows), [0..<256, 256..<512, 0..<0, 0..<0])
        XCTAssertEqual(plans.map(\.outputRows), [0..<0, 0..<0, 0..<256, 256..<512])
        XCTAssertEqual(plans.map(\.microBatches), [2, 2, 2, 2], "default: one micro-batch per stage")
        XCTAssertEqual(plans[2].queryHeads, 0..<4, "heads split inside each stage")
        XCTAssertEqual(plans[2].experts.keys.sorted(), [2, 3], "experts only for the stage's layers")
        XCTAssertEqual(plans[3].experts[3], [4, 5, 6, 7])

        let pp = try shipped("tiny-2r-pp2.json")
        let p0 = pp.plan(rank: 0, shape: g1), p1 = pp.plan(rank: 1, shape: g1)
        XCTAssertEqual([p0.embeddingRows, p0.outputRows, p1.embeddingRows, p1.outputRows], [0..<512, 0..<0, 0..<0, 0..<512])
        XCTAssertTrue(p0.isFirstStage && !p0.isLastStage && p1.isLastStage)
        XCTAssertEqual(p1.queryHeads, 0..<8)
        XCTAssertEqual(p1.experts[2], Array(0..<8))
    }

    func testMixedLayoutPlacementReplicasOverridesAndSlices() throws {
        let t = try shipped("tiny-8r-mixed.json")
        let plans = (0..<8).map { t.plan(rank: $0, shape: g1) }
        // Stage 0, layer 0: the stage's placement; expert 7 on ranks 3 and 0.
        XCTAssertEqual(plans[0].experts[0], [0, 1, 7])
        XCTAssertEqual(plans[3].experts[0], [6, 7])
        XCTAssertEqual(plans[0].stagePlan.placement[0]![7], [3, 0], "replicas in the order written")
        // Layer 1: the override; expert 0 on ranks 2 and 1.
        XCTAssertEqual(plans[1].experts[1], [0, 6, 7])
        XCTAssertEqual(plans[2].experts[1], [0, 1])
        XCTAssertEqual(plans[0].experts[1], [4, 5])
        XCTAssertEqual(plans[0].stagePlan.expertMode, .parallel)
        XCTAssertEqual(plans.map(\.kvHeads), [0..<1, 0..<1, 1..<2, 1..<2, 0..<1, 0..<1, 1..<2, 1..<2])
        // Stage 1: sliced experts, 32 columns per rank.
        XCTAssertEqual(plans[4...].map(\.expertColumns), [0..<32, 32..<64, 64..<96, 96..<128])
        XCTAssertEqual(plans[5].experts[2], Array(0..<8))
        XCTAssertEqual(plans[5].stagePlan.expertMode, .slice)
        XCTAssertEqual(plans[5].stagePlan.placement[3]![4], [4, 5, 6, 7])
        XCTAssertEqual(plans.map(\.embeddingRows), [0..<128, 128..<256, 256..<384, 384..<512] + Array(repeating: 0..<0, count: 4))
        XCTAssertEqual(plans.map(\.outputRows), Array(repeating: 0..<0, count: 4) + [0..<128, 128..<256, 256..<384, 384..<512])
        XCTAssertEqual(plans.map(\.microBatches), Array(repeating: 4, count: 8))
        XCTAssertEqual(plans[6].stages.map(\.ranks), [[0, 1, 2, 3], [4, 5, 6, 7]])
        XCTAssertEqual(plans[6].stage, 1)
    }

    func testStageRanksInAnyOrder() throws {
        let t = try parse("""
            {"worldSize": 4, "stages": [{"layers": "0-1", "ranks": [3, 1]}, {"layers": "2-3", "ranks": [2, 0]}]}
            """)
        try t.validate(shape: g1, worldSize: 4)
        // Position in the list is the rank inside the stage.
        XCTAssertEqual(t.plan(rank: 3, shape: g1).queryHeads, 0..<4)
        XCTAssertEqual(t.plan(rank: 1, shape: g1).queryHeads, 4..<8)
        XCTAssertEqual(t.plan(rank: 3, shape: g1).embeddingRows, 0..<256)
        XCTAssertEqual(t.plan(rank: 2, shape: g1).outputRows, 0..<256)
        XCTAssertEqual(t.plan(rank: 0, shape: g1).experts[2], [4, 5, 6, 7])
    }

    func testRealLayouts() throws {
        let g = Grok1.config.shape
        let t16 = try shipped("grok1-q8-16n.json")
        try t16.validate(shape: g, worldSize: 16)
        let p = (0..<16).map { t16.plan(rank: $0, shape: g) }
        XCTAssertEqual(p[5].queryHeads, 15..<18)
        XCTAssertEqual(p[5].kvHeads, 2..<3, "query heads 15-17 are in KV head 2's group of 6")
        XCTAssertEqual(p[15].expertColumns, 30720..<32768)
        XCTAssertEqual(p[15].outputRows, 122880..<131072)

        let t2 = try shipped("grok2-q8-16n.json")
        let q = (0..<16).map { t2.plan(rank: $0, shape: Grok2.config.shape) }
        XCTAssertEqual(q[9].layers, 32..<64)
        XCTAssertEqual(q[9].denseColumns, 4096..<8192)
        XCTAssertEqual(q[9].kvHeads, 1..<2)
        XCTAssertEqual(q[9].microBatches, 2)
    }
}
