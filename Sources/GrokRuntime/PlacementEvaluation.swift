import Foundation
import GrokModel
import GrokTensor
import GrokTopology

/// `grok place evaluate`: replays a routing trace against a layout without running the model,
/// doing per forward step exactly what `dispatchToExperts` (MixtureOfExperts.swift) does:
///
/// - the trace's tokens are cut into the runtime's own steps (micro-batches) when the trace
///   recorded them (`step.npy`): a step's rows are its tokens in (sequence, position) order, as
///   the runtime batched them; otherwise (or with `--batch`/`--prefill`) into steps of `batch`
///   tokens in (sequence, position) order, numbered from 0;
/// - the step's rows 0..<n are owned in contiguous chunks: stage rank i owns
///   `evenSlice(n, part: (i + step) mod P, of: P)` (owners rotate with the step);
/// - each (row, chosen expert) is computed on the owner when the owner holds a replica, else on
///   replica `(row + step) mod replicas` in the order the placement lists them;
/// - rows computed elsewhere travel owner → expert rank (`moe dispatch`, rows × d × 4 bytes) and
///   back (`moe return`, the same bytes reversed).
///
/// Expert-sliced stages compute a slice of every (row, expert) on every rank and move no rows.
public struct PlacementEvaluation: Sendable, Codable {
    public struct Layer: Sendable, Codable {
        public var layer: Int
        /// Expert rows (a row routed to an expert) computed by each world rank.
        public var rowsPerRank: [Int]
        /// max / mean of `rowsPerRank` over the stage's ranks (1 = balanced).
        public var imbalance: Double
        /// Mean over steps of the busiest rank's expert rows in that step (what a step waits for).
        public var busiestRowsPerStep: Double
        /// Dispatch bytes `[from][to]` over world ranks (the return moves the same bytes reversed).
        public var dispatchBytes: [[Int]]
        /// Rows that left their owner.
        public var remoteRows: Int
        /// Copies beyond the first in this layer, and those that computed at least one row.
        public var replicasPlaced: Int
        public var replicasUsed: Int
        /// Tokens per expert (from the trace).
        public var expertLoads: [Int]
        /// Predicted seconds per step of this layer's MoE (see `TimeEstimate`).
        public var secondsPerStep: Double
    }

    /// The MoE time model: α–β of each collective from the cluster profile, plus the slowest rank's
    /// expert work.
    public struct TimeEstimate: Sendable, Codable {
        public var method: String
        /// Mean per step, summed over layers; parts in seconds.
        public var stepSeconds: Double
        public var countsSeconds: Double
        public var dispatchSeconds: Double
        public var expertSeconds: Double
        public var returnSeconds: Double
        public var combineSeconds: Double
        /// False when no model was given: the expert part is 0 (only the network is modelled).
        public var includesExperts: Bool
    }

    public var trace: String
    public var topology: String
    public var model: String?
    public var tokens: Int
    public var batch: Int
    /// Each sequence's first `prefill` tokens replayed as one step, when set.
    public var prefill: Int?
    public var steps: Int
    public var worldSize: Int
    public var layersCount: Int
    public var experts: Int
    public var expertsPerToken: Int
    public var width: Int
    public var bytesPerRow: Int
    public var layers: [Layer]
    /// Summed over layers.
    public var rowsPerRank: [Int]
    /// Mean over layers of each layer's max/mean.
    public var imbalance: Double
    /// max/mean of the rows summed over layers.
    public var overallImbalance: Double
    /// Dispatch bytes `[from][to]`, summed over layers and steps.
    public var dispatchBytes: [[Int]]
    /// Dispatch plus return bytes over the whole trace.
    public var alltoallBytes: Int
    public var alltoallBytesPerStep: Double
    public var replicasPlaced: Int
    public var replicasUsed: Int
    /// Of the pairs (expert at layer l, expert at layer l+1) one token chose, the fraction computed on
    /// the same rank (what Lina/ExFlow co-location aims at; this runtime returns rows to their owner
    /// after every layer, so it does not change the bytes here).
    public var crossLayerLocality: Double
    public var time: TimeEstimate

    /// What the replay needs besides trace and layout.
    public struct Options: Sendable {
        public var batch: Int
        /// Whether `batch` was asked for; if not and the trace recorded its steps, those are replayed.
        public var batchGiven: Bool
        /// Hidden width d (bytes per row = d × 4).
        public var width: Int
        /// For the expert work in the time model (nil: network only).
        public var model: TopologyExplainer.Model?
        public var profile: ClusterProfile
        /// Threads per rank for the kernels' rates (default: the node's cores).
        public var threads: Int?
        /// When set: each sequence's first `prefill` tokens are one step (its prompt, as the
        /// coordinator runs it), and the rest of that sequence steps of `batch`.
        public var prefill: Int?

        public init(batch: Int? = nil, width: Int, model: TopologyExplainer.Model? = nil, profile: ClusterProfile = .default,
                    threads: Int? = nil, prefill: Int? = nil) {
            self.batch = batch ?? 1
            self.batchGiven = batch != nil
            self.width = width
            self.model = model
            self.profile = profile
            self.threads = threads
            self.prefill = prefill
        }
    }

    /// The steps a replay cuts `trace` into: each step's number and its tokens, in row order.
    /// The trace's recorded steps when it has them and no `batch`/`prefill` was asked for.
    public static func steps(_ trace: RoutingTrace, batch B: Int?, prefill: Int?) -> [(id: Int, tokens: [Int])] {
        if B == nil, prefill == nil, let recorded = trace.step {
            var groups: [Int32: [Int]] = [:]
            for (t, s) in recorded.enumerated() { groups[s, default: []].append(t) }
            return groups.keys.sorted().map { (Int($0), groups[$0]!) }
        }
        let size = max(B ?? 1, 1)
        var out: [(id: Int, tokens: [Int])] = []
        func chunks(_ range: Range<Int>) {
            var t = range.lowerBound
            while t < range.upperBound { out.append((out.count, Array(t ..< min(t + size, range.upperBound)))); t += size }
        }
        guard let prefill else { chunks(0..<trace.tokens); return out }
        var start = 0
        while start < trace.tokens {
            var end = start + 1
            while end < trace.tokens && trace.sequence[end] == trace.sequence[start] { end += 1 }
            let prompt = min(max(prefill, 0), end - start)
            if prompt > 0 { out.append((out.count, Array(start ..< start + prompt))) }
            chunks(start + prompt ..< end)
            start = end
        }
        return out
    }

    /// A shape with the trace's layers and experts that any stage sizes divide (for layouts checked
    /// without a model).
    static func placeholderShape(layers: Int, experts: Int, k: Int, topology: Topology) -> ModelShape {
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let lcm = topology.stages.map { max($0.ranks.count, 1) }.reduce(1) { $0 / gcd($0, $1) * $1 }
        return ModelShape(layers: layers, queryHeads: lcm, kvHeads: lcm, experts: experts, expertsPerToken: k,
                          expertWidth: lcm, denseWidth: 0, vocabulary: 1)
    }

    /// Replays `trace` against `topology` (validated here against `shape`, or the trace's layers
    /// and experts alone when nil).
    public static func evaluate(trace: RoutingTrace, topology: Topology, shape: ModelShape? = nil, options: Options) throws -> PlacementEvaluation {
        let L = trace.layers, E = trace.experts, k = trace.expertsPerToken, W = topology.worldSize
        guard options.batch >= 1 else { throw PlacementError("--batch: expected ≥ 1, found \(options.batch)") }
        guard options.width >= 1 else { throw PlacementError("--width: expected ≥ 1, found \(options.width)") }
        if let shape {
            guard shape.layers == L, shape.experts == E else {
                throw PlacementError("trace \(trace.source): \(L) layers × \(E) experts, but the model has \(shape.layers) × \(shape.experts)")
            }
        }
        let checkShape = shape ?? placeholderShape(layers: L, experts: E, k: k, topology: topology)
        try topology.validate(shape: checkShape, worldSize: nil)
        let stagePlans = topology.stagePlans(shape: checkShape)
        var stageOfLayer = [Int](repeating: 0, count: L)
        for (s, plan) in stagePlans.enumerated() { for l in plan.layers { stageOfLayer[l] = s } }

        let d = options.width, bytesPerRow = d * 4
        let profile = options.profile
        let threads = options.threads ?? max(profile.node.cores, 1)

        // Expert weights and their kernel time for `rows` rows (memory- or FLOP-bound).
        var expertTime: ((Int, Int) -> Double)? = nil          // (rows, slice parts) → seconds
        if let model = options.model {
            let c = model.config, F = c.expertFFNWidth, dm = c.modelWidth
            let gate = (try? model.dtype(of: "blk.0.ffn_gate_exps.weight")) ?? .f32
            let down = (try? model.dtype(of: "blk.0.ffn_down_exps.weight")) ?? .f32
            let bytes = Double(2 * F * gate.rowBytes(dm) + dm * down.rowBytes(F))
            let params = Double(3 * dm * F)
            let rates = profile.kernel(gate.name.lowercased(), threads: threads, tokens: 1)
            let matvec = min(rates.matvecBytesPerSecond, profile.perRankBandwidth(ranks: 1, threads: threads))
            let flops = profile.kernel(gate.name.lowercased(), threads: threads, tokens: 64).matmatFlopsPerSecond
            expertTime = { rows, parts in
                let share = Double(parts)
                return max(bytes / share / matvec, 2 * Double(rows) * params / share / flops)
            }
        }

        let loads = trace.loads()
        var rows = [[Int]](repeating: [Int](repeating: 0, count: W), count: L)
        var pairs = [[[Int]]](repeating: [[Int]](repeating: [Int](repeating: 0, count: W), count: W), count: L)
        var busiest = [Double](repeating: 0, count: L)
        var used = [[[Bool]]](repeating: [], count: L)
        for l in 0..<L {
            used[l] = stagePlans[stageOfLayer[l]].placement[l]!.map { [Bool](repeating: false, count: $0.count) }
        }
        var counts = 0.0, dispatch = 0.0, expert = 0.0, combine = 0.0
        var layerSeconds = [Double](repeating: 0, count: L)
        var localityHits = 0, localityPairs = 0

        let T = trace.tokens, B = options.batch
        let stepList = steps(trace, batch: options.batchGiven ? B : nil, prefill: options.prefill)
        let steps = stepList.count
        var serving = [Int](repeating: 0, count: (stepList.map(\.tokens.count).max() ?? 0) * L * k)   // [row, layer, choice] → world rank
        for (stepID, stepTokens) in stepList {
            let n = stepTokens.count
            for l in 0..<L {
                let plan = stagePlans[stageOfLayer[l]], ranks = plan.ranks, P = ranks.count
                let placement = plan.placement[l]!
                var stepRows = [Int](repeating: 0, count: P)
                var sent = [Int](repeating: 0, count: P), received = [Int](repeating: 0, count: P)
                var active = [[Int: Int]](repeating: [:], count: P)   // stage rank → expert → rows
                let slice = plan.expertMode == .slice && P > 1
                for owner in 0..<P {
                    for i in evenSlice(n, part: (owner + stepID) % P, of: P) {
                        for j in 0..<k {
                            let e = trace.expert(token: stepTokens[i], layer: l, choice: j)
                            if slice {
                                for r in 0..<P { stepRows[r] += 1; rows[l][ranks[r]] += 1; active[r][e, default: 0] += 1 }
                                serving[(i * L + l) * k + j] = -1
                                continue
                            }
                            let replicas = placement[e].map { ranks.firstIndex(of: $0)! }
                            let slot = replicas.firstIndex(of: owner) ?? (i + stepID) % replicas.count
                            let destination = replicas[slot]
                            used[l][e][slot] = true
                            stepRows[destination] += 1
                            rows[l][ranks[destination]] += 1
                            active[destination][e, default: 0] += 1
                            serving[(i * L + l) * k + j] = ranks[destination]
                            if destination != owner {
                                pairs[l][ranks[owner]][ranks[destination]] += bytesPerRow
                                sent[owner] += 1
                                received[destination] += 1
                            }
                        }
                    }
                }
                busiest[l] += Double(stepRows.max() ?? 0)
                // Time of this layer in this step.
                var t = 0.0
                if P > 1 && !slice {
                    let c = profile.collective("alltoallv", ranks: P)
                    let countsT = c.alpha + Double(P * E * 4) / c.bytesPerSecond
                    let busiestBytes = Double(zip(sent, received).map { max($0, $1) }.max() ?? 0) * Double(bytesPerRow)
                    let move = c.alpha + busiestBytes / c.bytesPerSecond
                    counts += countsT
                    dispatch += move
                    t += countsT + 2 * move
                }
                if P > 1 {
                    let c = profile.collective("allreduce", ranks: P)
                    let join = c.alpha + Double(n * bytesPerRow) / c.bytesPerSecond
                    combine += join
                    t += join
                }
                if let expertTime {
                    let work = active.map { experts in experts.values.reduce(0.0) { $0 + expertTime($1, slice ? P : 1) } }.max() ?? 0
                    expert += work
                    t += work
                }
                layerSeconds[l] += t
            }
            // Cross-layer locality of this step's rows.
            if L > 1 {
                for i in 0..<n {
                    for l in 0..<(L - 1) {
                        for a in 0..<k {
                            let ra = serving[(i * L + l) * k + a]
                            for b in 0..<k {
                                localityPairs += 1
                                if ra >= 0 && ra == serving[(i * L + l + 1) * k + b] { localityHits += 1 }
                            }
                        }
                    }
                }
            }
        }

        let stepCount = Double(max(steps, 1))
        func ratio(_ values: [Int]) -> Double {
            let mean = Double(values.reduce(0, +)) / Double(max(values.count, 1))
            return mean > 0 ? Double(values.max() ?? 0) / mean : 1
        }
        var layerResults: [Layer] = []
        var totalPairs = [[Int]](repeating: [Int](repeating: 0, count: W), count: W)
        for l in 0..<L {
            let plan = stagePlans[stageOfLayer[l]]
            let stageRows = plan.ranks.map { rows[l][$0] }
            let placed = plan.expertMode == .slice ? 0 : plan.placement[l]!.reduce(0) { $0 + $1.count - 1 }
            let usedCopies = plan.expertMode == .slice ? 0 : used[l].reduce(0) { $0 + max($1.filter { $0 }.count - 1, 0) }
            for a in 0..<W { for b in 0..<W { totalPairs[a][b] += pairs[l][a][b] } }
            layerResults.append(Layer(layer: l, rowsPerRank: rows[l], imbalance: ratio(stageRows), busiestRowsPerStep: busiest[l] / stepCount,
                                      dispatchBytes: pairs[l], remoteRows: pairs[l].joined().reduce(0, +) / bytesPerRow,
                                      replicasPlaced: placed, replicasUsed: usedCopies, expertLoads: loads[l],
                                      secondsPerStep: layerSeconds[l] / stepCount))
        }
        let summed = (0..<W).map { r in rows.reduce(0) { $0 + $1[r] } }
        let a2a = 2 * totalPairs.joined().reduce(0, +)
        let method = "α–β per collective from the cluster profile (alltoallv of the row counts; dispatch and return: α + the busiest rank's max(sent, received) bytes ÷ β; moe combine allreduce of [n, d])"
            + (expertTime != nil ? " + per rank Σ over the experts it runs in the step of max(expert weight bytes ÷ matvec rate, 2·rows·3·d·F ÷ matmat FLOP/s); each layer waits for its slowest rank; Σ over layers, mean over steps"
                                 : "; no model given, so expert compute is not included (give --model)")
        let time = TimeEstimate(method: method, stepSeconds: layerSeconds.reduce(0, +) / stepCount,
                                countsSeconds: counts / stepCount, dispatchSeconds: dispatch / stepCount,
                                expertSeconds: expert / stepCount, returnSeconds: dispatch / stepCount,
                                combineSeconds: combine / stepCount, includesExperts: expertTime != nil)
        return PlacementEvaluation(
            trace: trace.source, topology: topology.source, model: options.model?.name, tokens: T, batch: B, prefill: options.prefill, steps: steps,
            worldSize: W, layersCount: L, experts: E, expertsPerToken: k, width: d, bytesPerRow: bytesPerRow,
            layers: layerResults, rowsPerRank: summed,
            imbalance: layerResults.map(\.imbalance).reduce(0, +) / Double(max(L, 1)),
            overallImbalance: ratio(summed), dispatchBytes: totalPairs, alltoallBytes: a2a,
            alltoallBytesPerStep: Double(a2a) / stepCount,
            replicasPlaced: layerResults.reduce(0) { $0 + $1.replicasPlaced }, replicasUsed: layerResults.reduce(0) { $0 + $1.replicasUsed },
            crossLayerLocality: localityPairs > 0 ? Double(localityHits) / Double(localityPairs) : 0,
            time: time)
    }

    /// Evaluates a placement directly (one stage of ranks 0..<R).
    public static func evaluate(trace: RoutingTrace, placement: ExpertPlacement, tensorParallel: Bool = false, shape: ModelShape? = nil,
                                options: Options) throws -> PlacementEvaluation {
        var t = placement.topology(description: "", model: nil, tensorParallel: tensorParallel)
        t.source = "(placement)"
        return try evaluate(trace: trace, topology: t, shape: shape, options: options)
    }
}
