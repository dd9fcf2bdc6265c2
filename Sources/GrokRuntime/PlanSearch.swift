import Foundation
import GrokTopology

/// `grok plan --search`: enumerates layouts (node counts, pipeline stages, tensor parallelism,
/// whole experts placed contiguously versus sliced experts), predicts each with the `Planner`,
/// and ranks them for a goal.
public enum PlanSearch {
    public enum Goal: String, CaseIterable, Sendable {
        /// The fewest nodes whose ranks fit in memory (then the fastest of those).
        case fit
        /// The lowest time per token at the batch.
        case latency
        /// The most tokens per second at the batch.
        case throughput
        /// The fewest nodes meeting `maxLatency` per token (then the fastest of those).
        case fewestNodes = "fewest-nodes"
    }

    public struct Candidate: Sendable {
        public var topology: Topology
        public var prediction: Planner.Prediction
        public var summary: String
        public var nodes: Int { topology.worldSize }
        public var maxMemory: Int { prediction.ranks.map(\.memoryBytes).max() ?? 0 }
    }

    /// Every valid layout for 1…`maxNodes` nodes (powers of two, one rank per node), predicted
    /// (with the workload's `routing`, when given: a trace the planner cannot use is an error
    /// here, not a reason to skip every layout).
    public static func candidates(model: TopologyExplainer.Model, profile: ClusterProfile, maxNodes: Int, batch: Int,
                                  context: Int, threads: Int, routing: RoutingTrace? = nil) throws -> [Candidate] {
        if let routing { try Planner.check(routing: routing, config: model.config, model: model.name) }
        let shape = model.config.shape
        var out: [Candidate] = []
        var nodes = 1
        while nodes <= maxNodes {
            for stages in 1...min(nodes, shape.layers) where nodes % stages == 0 {
                let ranks = nodes / stages
                for tensorParallel in ranks > 1 ? [true, false] : [true] {
                    for mode in ranks > 1 ? [ExpertMode.slice, .parallel] : [.parallel] {
                        let layout = make(layers: shape.layers, nodes: nodes, stages: stages, tensorParallel: tensorParallel, mode: mode)
                        guard (try? layout.validate(shape: shape, worldSize: nil)) != nil else { continue }
                        let planner = Planner(model: model, topology: layout, profile: profile, threads: threads, ranksPerNode: 1,
                                              routing: routing)
                        guard let p = try? planner.predict(batch: batch, context: context) else { continue }
                        out.append(Candidate(topology: layout, prediction: p, summary: layout.description))
                    }
                }
            }
            nodes *= 2
        }
        return out
    }

    /// The candidates for `goal`, best first (only those that fit in memory).
    public static func rank(_ all: [Candidate], goal: Goal, maxLatency: Double?) -> [Candidate] {
        let fitting = all.filter(\.prediction.fitsInMemory)
        switch goal {
        case .fit:
            return fitting.sorted { ($0.nodes, $0.prediction.stepSeconds) < ($1.nodes, $1.prediction.stepSeconds) }
        case .latency:
            return fitting.sorted { $0.prediction.stepSeconds < $1.prediction.stepSeconds }
        case .throughput:
            return fitting.sorted { $0.prediction.tokensPerSecond > $1.prediction.tokensPerSecond }
        case .fewestNodes:
            let limit = maxLatency ?? .infinity
            return fitting.filter { $0.prediction.stepSeconds <= limit }
                .sorted { ($0.nodes, $0.prediction.stepSeconds) < ($1.nodes, $1.prediction.stepSeconds) }
        }
    }

    /// A layout of `nodes` ranks in `stages` equal pipeline stages (earlier stages take the extra
    /// layers), each stage tensor-parallel or not, with experts sliced or placed contiguously.
    static func make(layers: Int, nodes: Int, stages: Int, tensorParallel: Bool, mode: ExpertMode) -> Topology {
        let perStage = nodes / stages
        var first = 0
        var list: [Topology.Stage] = []
        for s in 0..<stages {
            let count = layers / stages + (s < layers % stages ? 1 : 0)
            list.append(Topology.Stage(layers: first ..< first + count, ranks: Array(s * perStage ..< (s + 1) * perStage),
                                       tensorParallel: tensorParallel,
                                       experts: mode == .slice ? .slice : .contiguous))
            first += count
        }
        let experts = perStage == 1 ? "one rank" : mode == .slice ? "experts sliced over \(perStage)" : "whole experts contiguous over \(perStage)"
        let attention = perStage == 1 ? "" : tensorParallel ? ", attention TP \(perStage)" : ", attention replicated"
        return Topology(description: "\(nodes) node\(nodes == 1 ? "" : "s"): \(stages) stage\(stages == 1 ? "" : "s") of \(perStage) (\(experts)\(attention))",
                        worldSize: nodes, stages: list, source: "search")
    }

    /// `topology` as a layout file, its description followed by `reason`.
    public static func json(_ t: Topology, reason: String) -> String {
        var t = t
        t.description += ". " + reason
        return t.layoutFileText
    }
}
