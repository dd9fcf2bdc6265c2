import Foundation
import GrokCheckpoint
import GrokModel
import GrokTensor
import GrokTopology

/// The cost model behind `grok plan`: what one decode step (and a prefill) costs each rank under
/// a layout, from the blocks each rank really holds (`WeightBlock.list`, the loader's own list),
/// the collectives the forward pass really makes (`Transformer.swift`, `MixtureOfExperts.swift`:
/// `attention join`, `moe dispatch`/`return`, `moe combine`, `embedding join`, `stage send`,
/// `logits gather`, rank 0's step command) and a `ClusterProfile`.
///
/// Per rank and per micro-batch of a stage, layer by layer: compute = weight bytes read ÷ the
/// kernels' matvec rate, or FLOPs ÷ the matmat rate when that is larger, plus the KV cache read
/// ÷ bandwidth; communication = Σ α + bytes/β of each collective. Every layer of a multi-rank
/// stage ends in a collective (attention join, moe dispatch/return, moe combine) that waits for
/// the stage's slowest rank, so a stage's time is Σ over its layers of the slowest rank's time
/// in that layer. Ranks of one node share its memory bus (each streams its share) and its cores
/// (a layer takes at least the node's work over its cores). Stages run one after the other per
/// micro-batch, so a step of M micro-batches over S stages takes Σ_s t_s + (M − 1) × max_s t_s;
/// the part beyond the work itself is the pipeline bubble. Which experts a micro-batch's tokens choose is drawn 64 times, per layer:
/// from a routing trace of the workload when one is given (`routing`), else uniform top-k.
public struct Planner {
    /// The model's name (for messages), shape and dtypes.
    public var modelName: String
    public var config: ModelConfig
    public var dtypes: [String: DType]
    public var topology: Topology
    public var profile: ClusterProfile
    /// Threads per rank, and ranks sharing one node (they share its memory bandwidth).
    public var threads: Int
    public var ranksPerNode: Int
    /// The workload's routing (`grok-coordinator --trace-routing`): expert choices are drawn from
    /// its tokens instead of uniformly. Routing does not depend on the layout (every layout
    /// computes the same tokens), so a trace from any run of the model and workload will do.
    public var routing: RoutingTrace?
    /// Micro-batches of the step `predict` is modelling (set there).
    var microBatchesInStep = 1

    public init(model: TopologyExplainer.Model, topology: Topology, profile: ClusterProfile, threads: Int, ranksPerNode: Int,
                routing: RoutingTrace? = nil) {
        modelName = model.name
        config = model.config
        dtypes = model.dtypes
        self.topology = topology
        self.profile = profile
        self.threads = threads
        self.ranksPerNode = ranksPerNode
        self.routing = routing
    }

    /// One rank's share of a decode step.
    public struct RankCost: Codable, Sendable {
        public var rank: Int
        public var stage: Int
        public var weightBytes: Int
        public var kvCacheBytes: Int
        public var bufferBytes: Int
        public var memoryBytes: Int { weightBytes + kvCacheBytes + bufferBytes }
        /// Per decode step (all micro-batches).
        public var bytesRead: Double
        public var flops: Double
        public var computeSeconds: Double
        public var communicationSeconds: Double
        /// Per collective kind: messages and bytes this rank sends per step.
        public var messages: [String: Double]
        public var bytesSent: [String: Double]
        /// Whole experts it holds (not slices) that take at least 1.5× their layer's mean tokens.
        public var hotExperts = 0
    }

    public struct Prediction: Codable, Sendable {
        public var batch: Int
        public var context: Int
        public var microBatches: Int
        public var ranks: [RankCost]
        public var stepSeconds: Double
        public var computeSeconds: Double
        public var communicationSeconds: Double
        public var bubbleSeconds: Double
        public var tokensPerSecond: Double
        public var prefillSeconds: Double
        public var prefillTokens: Int
        public var bottleneck: String
        public var fitsInMemory: Bool
    }

    /// Refuses a routing trace the planner cannot draw from: another model's, or an empty one.
    public static func check(routing: RoutingTrace, config: ModelConfig, model: String) throws {
        try routing.check(against: config, model: model)
        guard routing.tokens > 0 else { throw RoutingTraceError(path: routing.source, message: "holds no tokens") }
    }

    /// Predicts a decode step of `batch` sequences at `context` positions each, and the prefill of
    /// one `context`-token prompt.
    public func predict(batch: Int, context: Int) throws -> Prediction {
        if let routing { try Self.check(routing: routing, config: config, model: modelName) }
        var planner = self
        let sequences = max(batch, 1)
        planner.microBatchesInStep = topology.stages.count > 1 ? min(topology.effectiveMicroBatches, sequences) : 1
        try topology.validate(shape: config.shape, worldSize: nil, source: topology.source)
        return planner.modelStep(batch: batch, context: context)
    }

    private func modelStep(batch: Int, context: Int) -> Prediction {
        let plans = topology.plans(shape: config.shape)
        let stages = plans[0].stages
        let sequences = max(batch, 1)
        let micro = microBatchesInStep
        let perMicro = Double(sequences) / Double(micro)
        let bandwidth = profile.perRankBandwidth(ranks: activeRanksPerNode, threads: threads)
        let held = plans.map { weights($0) }
        let draws = expertDraws(tokens: perMicro, decode: true)
        let decode = stageTimes(plans, held, tokens: perMicro, sequences: sequences, context: context, bandwidth: bandwidth,
                                draws: draws, micro: micro)
        var costs = decode.costs
        let stageSeconds = decode.seconds, stageCompute = decode.compute                          // one micro-batch
        // Hot experts (with a routing trace; uniform routing has none): mean tokens over the draws
        // at least 1.5× the layer's mean per expert.
        let E = Double(config.expertCount)
        let hot = (0..<config.layerCount).map { l -> Set<Int> in
            let load = (0..<config.expertCount).map { e in draws.map { Double($0[l][e]) }.reduce(0, +) / Double(draws.count) }
            let mean = load.reduce(0, +) / E
            return Set(load.indices.filter { mean > 0 && load[$0] >= 1.5 * mean })
        }
        for (i, plan) in plans.enumerated() where routing != nil && plan.stagePlan.expertMode == .parallel {
            costs[i].hotExperts = held[i].experts.reduce(0) { n, slot in
                n + slot.value.keys.filter { hot[plan.stagePlan.layers.lowerBound + slot.key].contains($0) }.count
            }
        }
        // The step: M micro-batches through S stages (Σ_s t_s + (M − 1)·max_s t_s), then rank 0's
        // next command and the logits gather. The slowest stage is busy M·max t_s of it; the rest
        // of the stages' time, Σ t_s − max t_s, is the pipeline bubble.
        let slowest = stageSeconds.max() ?? 0
        let command = cost("broadcast", ranks: topology.worldSize, bytes: 8 * (3 + 4 * sequences)).seconds
        let gatherBytes = Double(sequences * config.vocabularySize * 4) / Double(stages.last!.ranks.count)
        let gather = stages.last!.ranks == [0] ? 0 : cost("pointToPoint", ranks: 2, bytes: Int(gatherBytes)).seconds
        let step = stageSeconds.reduce(0, +) + Double(micro - 1) * slowest + command + gather
        let bubble = stageSeconds.reduce(0, +) - slowest
        let compute = Double(micro) * (stageCompute.max() ?? 0)
        let communication = max(0, step - compute - bubble)
        let memory = profile.node.memoryBytes / ranksPerNode
        let fits = costs.allSatisfy { $0.memoryBytes <= memory }
        // The prefill of one `context`-token prompt: the same model with all its tokens in one
        // micro-batch (the kernels' sgemm path, every expert busy), attention over half the prompt
        // on average, the stages one after the other.
        let prefill = stageTimes(plans, held, tokens: Double(context), sequences: 1, context: context / 2, bandwidth: bandwidth,
                                 draws: expertDraws(tokens: Double(context), decode: false), micro: 1).seconds.reduce(0, +)
        return Prediction(batch: sequences, context: context, microBatches: micro, ranks: costs, stepSeconds: step,
                          computeSeconds: compute, communicationSeconds: communication, bubbleSeconds: bubble,
                          tokensPerSecond: Double(sequences) / step, prefillSeconds: prefill, prefillTokens: context,
                          bottleneck: bottleneck(costs, stageCompute: stageCompute, micro: micro, bubble: bubble, step: step, fits: fits, memory: memory),
                          fitsInMemory: fits)
    }

    // MARK: - One rank

    private func dtype(_ name: String) -> DType { dtypes[name] ?? .f32 }

    private func bytes(_ b: WeightBlock) -> Double { Double(b.rows.count * dtype(b.name).rowBytes(b.columns.count)) }

    /// A stage's time from its ranks' `[draw][slot]` seconds, with and without communication:
    /// per draw, Σ over slots (its layers, and the rest of the forward pass) of the slowest rank;
    /// the mean over draws. Ranks sharing a node share its cores (`nodes[i]`: rank i's node;
    /// `capacity`: ranks a node runs at once): a slot also takes at least the node's compute
    /// over its capacity (the slowest rank's communication after it). A waiting rank yields its
    /// core to a working one, so more ranks than cores cost only when all of them work.
    public static func synchronised(_ ranks: [[[Double]]], compute: [[[Double]]]? = nil, nodes: [Int] = [],
                                    capacity: Double = .infinity) -> Double {
        guard let first = ranks.first, !first.isEmpty else { return 0 }
        var total = 0.0
        for d in first.indices {
            for slot in first[d].indices {
                var t = ranks.map { $0[d][slot] }.max()!
                if let compute, capacity.isFinite {
                    for node in Set(nodes) {
                        let members = ranks.indices.filter { nodes[$0] == node }
                        let work = members.map { compute[$0][d][slot] }.reduce(0, +)
                        let waiting = members.map { ranks[$0][d][slot] - compute[$0][d][slot] }.max() ?? 0
                        t = max(t, work / capacity + waiting)
                    }
                }
                total += t
            }
        }
        return total / Double(first.count)
    }

    /// Tokens per expert of each layer (`[layer][expert]`) for a micro-batch of `tokens` tokens,
    /// drawn 64 times (16 for a prefill). From `routing`: a decode micro-batch takes the tokens of
    /// one of the trace's decode steps (one token per sequence, as the runtime batched them) when
    /// it recorded steps that large, else random tokens of the trace. Without a trace: uniform
    /// top-k without replacement, independently per layer.
    private func expertDraws(tokens: Double, decode: Bool) -> [[[Int]]] {
        var rng = SplitMix64(seed: 0x5eed)
        let E = config.expertCount, L = config.layerCount, k = min(config.expertsPerToken, E)
        let n = max(1, Int(tokens.rounded(.up)))
        let count = decode ? 64 : 16
        guard let trace = routing else {
            var pool: [Int] = []                 // the experts not yet chosen by this token, reused
            return (0..<count).map { _ in
                (0..<L).map { _ in
                    var counts = [Int](repeating: 0, count: E)
                    for _ in 0..<n {
                        pool.removeAll(keepingCapacity: true)
                        pool.append(contentsOf: 0..<E)
                        for _ in 0..<k { counts[pool.remove(at: Int(rng.next() % UInt64(pool.count)))] += 1 }
                    }
                    return counts
                }
            }
        }
        // The recorded decode steps (one token per sequence) with at least n tokens.
        let steps = !decode || trace.step == nil ? [] : PlacementEvaluation.steps(trace, batch: nil, prefill: nil).map(\.tokens).filter { step in
            step.count >= n && Set(step.map { trace.sequence[$0] }).count == step.count
        }
        return (0..<count).map { _ in
            let chosen = steps.isEmpty ? (0..<n).map { _ in Int(rng.next() % UInt64(trace.tokens)) }
                : Array(steps[Int(rng.next() % UInt64(steps.count))].prefix(n))
            var counts = [[Int]](repeating: [Int](repeating: 0, count: E), count: L)
            for t in chosen {
                for l in 0..<L { for j in 0..<trace.expertsPerToken { counts[l][trace.expert(token: t, layer: l, choice: j)] += 1 } }
            }
            return counts
        }
    }

    /// What one rank holds, as a step reads it: bytes of its dense weights per slot (slot i is
    /// layer `stage.layers.lowerBound + i`, the last slot the rest: embedding, norm, output head)
    /// and of each held expert per slot, by row length (at a few tokens the kernels' speed
    /// depends on it); the dtype most of its bytes have.
    private struct HeldWeights {
        var bytes = 0.0
        var dense: [[Int: Double]]                        // [slot][columns]
        var experts: [Int: [Int: [Int: Double]]] = [:]    // slot → expert → columns → bytes
        var dtype = "f32"
    }

    private func weights(_ plan: RankPlan) -> HeldWeights {
        let blocks = WeightBlock.list(config: config, plan: plan)
        let layers = plan.stagePlan.layers
        var w = HeldWeights(dense: [[Int: Double]](repeating: [:], count: layers.count + 1))
        var seen = Set<WeightBlock>()
        for b in blocks where seen.insert(b).inserted {
            let size = bytes(b)
            w.bytes += size
            let slot = b.name.hasPrefix("blk.") ? Int(b.name.split(separator: ".")[1]).map { $0 - layers.lowerBound } : nil
            if let e = b.expert, let i = slot {
                w.experts[i, default: [:]][e, default: [:]][b.columns.count, default: 0] += size
            } else if b.name == "token_embd.weight" && b.rows == plan.embeddingRows && !plan.embeddingRows.isEmpty
                        && !(plan.outputRows == b.rows && config.tiedEmbeddings) {
                continue   // embedding rows: only the step's tokens' rows are read (counted with the activations)
            } else {
                // Attention, dense MLP, router, norms, output head: read every micro-batch.
                w.dense[slot ?? layers.count][b.columns.count, default: 0] += size
            }
        }
        w.dtype = dominantDType(blocks)
        return w
    }

    /// Every rank's cost of one micro-batch (`rankCost`) and each stage's time, with and without
    /// communication (`synchronised`): the ranks of a stage wait for each other layer by layer.
    private func stageTimes(_ plans: [RankPlan], _ held: [HeldWeights], tokens: Double, sequences: Int, context: Int, bandwidth: Double,
                            draws: [[[Int]]], micro: Int) -> (costs: [RankCost], seconds: [Double], compute: [Double]) {
        var costs: [RankCost] = []
        var perRank: [Int: [(seconds: [[Double]], compute: [[Double]])]] = [:]      // stage → rank → [draw][slot]
        for (plan, w) in zip(plans, held) {
            let c = rankCost(plan, w, tokens: tokens, sequences: sequences, context: context, bandwidth: bandwidth, draws: draws, micro: micro)
            costs.append(c.cost)
            perRank[plan.stage, default: []].append((c.slotSeconds, c.slotCompute))
        }
        func time(_ stage: Int, _ part: KeyPath<(seconds: [[Double]], compute: [[Double]]), [[Double]]>) -> Double {
            let ranks = perRank[stage] ?? []
            return Self.synchronised(ranks.map { $0[keyPath: part] }, compute: ranks.map(\.compute),
                                     nodes: nodes(topology.stages[stage].ranks), capacity: capacity)
        }
        let stages = topology.stages.indices
        return (costs, stages.map { time($0, \.seconds) }, stages.map { time($0, \.compute) })
    }

    /// One rank's cost of one micro-batch of `tokens` tokens: its figures for the step (`cost`),
    /// and its seconds per draw and slot (`HeldWeights`), with and without communication
    /// (`[draw][slot]`).
    private func rankCost(_ plan: RankPlan, _ w: HeldWeights, tokens: Double, sequences: Int, context: Int, bandwidth: Double,
                          draws: [[[Int]]], micro: Int) -> (cost: RankCost, slotSeconds: [[Double]], slotCompute: [[Double]]) {
        let stage = plan.stagePlan, P = stage.ranks.count, d = Double(config.modelWidth)
        let layers = stage.layers.count, rest = layers
        let dense = w.dense.map { $0.values.reduce(0, +) }, denseTotal = dense.reduce(0, +)
        // The kernels' rates for this rank's dtype; matrix-vector streams at most its share of the bus.
        let type = w.dtype
        let kernel = profile.kernel(type, threads: threads, tokens: 8)                           // the SIMD path, ≤ 16 tokens
        let direct = (matvecBytesPerSecond: min(kernel.matvecBytesPerSecond, bandwidth), matmatFlopsPerSecond: kernel.matmatFlopsPerSecond)
        let gemm = profile.kernel(type, threads: threads, tokens: 64)                             // the sgemm path
        let elementBytes = Double(dtype("blk.\(stage.layers.lowerBound).attn_q.weight").rowBytes(32)) / 32
        /// Time of `bytes` of weights in rows of `columns` values multiplied by `n` tokens: up to 16
        /// tokens the measured direct path for that row length (or, in a hand-written profile,
        /// linear from the matrix-vector time at 1 token to the small-batch FLOP rate at 8), never
        /// faster than the rank's share of the bus; beyond, sgemm: the larger of streaming the
        /// weights and its FLOP rate.
        func matmul(_ bytes: Double, _ n: Double, columns: Int) -> Double {
            let one = bytes / direct.matvecBytesPerSecond
            if n <= 16, let rate = profile.directRate(type, threads: threads, tokens: max(n, 1), columns: columns) {
                return max(bytes / bandwidth, bytes / rate)
            }
            if n <= 16 {
                let eight = max(one, 16 * bytes / elementBytes / direct.matmatFlopsPerSecond)
                return one + max(0, n - 1) * (eight - one) / 7
            }
            return max(bytes / min(gemm.matvecBytesPerSecond, bandwidth), 2 * n * bytes / elementBytes / gemm.matmatFlopsPerSecond)
        }
        let kvLocal = Double(plan.kvHeads.count * config.headDim * 4 * 2 * layers)
        let kvRead = tokens * Double(context) * kvLocal
        // Per layer, beyond the experts: its dense weights, its KV cache, the fixed costs of the
        // forward pass per layer and per layer-token (calibrated) and the FFN activation per
        // element of the hidden width computed here (each routed token's experts' column slice,
        // the dense MLP slice).
        let overhead = (profile.node.layerOverheadSeconds ?? 0) + tokens * (profile.node.tokenLayerOverheadSeconds ?? 0)
        let gelu = (config.gelu == .tanh ? profile.node.geluTanhSecondsPerElement : profile.node.geluErfSecondsPerElement) ?? 0
        let hidden = tokens * (Double(config.expertsPerToken) * Double(plan.expertColumns.count)
            / Double(stage.expertMode == .slice ? 1 : P) + Double(plan.denseColumns.count))
        let layerFixed = kvRead / Double(max(layers, 1)) / bandwidth + overhead + hidden * gelu
        var slotCompute: [[Double]] = [], readSum = 0.0, flopSum = 0.0
        for draw in draws {
            var seconds = w.dense.map { $0.reduce(0) { $0 + matmul($1.value, tokens, columns: $1.key) } }
            var expertRead = 0.0, expertFlops = 0.0
            for (i, experts) in w.experts {
                let counts = draw[stage.layers.lowerBound + i]
                for (e, byColumns) in experts where counts[e] > 0 {
                    let replicas = stage.expertMode == .slice ? 1 : stage.placement[stage.layers.lowerBound + i]![e].count
                    let share = Double(counts[e]) / Double(replicas), size = byColumns.values.reduce(0, +)
                    expertRead += size
                    expertFlops += 2 * size / elementBytes * share
                    seconds[i] += byColumns.reduce(0) { $0 + matmul($1.value, share, columns: $1.key) }
                }
            }
            for i in 0..<layers { seconds[i] += layerFixed }
            slotCompute.append(seconds)
            readSum += denseTotal + expertRead + tokens * d * 4 + kvRead
            flopSum += 2 * denseTotal / elementBytes * tokens + expertFlops
        }
        let n = Double(draws.count)
        let computeMicro = slotCompute.map { $0.reduce(0, +) }.reduce(0, +) / n

        // Communication per micro-batch (the calls `forward` makes for this rank), per slot.
        let rows = tokens * d * 4
        var messages: [String: Double] = [:], sent: [String: Double] = [:]
        var perLayer = 0.0, other = 0.0
        func add(_ kind: String, group: Int, bytes: Double, count: Double = 1, everyLayer: Bool) {
            guard group > 1 || kind == "pointToPoint" else { return }
            let c = cost(kind, ranks: group, bytes: Int(bytes)).seconds * count
            if everyLayer { perLayer += c } else { other += c }
            let calls = count * (everyLayer ? Double(layers) : 1)
            messages[kind, default: 0] += calls * Double(micro)
            sent[kind, default: 0] += bytes * calls * Double(micro)
        }
        if plan.isFirstStage && P > 1 { add("allreduce", group: P, bytes: rows, everyLayer: false) }             // embedding join
        if stage.tensorParallelSize > 1 { add("allreduce", group: P, bytes: rows, everyLayer: true) }          // attention join
        if P > 1 {
            if stage.expertMode == .parallel {
                let owned = tokens / Double(P) * Double(config.expertsPerToken)
                let remote = owned * Double(P - 1) / Double(P) * d * 4
                add("alltoallv", group: P, bytes: Double(P * config.expertCount * 4), everyLayer: true)          // row counts
                add("alltoallv", group: P, bytes: remote, count: 2, everyLayer: true)                            // moe dispatch, return
            }
            add("allreduce", group: P, bytes: rows, everyLayer: true)                                           // moe combine
        }
        if !plan.isLastStage { add("pointToPoint", group: 2, bytes: rows, everyLayer: false) }                 // stage send
        let communication = (0...layers).map { $0 == rest ? other : perLayer }
        let kv = Double(sequences) * Double(context) * kvLocal
        let result = RankCost(rank: plan.rank, stage: plan.stage, weightBytes: Int(w.bytes), kvCacheBytes: Int(kv),
                            bufferBytes: Int(Double(sequences) * (d * 4 * 8 + Double(config.vocabularySize) * 4)),
                            bytesRead: readSum / n * Double(micro), flops: flopSum / n * Double(micro),
                            computeSeconds: computeMicro * Double(micro),
                            communicationSeconds: (perLayer * Double(layers) + other) * Double(micro),
                            messages: messages, bytesSent: sent)
        return (result, slotCompute.map { zip($0, communication).map { $0 + $1 } }, slotCompute)
    }

    /// Ranks of one node working at the same time: all of them, except in a pipeline run one
    /// micro-batch at a time, where only one stage works at once.
    var activeRanksPerNode: Int {
        let stages = topology.stages.count
        guard stages > 1, microBatchesInStep <= 1 else { return ranksPerNode }
        let largest = topology.stages.map(\.ranks.count).max() ?? 1
        return max(1, min(ranksPerNode, largest))
    }

    /// Ranks a node runs at once (its cores over the threads of a rank), and the node of each
    /// world rank in `ranks` (consecutive world ranks fill a node, as mpirun places them).
    private var capacity: Double { Double(max(profile.node.cores, 1)) / Double(max(threads, 1)) }
    private func nodes(_ ranks: [Int]) -> [Int] { ranks.map { $0 / max(ranksPerNode, 1) } }

    private func dominantDType(_ blocks: [WeightBlock]) -> String {
        var total: [DType: Double] = [:]
        for b in blocks { total[dtype(b.name), default: 0] += bytes(b) }
        return (total.max { $0.value < $1.value }?.key ?? .f32).name.lowercased()
    }

    /// α + bytes/β for one collective of `kind` among `ranks`.
    func cost(_ kind: String, ranks: Int, bytes: Int) -> (seconds: Double, bytes: Int) {
        let c = profile.collective(kind, ranks: ranks)
        return (c.alpha + Double(bytes) / c.bytesPerSecond, bytes)
    }

    private func bottleneck(_ costs: [RankCost], stageCompute: [Double], micro: Int, bubble: Double, step: Double, fits: Bool,
                            memory: Int) -> String {
        if !fits, let worst = costs.max(by: { $0.memoryBytes < $1.memoryBytes }) {
            return String(format: "memory: rank %d needs %.1f GiB, a node slot has %.1f GiB", worst.rank,
                          Double(worst.memoryBytes) / 1073741824, Double(memory) / 1073741824)
        }
        // Expert imbalance: in a step, the stage waits for its busiest rank.
        for (stage, slowest) in stageCompute.enumerated() {
            let ranks = costs.filter { $0.stage == stage }
            let mean = ranks.map(\.computeSeconds).reduce(0, +) / Double(max(ranks.count, 1)) / Double(micro)
            if ranks.count > 1 && slowest > 1.3 * mean, let busiest = ranks.max(by: { $0.computeSeconds < $1.computeSeconds }) {
                let hot = busiest.hotExperts == 0 ? ""
                    : String(format: "rank %d holds %d hot expert%@; ", busiest.rank, busiest.hotExperts, busiest.hotExperts == 1 ? "" : "s")
                return String(format: "expert imbalance in stage %d: %@the busiest rank of a step computes %.0f%% more than the mean (only the ranks holding the chosen experts work)",
                              stage, hot, 100 * (slowest / mean - 1))
            }
        }
        let busiest = costs.max { $0.computeSeconds + $0.communicationSeconds < $1.computeSeconds + $1.communicationSeconds }!
        if bubble > 0.3 * step { return String(format: "pipeline bubble: %.0f%% of the step (stages wait for each other)", 100 * bubble / step) }
        let comm = busiest.communicationSeconds, compute = busiest.computeSeconds
        if comm > compute {
            let kind = busiest.messages.max { $0.value < $1.value }?.key ?? "allreduce"
            let perMessage = profile.collective(kind, ranks: 2).alpha
            return String(format: "%@ latency: %.0f messages per step on rank %d × α %.0f µs", kind, busiest.messages[kind] ?? 0, busiest.rank, perMessage * 1e6)
        }
        let streaming = busiest.bytesRead / profile.perRankBandwidth(ranks: activeRanksPerNode, threads: threads)
        if busiest.computeSeconds > 1.5 * streaming {
            return String(format: "compute: rank %d does %.1f GFLOP per step (the batch makes the kernels FLOP-bound)", busiest.rank, busiest.flops / 1e9)
        }
        return String(format: "memory bandwidth: rank %d reads %.1f MB per step", busiest.rank, busiest.bytesRead / 1e6)
    }
}
