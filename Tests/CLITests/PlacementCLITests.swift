import Foundation
import GrokRuntime
import XCTest

/// Trace → place → evaluate → run: the evaluator's replay of a trace predicts exactly the expert
/// rows each rank computes and the all-to-all bytes between every pair of ranks that the runtime
/// measures (`--stats-json`) on the same prompts under that placement.
final class PlacementCLITests: XCTestCase {
    typealias D = DistributedCLITests

    func testEvaluatorPredictsWhatTheRuntimeMeasures() throws {
        let dir = try scratchDirectory(self)
        let model = "\(dir)/skewed.gguf"
        let synth = try launch("grok", ["synth", "--preset", "grok-1-tiny", "--vocab", "4096", "--router-skew", "1.2",
                                        "--router-affinity", "0.5", "--seed", "3", "--output", model])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let prompts = "\(dir)/prompts.txt"
        try "The cluster runs experts\nA longer prompt about where the experts of every layer should live\nGrok"
            .write(toFile: prompts, atomically: true, encoding: .utf8)
        let args = ["--model", model, "--prompt-file", prompts, "--max-tokens", "10", "--temperature", "0", "--ignore-eos"]

        // 1. A trace on one rank, 2. an EPLB placement with replicas on 4 ranks.
        let traced = try launch("grok-coordinator", args + ["--trace-routing", "\(dir)/trace1"])
        XCTAssertEqual(traced.status, 0, traced.stderr)
        let layout = "\(dir)/eplb.json"
        let placed = try launch("grok", ["place", "--trace", "\(dir)/trace1", "--ranks", "4", "--redundant", "4",
                                         "--strategy", "eplb", "--out", layout])
        XCTAssertEqual(placed.status, 0, placed.stderr)

        // 3. The runtime under that placement, with its statistics and its own trace (its steps).
        let run = try runUnderMPI(ranks: 4, args + ["--topology", layout, "--stats-json", "\(dir)/stats.json",
                                                    "--trace-routing", "\(dir)/trace4"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/stats.json"))) as! [[String: Any]]

        // 4. The replay of that trace against the placement, without the model.
        let evaluated = try launch("grok", ["place", "evaluate", "--trace", "\(dir)/trace4", "--topology", layout, "--model", model, "--json"])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        let evaluation = try JSONDecoder().decode(PlacementEvaluation.self, from: Data(evaluated.stdout.utf8))

        for (rank, measured) in stats.enumerated() {
            // Expert rows computed on this rank, over every layer.
            let experts = measured["expertTokens"] as! [String: [String: Int]]
            let measuredRows = experts.values.flatMap(\.values).reduce(0, +)
            let predictedRows = evaluation.layers.map { $0.rowsPerRank[rank] }.reduce(0, +)
            XCTAssertEqual(predictedRows, measuredRows, "rank \(rank): expert rows")
            // Bytes sent to every other rank: dispatch from here plus return of what arrived here.
            let sent = measured["alltoallBytesTo"] as! [String: Int]
            for peer in 0..<4 where peer != rank {
                let predicted = evaluation.layers.map { $0.dispatchBytes[rank][peer] + $0.dispatchBytes[peer][rank] }.reduce(0, +)
                XCTAssertEqual(predicted, sent[String(peer)] ?? 0, "rank \(rank) → \(peer): all-to-all bytes")
            }
        }
        XCTAssertGreaterThan(evaluation.replicasUsed, 0, "the placement's replicas served rows")
        print("evaluate = runtime: rows per rank \(stats.map { ($0["expertTokens"] as! [String: [String: Int]]).values.flatMap(\.values).reduce(0, +) })")
    }

    /// `--rebalance-every`: experts move between ranks over MPI mid-generation, following EPLB on
    /// the routing seen; the model's outputs are exactly those of a run that never moves them.
    func testOnlineRebalancingMovesExpertsAndKeepsTheOutput() throws {
        let dir = try scratchDirectory(self)
        let model = "\(dir)/skewed.gguf"
        let synth = try launch("grok", ["synth", "--preset", "grok-1-tiny", "--vocab", "4096", "--router-skew", "1.2", "--seed", "3",
                                        "--output", model])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let prompts = "\(dir)/prompts.txt"
        try (1...6).map { "Prompt \($0) about experts on a cluster of servers" }.joined(separator: "\n")
            .write(toFile: prompts, atomically: true, encoding: .utf8)
        let args = ["--model", model, "--topology", D.topology("tiny-4r-ep4.json"), "--prompt-file", prompts, "--max-tokens", "12",
                    "--temperature", "0", "--ignore-eos"]
        let still = try runUnderMPI(ranks: 4, args + ["--logits-out", "\(dir)/still.npy"])
        XCTAssertEqual(still.status, 0, still.stderr)
        let moving = try runUnderMPI(ranks: 4, args + ["--logits-out", "\(dir)/moving.npy", "--rebalance-every", "3",
                                                       "--rebalance-redundant", "4", "--stats"])
        XCTAssertEqual(moving.status, 0, moving.stderr)
        XCTAssertEqual(moving.stdout, still.stdout)
        XCTAssertEqual(try NPY.readFloat32("\(dir)/moving.npy").values, try NPY.readFloat32("\(dir)/still.npy").values)
        let reports = moving.stderrLines.filter { $0.hasPrefix("rebalance (eplb): ") }
        XCTAssertGreaterThanOrEqual(reports.count, 3, moving.stderr)
        XCTAssertTrue(reports.contains { $0.contains("moved") && !$0.contains("moved 0.00 MB") }, moving.stderr)
        print(reports.joined(separator: "\n"))
    }
}
