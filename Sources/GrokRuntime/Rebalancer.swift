import Foundation
import GrokComm
import GrokModel
import GrokTopology

/// Online expert rebalancing (`grok-coordinator --rebalance-every N`): every rank contributes the
/// tokens its experts computed since the last time, rank 0 computes a new placement for every
/// expert-parallel stage with a strategy of `grok place` (EPLB by default), broadcasts it, and
/// every rank moves expert weights to follow it (`GrokModel.adopt`). Rank 0 reports what moved.
public final class Rebalancer {
    public let every: Int
    public var strategy: PlacementStrategy
    /// Spare expert slots per layer of a stage (EPLB's redundant experts).
    public var redundant: Int
    /// What each rebalance did, on rank 0.
    public private(set) var reports: [String] = []
    private var seen: [Int: [Int: Int]] = [:]
    let log: (String) -> Void

    public init(every: Int, strategy: PlacementStrategy = .eplb, redundant: Int = 0, log: @escaping (String) -> Void = { _ in }) {
        self.every = every
        self.strategy = strategy
        self.redundant = redundant
        self.log = log
    }

    /// Collective: every rank calls it at the same step.
    public func run(_ model: GrokModel, world: Communicator) throws {
        let c = model.config, L = c.layerCount, E = c.expertCount
        // 1. Tokens per (layer, expert) since the last rebalance, summed over the world.
        var counts = [Float](repeating: 0, count: L * E)
        for (l, experts) in model.expertTokens {
            for (e, n) in experts { counts[l * E + e] = Float(n - (seen[l]?[e] ?? 0)) }
        }
        seen = model.expertTokens
        try world.allreduceSum(&counts, count: counts.count)
        // 2. Rank 0 places each expert-parallel stage and broadcasts: per layer, per expert, the ranks.
        var words: [Int64] = []
        if world.rank == 0 {
            for stage in model.plan.stages where stage.expertMode == .parallel && stage.ranks.count > 1 {
                let layers = Array(stage.layers)
                let loads = layers.map { l in (0..<E).map { Int(counts[l * E + $0]) } }
                let placed = try PlacementStrategies.place(strategy, loads: loads,
                                                           options: PlacementOptions(ranks: stage.ranks.count, redundantSlots: redundant))
                for (i, l) in layers.enumerated() {
                    words.append(Int64(l))
                    for e in 0..<E {
                        let ranks = placed.layers[i][e].map { stage.ranks[$0] }
                        words.append(Int64(ranks.count))
                        words += ranks.map(Int64.init)
                    }
                }
            }
        }
        if world.rank == 0 {
            // Keep the current placement unless the new one balances these counts better.
            var candidate = model.plan
            for (l, experts) in decode(words, E: E) {
                if let s = candidate.stages.firstIndex(where: { $0.layers.contains(l) }) { candidate.stages[s].placement[l] = experts }
            }
            if imbalance(candidate, counts: counts, E: E) >= imbalance(model.plan, counts: counts, E: E) { words = [] }
        }
        try world.broadcast(&words, root: 0)
        let placement = decode(words, E: E)
        let before = imbalance(model.plan, counts: counts, E: E)
        // 3. Every rank moves weights to follow it.
        var moved = [Float(try model.adopt(placement: placement)) / 1e6]
        try world.allreduceSum(&moved, count: 1)
        let after = imbalance(model.plan, counts: counts, E: E)
        if world.rank == 0 {
            let line = placement.isEmpty
                ? String(format: "rebalance (%@): kept the placement (imbalance of the last %d steps' rows %.3f; the new one was not better)\n",
                         strategy.rawValue, every, before)
                : String(format: "rebalance (%@): moved %.2f MB of expert weights; imbalance of the last %d steps' rows %.3f → %.3f\n",
                         strategy.rawValue, moved[0], every, before, after)
            reports.append(line)
            log(line)
        }
    }

    /// The broadcast placement: per layer, per expert, the world ranks.
    func decode(_ words: [Int64], E: Int) -> [Int: [[Int]]] {
        var placement: [Int: [[Int]]] = [:]
        var i = 0
        while i < words.count {
            let l = Int(words[i]); i += 1
            var experts: [[Int]] = []
            for _ in 0..<E {
                let n = Int(words[i]); i += 1
                experts.append(words[i..<(i + n)].map(Int.init)); i += n
            }
            placement[l] = experts
        }
        return placement
    }

    /// Max / mean expert rows per rank over the parallel stages' layers, had `counts` been routed
    /// under `plan` (a replicated expert's rows shared equally by its replicas).
    func imbalance(_ plan: RankPlan, counts: [Float], E: Int) -> Double {
        var rows: [Int: Double] = [:]
        for stage in plan.stages where stage.expertMode == .parallel && stage.ranks.count > 1 {
            for l in stage.layers {
                for (e, ranks) in stage.placement[l]!.enumerated() {
                    for r in ranks { rows[r, default: 0] += Double(counts[l * E + e]) / Double(ranks.count) }
                }
            }
        }
        let values = Array(rows.values)
        guard let top = values.max(), !values.isEmpty else { return 1 }
        let mean = values.reduce(0, +) / Double(values.count)
        return mean > 0 ? top / mean : 1
    }
}
