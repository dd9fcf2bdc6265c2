import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import GrokModel
import GrokRuntime
import GrokTopology
import XCTest

/// `grok place`: strategies on hand-made loads with known placements, the replay against the
/// runtime's dispatch rule, the layout files, the SVG and the trace reader's errors.
final class PlacementTests: XCTestCase {
    /// Loads of one layer: expert 0 hot, expert 7 warm.
    let skewed = [8, 1, 1, 1, 1, 1, 1, 2]

    func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("placement-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Ranks' expert lists of one layer's placement.
    func held(_ layer: [[Int]], ranks: Int) -> [[Int]] {
        ExpertPlacement(ranks: ranks, layers: [layer]).held(layer: 0).map { $0.sorted() }
    }

    // MARK: - Strategies

    func testBaselinesFollowTheRuntimeRules() throws {
        let c = try PlacementStrategies.place(.contiguous, loads: [skewed], options: PlacementOptions(ranks: 4))
        XCTAssertEqual(c.layers[0], [[0], [0], [1], [1], [2], [2], [3], [3]])
        let r = try PlacementStrategies.place(.roundRobin, loads: [skewed], options: PlacementOptions(ranks: 4))
        XCTAssertEqual(r.layers[0], [[0], [1], [2], [3], [0], [1], [2], [3]])
    }

    func testGreedyPutsTheHotExpertAlone() throws {
        // LPT: 8→r0, 2→r1, 1→r2, 1→r3, then the 1s onto the lightest (ties: fewer experts, lower rank).
        let p = try PlacementStrategies.greedy(loads: skewed, options: PlacementOptions(ranks: 4))
        XCTAssertEqual(held(p, ranks: 4), [[0], [5, 7], [1, 3, 6], [2, 4]])
        // A cap of 3 per rank still leaves expert 0 alone; a cap of 2 fills all 8 slots, so the
        // last (lightest) expert must join it: r0 is the only rank with room.
        XCTAssertEqual(held(try PlacementStrategies.greedy(loads: skewed, options: PlacementOptions(ranks: 4, maxExpertsPerRank: 3)), ranks: 4)[0], [0])
        let capped = held(try PlacementStrategies.greedy(loads: skewed, options: PlacementOptions(ranks: 4, maxExpertsPerRank: 2)), ranks: 4)
        XCTAssertEqual(capped, [[0, 6], [5, 7], [1, 3], [2, 4]])
    }

    func testEPLBReplicatesTheHottestAndPacksEvenly() throws {
        // Replication: 8 → 4 (2 copies) → 2.67 (3) → 2 (4 = every rank, the cap); the last slot goes to expert 7 (2 per copy).
        XCTAssertEqual(PlacementStrategies.replicate(loads: skewed, slots: 4, maxCopies: 4), [4, 1, 1, 1, 1, 1, 1, 2])
        // Packing 12 copies, 3 per rank: expert 0's copies (2 each) on r0-r3, then the 1s onto the lightest rank with room.
        let p = try PlacementStrategies.eplb(loads: skewed, options: PlacementOptions(ranks: 4, redundantSlots: 4))
        XCTAssertEqual(p, [[0, 1, 2, 3], [0], [1], [2], [3], [0], [1], [2, 3]])
        let placement = ExpertPlacement(ranks: 4, layers: [p])
        XCTAssertEqual(placement.expectedLoad(layer: 0, loads: skewed), [4, 4, 4, 4])
        XCTAssertEqual(placement.expectedImbalance(loads: [skewed]), 1, accuracy: 1e-12)
    }

    /// A hand-computed case of field-notes §2.6 with ties and a packing the "no two copies of one
    /// expert on a rank" rule changes.
    func testEPLBHandComputedCase() throws {
        let loads = [90, 60, 30, 20, 10, 6, 3, 1]
        // Slots: e0 (90) → 2 copies; e1 (60) → 2; e0 (45) → 3; tie e0/e1/e2 at 30 → e0 (lowest index) → 4.
        XCTAssertEqual(PlacementStrategies.replicate(loads: loads, slots: 4, maxCopies: 4), [4, 2, 1, 1, 1, 1, 1, 1])
        // Copies by weight: e1 30, e1 30, e2 30, e0 22.5 ×4, e3 20, e4 10, e5 6, e6 3, e7 1; 3 per rank.
        //   e1→r0, e1→r1, e2→r2, e0→r3, e0→r0 (r3 is lighter but holds e0), e0→r1, e0→r2,
        //   e3→r3 (42.5), e4→r3 (full), e5→r0, e6→r1, e7→r2.
        let p = try PlacementStrategies.eplb(loads: loads, options: PlacementOptions(ranks: 4, redundantSlots: 4))
        XCTAssertEqual(p, [[0, 1, 2, 3], [0, 1], [2], [3], [3], [0], [1], [2]])
        let placement = ExpertPlacement(ranks: 4, layers: [p])
        XCTAssertEqual(placement.expectedLoad(layer: 0, loads: loads), [58.5, 55.5, 53.5, 52.5])
        XCTAssertEqual(placement.held(layer: 0).map(\.count), [3, 3, 3, 3])
    }

    func testEPLBNeedsAnEvenSplit() {
        let text = message { _ = try PlacementStrategies.eplb(loads: self.skewed, options: PlacementOptions(ranks: 4, redundantSlots: 3)) }
        XCTAssertTrue(text.contains("11 copies do not split evenly over 4 ranks"), text)
        XCTAssertTrue(text.contains("--redundant 4"), text)
        let cap = message {
            _ = try PlacementStrategies.place(.greedy, loads: [self.skewed], options: PlacementOptions(ranks: 4, redundantSlots: 4, maxExpertsPerRank: 2))
        }
        XCTAssertTrue(cap.contains("do not fit in 4 × 2 slots"), cap)
    }

    func testShadowPutsTheHottestEverywhere() throws {
        // 3 slots on 4 ranks shadow one expert; the others go by greedy.
        let p = try PlacementStrategies.shadow(loads: skewed, options: PlacementOptions(ranks: 4, redundantSlots: 3))
        XCTAssertEqual(p[0], [0, 1, 2, 3])
        XCTAssertTrue(p.dropFirst().allSatisfy { $0.count == 1 })
        // Replayed at batch 4: every owner holds expert 0, so its rows never travel.
        let perToken = (0..<8).map { t in [[0, 1 + t % 7]] }
        let trace = RoutingTrace(experts: 8, perToken: perToken)
        let e = try PlacementEvaluation.evaluate(trace: trace, placement: ExpertPlacement(ranks: 4, layers: [p]),
                                                 options: .init(batch: 4, width: 4))
        XCTAssertEqual(e.layers[0].remoteRows, 8 - (0..<8).filter { t in p[1 + t % 7][0] == t % 4 }.count)
    }

    func testAffinityCoLocatesExpertsChosenTogetherAcrossLayers() throws {
        // Token t chooses expert (t + l) mod 8 at layer l: expert i at layer l is always followed by i+1.
        let perToken = (0..<64).map { t in (0..<4).map { l in [(t + l) % 8] } }
        let trace = RoutingTrace(experts: 8, perToken: perToken)
        let options = PlacementOptions(ranks: 4)
        let p = try PlacementStrategies.place(.affinity, trace: trace, options: options)
        for l in 1..<4 {
            for i in 0..<8 { XCTAssertEqual(p.layers[l][(i + 1) % 8], p.layers[l - 1][i], "layer \(l), expert \(i)") }
            XCTAssertEqual(p.held(layer: l).map(\.count), [2, 2, 2, 2])
        }
        let together = try PlacementEvaluation.evaluate(trace: trace, placement: p, options: .init(width: 8))
        XCTAssertEqual(together.crossLayerLocality, 1)
        XCTAssertEqual(together.imbalance, 1, accuracy: 1e-12)
        let apart = try PlacementEvaluation.evaluate(trace: trace, placement: PlacementStrategies.place(.contiguous, trace: trace, options: options),
                                                     options: .init(width: 8))
        XCTAssertLessThan(apart.crossLayerLocality, 0.6)
    }

    // MARK: - Replay

    /// 4 tokens, top-2, 4 experts, 2 ranks, steps of 2. Owners rotate with the step: in step 0
    /// rank 0 owns row 0 and rank 1 row 1; in step 1 rank 1 owns row 0 and rank 0 row 1.
    func testEvaluateCountsRowsAndBytesByHand() throws {
        let trace = RoutingTrace(experts: 4, perToken: [[[0, 1]], [[2, 3]], [[2, 3]], [[0, 2]]])
        let placement = ExpertPlacement(ranks: 2, layers: [[[0], [1], [0, 1], [1]]])
        let e = try PlacementEvaluation.evaluate(trace: trace, placement: placement, options: .init(batch: 2, width: 16))
        // step 0: t0 (owner 0): e0 local on 0, e1 → 1; t1 (owner 1): e2 on its own replica, e3 local.
        // step 1: t2 (owner 1): e2 on its own replica, e3 local; t3 (owner 0): e0 local, e2 on its own replica.
        XCTAssertEqual(e.steps, 2)
        XCTAssertEqual(e.layers[0].rowsPerRank, [3, 5])
        XCTAssertEqual(e.imbalance, 1.25, accuracy: 1e-12)
        XCTAssertEqual(e.bytesPerRow, 64)
        XCTAssertEqual(e.dispatchBytes, [[0, 64], [0, 0]])
        XCTAssertEqual(e.alltoallBytes, 2 * 64)
        XCTAssertEqual(e.alltoallBytesPerStep, 64)
        XCTAssertEqual(e.layers[0].remoteRows, 1)
        XCTAssertEqual(e.replicasPlaced, 1)
        XCTAssertEqual(e.replicasUsed, 1)
        XCTAssertEqual(e.layers[0].busiestRowsPerStep, 2.5)   // step 0: [1, 3]; step 1: [2, 2]
    }

    /// The replica rule: a row stays on its owner when it holds a replica, else replica
    /// ((row + step) mod replicas); owners rotate with the step.
    func testEvaluateFollowsTheReplicaRule() throws {
        let trace = RoutingTrace(experts: 3, perToken: [[[0]], [[0]], [[0]]])
        let placement = ExpertPlacement(ranks: 3, layers: [[[1, 2], [0], [0]]])
        // One step of 3 rows: row i owned by rank i; row 0's owner lacks e0 → replica 0 mod 2 = rank 1.
        let batched = try PlacementEvaluation.evaluate(trace: trace, placement: placement, options: .init(batch: 3, width: 1))
        XCTAssertEqual(batched.layers[0].rowsPerRank, [0, 2, 1])
        XCTAssertEqual(batched.dispatchBytes[0], [0, 4, 0])
        XCTAssertEqual(batched.replicasUsed, 1)
        // Batch 1: the one row of step s (part 2 of evenSlice(1, of: 3)) is owned by the rank r with
        // (r + s) mod 3 = 2: rank 2, then 1 (both hold e0), then 0, which sends it to replica (0 + 2) mod 2 = rank 1.
        let single = try PlacementEvaluation.evaluate(trace: trace, placement: placement, options: .init(batch: 1, width: 1))
        XCTAssertEqual(single.layers[0].rowsPerRank, [0, 2, 1])
        XCTAssertEqual(single.alltoallBytes, 2 * 4)
        XCTAssertEqual(single.replicasUsed, 1)
    }

    func testStepsCutPromptsAndBatches() {
        let trace = RoutingTrace(experts: 2, perToken: Array(repeating: [[0]], count: 9), sequence: [0, 0, 0, 0, 1, 1, 1, 1, 1])
        XCTAssertEqual(trace.position, [0, 1, 2, 3, 0, 1, 2, 3, 4])
        let plain = PlacementEvaluation.steps(trace, batch: 4, prefill: nil)
        XCTAssertEqual(plain.map { $0.tokens.first! }, [0, 4, 8])
        XCTAssertEqual(plain.map(\.tokens.count), [4, 4, 1])
        XCTAssertEqual(plain.map(\.id), [0, 1, 2])
        // Each sequence: its prompt (3 tokens) in one step, then steps of 2 within the sequence.
        let prompted = PlacementEvaluation.steps(trace, batch: 2, prefill: 3)
        XCTAssertEqual(prompted.map { $0.tokens.first! }, [0, 3, 4, 7])
        XCTAssertEqual(prompted.map(\.tokens.count), [3, 1, 3, 2])
        // Recorded steps (step.npy) are replayed as the runtime ran them: a decode step's rows are
        // scattered over the trace's (sequence, position) order.
        var recorded = trace
        recorded.step = [0, 0, 0, 1, 2, 2, 2, 3, 3]
        let steps = PlacementEvaluation.steps(recorded, batch: nil, prefill: nil)
        XCTAssertEqual(steps.map(\.id), [0, 1, 2, 3])
        XCTAssertEqual(steps.map(\.tokens), [[0, 1, 2], [3], [4, 5, 6], [7, 8]])
    }

    func testEvaluatePredictsATimeFromTheProfile() throws {
        let model = try TopologyExplainer.model("grok-1-tiny", dtype: nil)
        let trace = RoutingTrace.synthetic(model: "grok-1-tiny", layers: 4, experts: 8, expertsPerToken: 2, sequences: 2, length: 8, skew: 1.2)
        let placement = try PlacementStrategies.place(.contiguous, trace: trace, options: PlacementOptions(ranks: 4))
        let e = try PlacementEvaluation.evaluate(trace: trace, placement: placement, shape: model.config.shape,
                                                 options: .init(batch: 4, width: model.config.modelWidth, model: model))
        XCTAssertTrue(e.time.includesExperts)
        XCTAssertGreaterThan(e.time.expertSeconds, 0)
        XCTAssertEqual(e.time.stepSeconds, e.time.countsSeconds + e.time.dispatchSeconds + e.time.returnSeconds + e.time.expertSeconds
                       + e.time.combineSeconds, accuracy: 1e-12)
        XCTAssertEqual(e.layers.map(\.secondsPerStep).reduce(0, +), e.time.stepSeconds, accuracy: 1e-12)
    }

    // MARK: - Layout files

    func testWrittenLayoutValidatesForGrok1Tiny() throws {
        let dir = try temporaryDirectory()
        let trace = RoutingTrace.synthetic(model: "grok-1-tiny", layers: 4, experts: 8, expertsPerToken: 2, sequences: 4, length: 32, skew: 1.5)
        try trace.write(to: dir + "/trace")
        let read = try RoutingTrace(directory: dir + "/trace")
        XCTAssertEqual(read, trace)
        let model = try PlacementTool.model(nil, dtype: nil, trace: read)
        XCTAssertEqual(model?.config.shape, Grok1.tiny.shape)
        for strategy in PlacementStrategy.allCases {
            let layout = try PlacementTool.layout(trace: read, strategy: strategy, options: PlacementOptions(ranks: 4, redundantSlots: 4),
                                                  tensorParallel: true, model: model, evaluation: .init(width: 256, model: model))
            try layout.json.write(toFile: dir + "/t.json", atomically: true, encoding: .utf8)
            let topology = try Topology(contentsOf: dir + "/t.json")
            try topology.validate(shape: Grok1.tiny.shape, worldSize: 4)
            try topology.validate(shape: Grok2.tiny.shape, worldSize: 4)
            XCTAssertTrue(topology.description.contains("--strategy \(strategy.rawValue)"), topology.description)
            XCTAssertTrue(topology.description.contains(dir + "/trace"), topology.description)
            XCTAssertTrue(topology.description.contains("imbalance"), topology.description)
            XCTAssertEqual(topology.stages.count, 1)
            XCTAssertTrue(topology.stages[0].tensorParallel)
            XCTAssertEqual(try ExpertPlacement(topology: topology, experts: 8, layers: 4), layout.placement)
            // Every layer's plan is the placement the strategy made.
            let plans = topology.stagePlans(shape: Grok1.tiny.shape)
            for l in 0..<4 { XCTAssertEqual(plans[0].placement[l]!, layout.placement.layers[l]) }
        }
        // Three tensor-parallel ranks cannot split 8 heads: one line, with the way out.
        let text = message {
            _ = try PlacementTool.layout(trace: read, strategy: .greedy, options: PlacementOptions(ranks: 3), tensorParallel: true,
                                         model: model, evaluation: .init(width: 256))
        }
        XCTAssertTrue(text.contains("--stage-layout replicated"), text)
        let replicated = try PlacementTool.layout(trace: read, strategy: .greedy, options: PlacementOptions(ranks: 3), tensorParallel: false,
                                                  model: model, evaluation: .init(width: 256))
        try replicated.topology.validate(shape: Grok1.tiny.shape, worldSize: 3)
    }

    func testEvaluateOfAWrittenLayoutMatchesThePlacement() throws {
        let trace = RoutingTrace.synthetic(model: "grok-1-tiny", layers: 4, experts: 8, expertsPerToken: 2, sequences: 3, length: 20, skew: 1.3,
                                           stickiness: 0.5)
        let layout = try PlacementTool.layout(trace: trace, strategy: .eplb, options: PlacementOptions(ranks: 4, redundantSlots: 4),
                                              tensorParallel: true, model: nil, evaluation: .init(batch: 8, width: 256))
        let fromFile = try PlacementEvaluation.evaluate(trace: trace, topology: layout.topology, shape: Grok1.tiny.shape,
                                                        options: .init(batch: 8, width: 256))
        XCTAssertEqual(fromFile.rowsPerRank, layout.evaluation.rowsPerRank)
        XCTAssertEqual(fromFile.dispatchBytes, layout.evaluation.dispatchBytes)
        // Every (token, layer, choice) is computed exactly once.
        XCTAssertEqual(fromFile.rowsPerRank.reduce(0, +), trace.tokens * 4 * 2)
    }

    // MARK: - SVG

    func testSVGIsWellFormed() throws {
        let trace = RoutingTrace.synthetic(model: "grok-1-tiny", layers: 4, experts: 8, expertsPerToken: 2, sequences: 2, length: 16, skew: 1)
        let placement = try PlacementStrategies.place(.greedy, trace: trace, options: PlacementOptions(ranks: 4))
        var e = try PlacementEvaluation.evaluate(trace: trace, placement: placement, options: .init(batch: 4, width: 256))
        e.topology = "a <tricky> & \"quoted\" name"
        let svg = PlacementReport.svg(e)
        final class Collect: NSObject, XMLParserDelegate {
            var rects = 0, root = ""
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String] = [:]) {
                if root.isEmpty { root = name }
                if name == "rect" { rects += 1 }
            }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let collect = Collect()
        parser.delegate = collect
        XCTAssertTrue(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
        XCTAssertEqual(collect.root, "svg")
        XCTAssertEqual(collect.rects, 1 + 4 * 8 + 4 * 4)   // background, load cells, traffic cells
        // The text and JSON reports carry the same numbers.
        XCTAssertTrue(PlacementReport.text(e).contains("predicted MoE time per step"))
        let json = try PlacementReport.json(e)
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(json.utf8)))
    }

    // MARK: - Trace errors

    func testBadTracesGiveOneLineErrors() throws {
        let dir = try temporaryDirectory()
        let trace = RoutingTrace(experts: 4, perToken: [[[0, 1], [2, 3]], [[1, 2], [3, 0]]])
        func expect(_ contains: [String], file: StaticString = #filePath, line: UInt = #line, _ damage: (String) throws -> Void) throws {
            let path = dir + "/t\(UUID().uuidString.prefix(8))"
            try trace.write(to: path)
            try damage(path)
            let text = message({ _ = try RoutingTrace(directory: path) }, file: file, line: line)
            for c in contains { XCTAssertTrue(text.contains(c), "\(text) lacks \(c)", file: file, line: line) }
        }
        XCTAssertTrue(message { _ = try RoutingTrace(directory: dir + "/nowhere") }.contains("no such directory"))
        try expect(["gates.npy", "missing"]) { try FileManager.default.removeItem(atPath: $0 + "/gates.npy") }
        try expect(["meta.json", "format: expected \"grokcluster-routing-trace\""]) {
            try Data(#"{"format": "other", "version": 1, "layers": 2, "experts": 4, "expertsPerToken": 2, "tokens": 2}"#.utf8)
                .write(to: URL(fileURLWithPath: $0 + "/meta.json"))
        }
        try expect(["meta.json", "version: expected 1, found 2"]) {
            try Data(#"{"format": "grokcluster-routing-trace", "version": 2, "layers": 2, "experts": 4, "expertsPerToken": 2, "tokens": 2}"#.utf8)
                .write(to: URL(fileURLWithPath: $0 + "/meta.json"))
        }
        try expect(["meta.json", "layers: missing"]) {
            try Data(#"{"format": "grokcluster-routing-trace", "version": 1, "experts": 4, "expertsPerToken": 2, "tokens": 2}"#.utf8)
                .write(to: URL(fileURLWithPath: $0 + "/meta.json"))
        }
        try expect(["meta.json", "tokens: expected an integer"]) {
            try Data(#"{"format": "grokcluster-routing-trace", "version": 1, "layers": 2, "experts": 4, "expertsPerToken": 2, "tokens": "2"}"#.utf8)
                .write(to: URL(fileURLWithPath: $0 + "/meta.json"))
        }
        try expect(["meta.json", "not valid JSON"]) { try Data("{".utf8).write(to: URL(fileURLWithPath: $0 + "/meta.json")) }
        try expect(["experts.npy", "shape: expected [tokens, layers, expertsPerToken] = [2, 2, 2]", "found [2, 4]"]) {
            try NPY.write([Int16](repeating: 0, count: 8), shape: [2, 4], to: $0 + "/experts.npy")
        }
        try expect(["experts.npy", "expected a C-order <i2 array"]) {
            try NPY.write([Int32](repeating: 0, count: 8), shape: [2, 2, 2], to: $0 + "/experts.npy")
        }
        try expect(["experts.npy", "[1, 0, 1]: expert 9 is outside 0-3"]) {
            try NPY.write([0, 1, 2, 3, 1, 9, 3, 0] as [Int16], shape: [2, 2, 2], to: $0 + "/experts.npy")
        }
        try expect(["experts.npy", "chooses expert 1 twice at layer 0"]) {
            try NPY.write([1, 1, 2, 3, 1, 2, 3, 0] as [Int16], shape: [2, 2, 2], to: $0 + "/experts.npy")
        }
        try expect(["sequence.npy", "(sequence, position) order"]) {
            try NPY.write([1, 0] as [Int32], shape: [2], to: $0 + "/sequence.npy")
        }
        try expect(["position.npy", "not a .npy file"]) { try Data("junk".utf8).write(to: URL(fileURLWithPath: $0 + "/position.npy")) }
        // A trace for another model: one line naming both shapes.
        let other = RoutingTrace(model: "grok-1-tiny", experts: 4, perToken: [[[0, 1]]])
        let text = message { _ = try PlacementTool.model(nil, dtype: nil, trace: other) }
        XCTAssertTrue(text.contains("but model grok-1-tiny has 4, 8, top-2"), text)
    }
}
