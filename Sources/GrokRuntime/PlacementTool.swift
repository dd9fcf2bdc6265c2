import Foundation
import GrokModel
import GrokTensor
import GrokTopology

/// The pieces of `grok place` beyond the strategies and the replay: which model a trace is for,
/// the layout file a placement becomes, and the side-by-side comparison.
public enum PlacementTool {
    /// The model for a trace: `argument` (a GGUF file or preset) when given, else the trace's
    /// `model` when it names a preset, else nil. Its layers and experts must match the trace's.
    public static func model(_ argument: String?, dtype: DType?, trace: RoutingTrace) throws -> TopologyExplainer.Model? {
        let model: TopologyExplainer.Model
        if let argument {
            model = try TopologyExplainer.model(argument, dtype: dtype)
        } else if ModelConfig.preset(trace.model) != nil || trace.model == "embedded" || FileManager.default.fileExists(atPath: trace.model) {
            model = try TopologyExplainer.model(trace.model, dtype: dtype)   // a preset, or the file the trace was recorded from
        } else {
            return nil
        }
        try trace.check(against: model.config, model: model.name)
        return model
    }

    /// A written layout: the file's text, the parsed topology, and the placement's replay.
    public struct Layout {
        public var json: String
        public var topology: Topology
        public var placement: ExpertPlacement
        public var expectedImbalance: Double
        public var evaluation: PlacementEvaluation
    }

    /// Places `trace` with `strategy` and makes the one-stage layout file: parsed back and validated
    /// against `model` (or the trace's layers and experts when nil). Its description names the
    /// strategy, the trace and the imbalance.
    public static func layout(trace: RoutingTrace, strategy: PlacementStrategy, options: PlacementOptions, tensorParallel: Bool,
                              model: TopologyExplainer.Model?, evaluation: PlacementEvaluation.Options) throws -> Layout {
        let placement = try PlacementStrategies.place(strategy, trace: trace, options: options)
        let expected = placement.expectedImbalance(loads: trace.loads())
        let shape = model?.config.shape
        let replay = try PlacementEvaluation.evaluate(trace: trace, placement: placement, shape: nil, options: evaluation)
        let R = options.ranks, S = options.redundantSlots
        var description = "grok place --strategy \(strategy.rawValue): trace \(trace.source) (\(trace.tokens) tokens"
            + (trace.model.isEmpty ? "" : " of \(trace.model)") + "), \(R) rank\(R == 1 ? "" : "s")"
        if strategy != .contiguous && strategy != .roundRobin { description += ", \(S) redundant slot\(S == 1 ? "" : "s") per layer" }
        if let M = options.maxExpertsPerRank { description += ", at most \(M) experts per rank" }
        description += String(format: ". Expected load imbalance %.3f (max/mean rank load, replicas sharing tokens equally); replayed at batch %d with the runtime's replica rule: imbalance %.3f, %d of %d replicas used",
                              expected, evaluation.batch, replay.imbalance, replay.replicasUsed, replay.replicasPlaced)
        if model != nil || evaluation.width > 1 {
            description += String(format: ", %.3f MB all-to-all per step", replay.alltoallBytesPerStep / 1e6)
        }
        description += "."
        let text = placement.layoutJSON(description: description, model: trace.model.isEmpty ? model?.name : trace.model,
                                        tensorParallel: tensorParallel)
        var topology = try Topology(json: Data(text.utf8), source: "grok place")
        do {
            try topology.validate(shape: shape ?? PlacementEvaluation.placeholderShape(layers: trace.layers, experts: trace.experts,
                                                                                     k: trace.expertsPerToken, topology: topology),
                                  worldSize: nil)
        } catch let e as TopologyError where tensorParallel && e.message.contains("tensor-parallel size") {
            throw PlacementError("\(e.message); write it with --stage-layout replicated (attention replicated on every rank)")
        } catch let e as TopologyError {
            throw PlacementError("the layout does not validate: \(e.message)")
        }
        topology.source = "grok place"
        return Layout(json: text, topology: topology, placement: placement, expectedImbalance: expected, evaluation: replay)
    }

    /// Every strategy in `strategies` placed and replayed; a strategy that cannot place gets its error.
    public static func compare(trace: RoutingTrace, strategies: [PlacementStrategy], options: PlacementOptions,
                               evaluation: PlacementEvaluation.Options) -> [PlacementReport.Comparison] {
        let loads = trace.loads()
        let transitions = strategies.contains(.affinity) ? trace.transitions() : nil
        return strategies.map { strategy in
            do {
                let placement = try PlacementStrategies.place(strategy, loads: loads, transitions: transitions, options: options)
                var e = try PlacementEvaluation.evaluate(trace: trace, placement: placement, options: evaluation)
                e.topology = strategy.rawValue
                return PlacementReport.Comparison(strategy: strategy.rawValue, evaluation: e,
                                                  expectedImbalance: placement.expectedImbalance(loads: loads),
                                                  maxExpertsPerRank: placement.maxExpertsPerRank, error: nil)
            } catch {
                return PlacementReport.Comparison(strategy: strategy.rawValue, evaluation: nil, expectedImbalance: nil,
                                                  maxExpertsPerRank: nil, error: "\(error)")
            }
        }
    }
}
