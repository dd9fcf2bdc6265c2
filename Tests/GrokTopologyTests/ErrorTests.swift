import Foundation
import GrokModel
import GrokTopology
import XCTest

/// Every rule a topology can break, with the one line that reports it.
final class ErrorTests: XCTestCase {
    let g1 = Grok1.tiny.shape

    /// The message of validating `json` against `shape` (world size `started`).
    func invalid(_ json: String, shape: ModelShape? = nil, started: Int? = nil,
                 file: StaticString = #filePath, line: UInt = #line) -> String {
        message({ try parse(json).validate(shape: shape ?? g1, worldSize: started) }, file: file, line: line)
    }

    /// One stage of `ranks` over the tiny model's 4 layers, with `extra` stage keys.
    func oneStage(_ ranks: [Int], world: Int? = nil, _ extra: String = "") -> String {
        """
        {"worldSize": \(world ?? ranks.count), "stages": [{"layers": "0-3", "ranks": \(ranks)\(extra.isEmpty ? "" : ", " + extra)}]}
        """
    }

    // MARK: Schema

    func testLayerRangeFormat() {
        let json = """
            {"worldSize": 2, "stages": [{"layers": "0-2", "ranks": [0]}, {"layers": "3..5", "ranks": [1]}]}
            """
        XCTAssertEqual(invalid(json), #"topology t.json: stages[1].layers: expected "first-last" (e.g. "0-31"), found "3..5""#)
        XCTAssertEqual(invalid(oneStage([0]).replacingOccurrences(of: "\"0-3\"", with: "\"3-1\"")),
                       #"topology t.json: stages[0].layers: first layer 3 is after last layer 1 in "3-1""#)
        XCTAssertEqual(invalid(oneStage([0]).replacingOccurrences(of: "\"0-3\"", with: "[0, 3]")),
                       #"topology t.json: stages[0].layers: expected "first-last" (e.g. "0-31"), found an array"#)
        // One layer, as a string or a number.
        let single = """
            {"worldSize": 2, "stages": [{"layers": "0-2", "ranks": [0]}, {"layers": 3, "ranks": [1]}]}
            """
        XCTAssertNoThrow(try parse(single).validate(shape: g1, worldSize: 2))
        XCTAssertEqual(try parse(single.replacingOccurrences(of: "3,", with: "\"3\",")), try parse(single))
    }

    func testUnknownKeysAreRejected() {
        XCTAssertEqual(invalid(oneStage([0, 1], #""tensorparallel": false"#)),
                       #"topology t.json: stages[0]: unknown key "tensorparallel" (did you mean "tensorParallel"?); allowed keys: layers, ranks, tensorParallel, experts"#)
        XCTAssertEqual(invalid(oneStage([0, 1], #""experts": {"mode": "parallel", "placment": [[0]]}"#)),
                       #"topology t.json: stages[0].experts: unknown key "placment"; allowed keys: mode, rule, placement, layers"#)
        XCTAssertEqual(invalid(#"{"worldSize": 1, "world_size": 1, "stages": [{"layers": "0-3", "ranks": [0]}]}"#),
                       #"topology t.json: unknown key "world_size" (did you mean "worldSize"?); allowed keys: description, model, worldSize, microBatches, stages"#)
    }

    func testTypesAndRequiredKeys() {
        XCTAssertEqual(invalid(#"{"worldSize": "4", "stages": [{"layers": "0-3", "ranks": [0]}]}"#),
                       #"topology t.json: worldSize: expected an integer, found "4""#)
        XCTAssertEqual(invalid(#"{"worldSize": 1.5, "stages": [{"layers": "0-3", "ranks": [0]}]}"#),
                       "topology t.json: worldSize: expected an integer, found 1.5")
        XCTAssertEqual(invalid(#"{"worldSize": 1, "stages": [{"layers": "0-3"}]}"#),
                       #"topology t.json: stages[0]: missing key "ranks""#)
        XCTAssertEqual(invalid(#"{"stages": []}"#), #"topology t.json: missing key "worldSize""#)
        XCTAssertEqual(invalid(#"{"worldSize": 1, "stages": []}"#), "topology t.json: stages: expected at least one stage")
        XCTAssertEqual(invalid(oneStage([0], #""tensorParallel": 1"#)),
                       "topology t.json: stages[0].tensorParallel: expected true or false, found 1")
        XCTAssertEqual(invalid(#"{"worldSize": 1, "stages": [{"layers": "0-3", "ranks": [0, "1"]}]}"#),
                       #"topology t.json: stages[0].ranks[1]: expected an integer, found "1""#)
        XCTAssertEqual(invalid(#"{"worldSize": 1, "stages": [{"layers": "0-3", "ranks": []}]}"#),
                       "topology t.json: stages[0].ranks: expected at least one world rank")
        XCTAssertEqual(invalid("[1, 2]"), "topology t.json: expected an object { … }, found an array")
    }

    func testJSONSyntaxErrorsHaveLineAndColumn() {
        XCTAssertEqual(invalid("{\n  \"worldSize\": 1,\n  \"stages\": [}\n"),
                       "topology t.json: invalid JSON at line 3, column 14: expected a value, found '}'")
        XCTAssertEqual(invalid("{\"worldSize\": 1, \"worldSize\": 2, \"stages\": []}"),
                       #"topology t.json: invalid JSON at line 1, column 18: key "worldSize" appears twice in one object"#)
        XCTAssertEqual(invalid("{\"worldSize\": 1} x"),
                       "topology t.json: invalid JSON at line 1, column 18: unexpected 'x' after the end of the document")
    }

    func testExpertSchema() {
        XCTAssertEqual(invalid(oneStage([0, 1], #""experts": {"mode": "sliced"}"#)),
                       #"topology t.json: stages[0].experts.mode: expected "parallel" or "slice", found "sliced""#)
        XCTAssertEqual(invalid(oneStage([0, 1], #""experts": {"mode": "slice", "rule": "contiguous"}"#)),
                       #"topology t.json: stages[0].experts.rule: only applies to mode "parallel" (in slice mode every rank holds a slice of every expert)"#)
        XCTAssertEqual(invalid(oneStage([0, 1], #""experts": {"rule": "roundrobin"}"#)),
                       #"topology t.json: stages[0].experts.rule: expected "contiguous" or "round-robin", found "roundrobin""#)
        XCTAssertEqual(invalid(oneStage([0, 1], #""experts": {"rule": "contiguous", "placement": [[0]]}"#)),
                       #"topology t.json: stages[0].experts: give either "rule" or "placement", not both"#)
        XCTAssertEqual(invalid(oneStage([0, 1], #""experts": {"layers": {"one": [[0]]}}"#)),
                       #"topology t.json: stages[0].experts.layers: key "one" is not a layer number (e.g. "12")"#)
        XCTAssertEqual(invalid(oneStage([0, 1], #""experts": {"placement": [[0], 1]}"#)),
                       "topology t.json: stages[0].experts.placement[1]: expected an array of world ranks, found 1")
    }

    func testMissingFile() {
        XCTAssertEqual(message { _ = try Topology(contentsOf: "/nonexistent/t.json") }, "topology /nonexistent/t.json: no such file")
    }

    // MARK: World and ranks

    func testWorldSize() {
        let eight = oneStage(Array(0..<8))
        XCTAssertEqual(invalid(eight, started: 4), "topology t.json: worldSize is 8, but mpirun started 4 ranks")
        XCTAssertEqual(invalid(oneStage([0], world: 0)), "topology t.json: worldSize: expected ≥ 1, found 0")
        XCTAssertNoThrow(try parse(eight).validate(shape: g1, worldSize: 8))
        XCTAssertNoThrow(try parse(eight).validate(shape: g1, worldSize: nil))
        // The source given to validate names the file in the message.
        XCTAssertEqual(message { try parse(eight).validate(shape: g1, worldSize: 2, source: "other.json") },
                       "topology other.json: worldSize is 8, but mpirun started 2 ranks")
    }

    func testEveryRankInExactlyOneStage() {
        XCTAssertEqual(invalid(oneStage([0, 4], world: 4)),
                       "topology t.json: stages[0].ranks: rank 4 is outside the world of 4 ranks (0-3)")
        XCTAssertEqual(invalid(oneStage([0, 1, 1], world: 2)), "topology t.json: stages[0].ranks: rank 1 is listed twice")
        XCTAssertEqual(invalid("""
            {"worldSize": 2, "stages": [{"layers": "0-1", "ranks": [0, 1]}, {"layers": "2-3", "ranks": [1]}]}
            """), "topology t.json: stages[1].ranks: rank 1 is already in stages[0]")
        XCTAssertEqual(invalid(oneStage([0, 1], world: 4)),
                       "topology t.json: ranks 2-3 are in no stage (every world rank 0-3 must be in exactly one)")
    }

    func testMicroBatches() {
        XCTAssertEqual(invalid(#"{"worldSize": 1, "microBatches": 0, "stages": [{"layers": "0-3", "ranks": [0]}]}"#),
                       "topology t.json: microBatches: expected ≥ 1, found 0")
    }

    // MARK: Layers

    func testLayersCoveredInOrderWithoutGapsOrOverlaps() {
        func two(_ a: String, _ b: String) -> String {
            #"{"worldSize": 2, "stages": [{"layers": "\#(a)", "ranks": [0]}, {"layers": "\#(b)", "ranks": [1]}]}"#
        }
        XCTAssertEqual(invalid(two("1-2", "3")),
                       "topology t.json: stages[0].layers: 1-2 starts at layer 1, but the first stage must start at layer 0")
        XCTAssertEqual(invalid(two("0-1", "3")),
                       "topology t.json: stages[1].layers: 3 starts at layer 3, but stages[0] ends at layer 1: layer 2 is in no stage")
        XCTAssertEqual(invalid(two("0-2", "2-3")),
                       "topology t.json: stages[1].layers: 2-3 overlaps stages[0] (layers 0-2); expected it to start at layer 3")
        XCTAssertEqual(invalid(two("0-1", "2-4")),
                       "topology t.json: stages[1].layers: 2-4 goes past the model's last layer 3 (it has 4 layers)")
        XCTAssertEqual(invalid(two("0", "1")),
                       "topology t.json: stages end at layer 1, but the model has 4 layers: layers 2-3 are in no stage")
        XCTAssertEqual(invalid(two("2-3", "0-1")),
                       "topology t.json: stages[0].layers: 2-3 starts at layer 2, but the first stage must start at layer 0")
    }

    // MARK: Tensor parallelism

    func testTensorParallelSizeDividesHeadsAndDenseWidth() {
        XCTAssertEqual(invalid(oneStage([0, 1, 2])),
                       "topology t.json: stages[0]: tensor-parallel size 3 does not divide the 8 query heads")
        XCTAssertNoThrow(try parse(oneStage([0, 1, 2], #""tensorParallel": false"#)).validate(shape: g1, worldSize: 3),
                         "replicated attention needs no division")
        let kv6 = ModelShape(layers: 4, queryHeads: 12, kvHeads: 6, experts: 8, expertWidth: 128, denseWidth: 0, vocabulary: 512)
        XCTAssertEqual(invalid(oneStage([0, 1, 2, 3]), shape: kv6),
                       "topology t.json: stages[0]: tensor-parallel size 4 does not divide the 6 KV heads")
        XCTAssertEqual(invalid(oneStage(Array(0..<12)), shape: Grok1.config.shape.with(layers: 4)),
                       "topology t.json: stages[0]: tensor-parallel size 12 is larger than the 8 KV heads but not a multiple of them (the query heads of a rank must share one KV head)")
        let dense = ModelShape(layers: 4, queryHeads: 8, kvHeads: 4, experts: 8, expertWidth: 128, denseWidth: 300, vocabulary: 512)
        XCTAssertEqual(invalid(oneStage([0, 1, 2, 3, 4, 5, 6, 7]), shape: dense),
                       "topology t.json: stages[0]: tensor-parallel size 8 does not divide the dense MLP width 300")
    }

    // MARK: Experts

    func testSliceModeDividesTheExpertWidth() {
        XCTAssertEqual(invalid(oneStage([0, 1, 2], #""tensorParallel": false, "experts": {"mode": "slice"}"#)),
                       "topology t.json: stages[0].experts: slicing experts over 3 ranks needs 3 to divide the expert width 128")
    }

    func testExplicitPlacement() {
        func placed(_ p: String, ranks: [Int] = [0, 1], world: Int? = nil) -> String {
            oneStage(ranks, world: world, #""experts": {"placement": \#(p)}"#)
        }
        XCTAssertEqual(invalid(placed("[[0],[0],[0],[0],[1],[1],[1]]")),
                       "topology t.json: stages[0].experts.placement: has 7 entries, but the model has 8 experts (one list of ranks per expert)")
        XCTAssertEqual(invalid(placed("[[0],[0],[0],[],[1],[1],[1],[1]]")),
                       "topology t.json: stages[0].experts.placement[3]: expert 3 is placed on no rank")
        XCTAssertEqual(invalid(placed("[[0],[0],[0],[0],[1],[1],[1],[1,1]]")),
                       "topology t.json: stages[0].experts.placement[7]: expert 7 lists rank 1 twice")
        XCTAssertEqual(invalid(placed("[[0],[0],[0],[0],[1],[1],[1],[9]]")),
                       "topology t.json: stages[0].experts.placement[7]: expert 7 is placed on rank 9, but the world has 2 ranks")
        XCTAssertNoThrow(try parse(placed("[[0],[0],[0],[0],[1],[1],[1],[1,0]]")).validate(shape: g1, worldSize: 2))
    }

    func testPlacementOnlyNamesRanksOfTheStage() {
        let shape = Grok1.tiny.shape.with(layers: 16)
        let json = """
            {"worldSize": 8, "stages": [
              {"layers": "0-7", "ranks": [4, 5, 6, 7]},
              {"layers": "8-15", "ranks": [0, 1, 2, 3], "experts": {
                "placement": [[0],[0],[1],[1],[2],[2],[3],[PLACED]],
                "layers": {"12": [[0],[0],[1],[1],[2],[2],[3],[OVERRIDE]]}}}]}
            """
        func with(_ placed: Int, _ override: Int) -> String {
            json.replacingOccurrences(of: "PLACED", with: "\(placed)").replacingOccurrences(of: "OVERRIDE", with: "\(override)")
        }
        XCTAssertEqual(invalid(with(5, 3), shape: shape),
                       "topology t.json: stages[1].experts.placement[7]: expert 7 is placed on rank 5, which is not in stage 1 (ranks 0-3)")
        XCTAssertEqual(invalid(with(3, 9), shape: shape),
                       "topology t.json: stages[1].experts.layers.12[7]: expert 7 of layer 12 is placed on rank 9, but the world has 8 ranks")
        XCTAssertEqual(invalid(with(3, 4), shape: shape),
                       "topology t.json: stages[1].experts.layers.12[7]: expert 7 of layer 12 is placed on rank 4, which is not in stage 1 (ranks 0-3)")
        XCTAssertNoThrow(try parse(with(3, 0)).validate(shape: shape, worldSize: 8))
        let moved = json.replacingOccurrences(of: "\"12\"", with: "\"3\"")
        XCTAssertEqual(invalid(moved.replacingOccurrences(of: "PLACED", with: "3").replacingOccurrences(of: "OVERRIDE", with: "0"), shape: shape),
                       "topology t.json: stages[1].experts.layers.3: layer 3 is not in this stage (layers 8-15)")
    }
}

extension ModelShape {
    func with(layers: Int) -> ModelShape {
        var s = self
        s.layers = layers
        return s
    }
}
