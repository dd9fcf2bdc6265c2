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
/// Per rank and per micro-batch of a stage: compute = weight bytes read ÷ the kernels' matvec
/// rate, or FLOPs ÷ the matmat rate when that is larger, plus the KV cache read ÷ bandwidth;
/// communication = Σ α + bytes/β of each collective. A stage's time is its slowest rank's (the
/// collectives synchronise it). Stages run one after the other per micro-batch, so a step of M
/// micro-batches over S stages takes (M + S − 1) × the slowest stage's micro-batch time; the
/// part beyond the work itself is the pipeline bubble. Expert parallelism: which experts a
/// step's tokens choose is drawn (uniform top-k, fixed seed) and the busiest rank's load is
/// averaged over the draws.
public struct Planner {
    public var config: ModelConfig
    public var dtypes: [String: DType]
    public var topology: Topology
    public var profile: ClusterProfile
    /// Threads per rank, and ranks sharing one node (they share its memory bandwidth).
    public var threads: Int
    public var ranksPerNode: Int
    /// Micro-batches of the step `predict` is modelling (set there).
    var microBatchesInStep = 1

    public init(model: TopologyExplainer.Model, topology: Topology, profile: ClusterProfile, threads: Int, ranksPerNode: Int) {
        config = model.config
        dtypes = model.dtypes
        self.topology = topology
        self.profile = profile
        self.threads = threads
        self.ranksPerNode = ranksPerNode
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

    /// Predicts a decode step of `batch` sequences at `context` positions each, and the prefill of
    /// one `context`-token prompt.
    public func predict(batch: Int, context: Int) throws -> Prediction {
        var planner = self
        let sequences = max(batch, 1)
        planner.microBatchesInStep = topology.stages.count > 1 ? min(topology.effectiveMicroBatches, sequences) : 1
        return try planner.modelStep(batch: batch, context: context)
    }

    private func modelStep(batch: Int, context: Int) throws -> Prediction {
        let shape = config.shape
        try topology.validate(shape: shape, worldSize: nil, source: topology.source)
        let plans = topology.plans(shape: shape)
        let stages = plans[0].stages
        let sequences = max(batch, 1)
        let micro = microBatchesInStep
        let perMicro = Double(sequences) / Double(micro)
        let bandwidth = profile.perRankBandwidth(ranks: activeRanksPerNode, threads: threads)
        let draws = expertDraws(tokens: perMicro)

        // Each rank's cost averaged over the draws; a stage's time is the mean over draws of its
        // slowest rank (the collectives wait for it), not the slowest mean.
        var costs: [RankCost] = []
        var perDraw: [Int: [[Double]]] = [:]                                 // stage → rank → seconds per draw
        var perDrawCompute: [Int: [[Double]]] = [:]
        for plan in plans {
            let c = rankCost(plan, tokens: perMicro, sequences: sequences, context: context, bandwidth: bandwidth, draws: draws, micro: micro)
            costs.append(c.cost)
            perDraw[plan.stage, default: []].append(c.microSeconds)
            perDrawCompute[plan.stage, default: []].append(c.microCompute)
        }
        func expectedMax(_ ranks: [[Double]]) -> Double {
            (0..<draws.count).map { i in ranks.map { $0[i] }.max() ?? 0 }.reduce(0, +) / Double(draws.count)
        }
        let stageSeconds = stages.indices.map { expectedMax(perDraw[$0] ?? []) }         // slowest rank, one micro-batch
        let stageCompute = stages.indices.map { expectedMax(perDrawCompute[$0] ?? []) }
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
        let prefill = try prefillSeconds(plans: plans, tokens: context, bandwidth: bandwidth)
        return Prediction(batch: sequences, context: context, microBatches: micro, ranks: costs, stepSeconds: step,
                          computeSeconds: compute, communicationSeconds: communication, bubbleSeconds: bubble,
                          tokensPerSecond: Double(sequences) / step, prefillSeconds: prefill, prefillTokens: context,
                          bottleneck: bottleneck(costs, stageCompute: stageCompute, micro: micro, bubble: bubble, step: step, fits: fits, memory: memory),
                          fitsInMemory: fits)
    }

    // MARK: - One rank

    private func dtype(_ name: String) -> DType { dtypes[name] ?? .f32 }

    private func bytes(_ b: WeightBlock) -> Double { Double(b.rows.count * dtype(b.name).rowBytes(b.columns.count)) }

    /// Expert choices of `tokens` tokens, drawn 64 times (uniform top-k without replacement).
    private func expertDraws(tokens: Double) -> [[Int]] {
        var rng = SplitMix64(seed: 0x5eed)
        let E = config.expertCount, k = min(config.expertsPerToken, E), n = max(1, Int(tokens.rounded(.up)))
        return (0..<64).map { _ in
            var counts = [Int](repeating: 0, count: E)
            for _ in 0..<n {
                var pool = Array(0..<E)
                for _ in 0..<k { counts[pool.remove(at: Int(rng.next() % UInt64(pool.count)))] += 1 }
            }
            return counts
        }
    }

    private func rankCost(_ plan: RankPlan, tokens: Double, sequences: Int, context: Int, bandwidth: Double, draws: [[Int]],
                          micro: Int) -> (cost: RankCost, microSeconds: [Double], microCompute: [Double]) {
        let blocks = WeightBlock.list(config: config, plan: plan)
        let stage = plan.stagePlan, P = stage.ranks.count, d = Double(config.modelWidth)
        var held = 0.0, dense = 0.0, expertBytes: [Int: [Int: Double]] = [:]
        var seen = Set<WeightBlock>()
        for b in blocks where seen.insert(b).inserted {
            let size = bytes(b)
            held += size
            if let e = b.expert, let layer = Int(b.name.split(separator: ".")[1]) {
                expertBytes[layer, default: [:]][e, default: 0] += size
            } else if b.name == "token_embd.weight" && b.rows == plan.embeddingRows && !plan.embeddingRows.isEmpty
                        && !(plan.outputRows == b.rows && config.tiedEmbeddings) {
                continue   // embedding rows: only the step's tokens' rows are read (counted with the activations)
            } else {
                dense += size   // attention, dense MLP, router, norms, output head: read every micro-batch
            }
        }
        // Experts read per micro-batch, for each draw: held experts that its tokens reach here.
        let type = dominantDType(blocks)
        let direct = scaled(profile.kernel(type, threads: threads, tokens: 8))      // the SIMD path, ≤ 16 tokens
        let gemm = scaled(profile.kernel(type, threads: threads, tokens: 64))       // the sgemm path
        let elementBytes = Double(dtype("blk.\(stage.layers.lowerBound).attn_q.weight").rowBytes(32)) / 32
        /// Time of `bytes` of weights multiplied by `n` tokens: the direct path's time grows
        /// linearly from the matrix-vector time at 1 token to the measured time at 8; sgemm's is
        /// the larger of streaming the weights and its FLOP rate.
        let oversubscribed = max(1, Double(threads * activeRanksPerNode) / Double(max(profile.node.cores, 1)))
        let sharedBandwidth = profile.perRankBandwidth(ranks: activeRanksPerNode, threads: threads)
        func matmul(_ bytes: Double, _ n: Double) -> Double {
            let one = bytes / direct.matvecBytesPerSecond
            if n <= 16, let rate = profile.directRate(type, threads: threads, tokens: max(n, 1)) {
                // Measured per token count: the larger of the shared memory bus and the CPU share.
                return max(bytes / sharedBandwidth, bytes / (rate / oversubscribed))
            }
            if n <= 16 {
                let eight = max(one, 16 * bytes / elementBytes / direct.matmatFlopsPerSecond)
                return one + max(0, n - 1) * (eight - one) / 7
            }
            return max(bytes / gemm.matvecBytesPerSecond, 2 * n * bytes / elementBytes / gemm.matmatFlopsPerSecond)
        }
        let kvLocal = Double(plan.kvHeads.count * config.headDim * 4 * 2 * stage.layers.count)
        let kvRead = tokens * Double(context) * kvLocal
        var computePerDraw: [Double] = [], readSum = 0.0, flopSum = 0.0
        for draw in draws {
            var expertRead = 0.0, expertFlops = 0.0, expertSeconds = 0.0
            for (layer, experts) in expertBytes {
                for (e, size) in experts where draw[e] > 0 {
                    let replicas = stage.expertMode == .slice ? 1 : stage.placement[layer]![e].count
                    let share = Double(draw[e]) / Double(replicas)
                    expertRead += size
                    expertFlops += 2 * size / elementBytes * share
                    expertSeconds += matmul(size, share)
                }
            }
            let read = dense + expertRead + tokens * d * 4
            let flops = 2 * dense / elementBytes * tokens + expertFlops
            computePerDraw.append(matmul(dense, tokens) + expertSeconds + kvRead / bandwidth)
            readSum += read + kvRead
            flopSum += flops
        }
        let n = Double(draws.count)
        // Fixed costs of the forward pass per layer and per layer-token (calibrated), shared out
        // like the kernels when the node's cores are oversubscribed.
        let overhead = Double(stage.layers.count) * ((profile.node.layerOverheadSeconds ?? 0) + tokens * (profile.node.tokenLayerOverheadSeconds ?? 0))
            * max(1, Double(threads * activeRanksPerNode) / Double(max(profile.node.cores, 1)))
        // The FFN activation, per element of the hidden width computed here: each routed token's
        // experts (their column slice) and the dense MLP slice.
        let gelu = (config.gelu == .tanh ? profile.node.geluTanhSecondsPerElement : profile.node.geluErfSecondsPerElement) ?? 0
        let hidden = Double(stage.layers.count) * tokens * (Double(config.expertsPerToken) * Double(plan.expertColumns.count)
            / Double(stage.expertMode == .slice ? 1 : P) + Double(plan.denseColumns.count))
        computePerDraw = computePerDraw.map { $0 + overhead + hidden * gelu }
        let computeMicro = computePerDraw.reduce(0, +) / n

        // Communication per micro-batch (the calls `forward` makes for this rank).
        let rows = tokens * d * 4
        var messages: [String: Double] = [:], sent: [String: Double] = [:]
        var seconds = 0.0
        func add(_ kind: String, group: Int, bytes: Double, count: Double = 1) {
            guard group > 1 || kind == "pointToPoint" else { return }
            let c = cost(kind, ranks: group, bytes: Int(bytes))
            seconds += c.seconds * count
            messages[kind, default: 0] += count * Double(micro)
            sent[kind, default: 0] += bytes * count * Double(micro)
        }
        let layers = Double(stage.layers.count)
        if plan.isFirstStage && P > 1 { add("allreduce", group: P, bytes: rows) }                       // embedding join
        if stage.tensorParallelSize > 1 { add("allreduce", group: P, bytes: rows, count: layers) }     // attention join
        if P > 1 {
            if stage.expertMode == .parallel {
                let owned = tokens / Double(P) * Double(config.expertsPerToken)
                let remote = owned * Double(P - 1) / Double(P) * d * 4
                add("alltoallv", group: P, bytes: Double(P * config.expertCount * 4), count: layers)       // row counts
                add("alltoallv", group: P, bytes: remote, count: 2 * layers)                              // moe dispatch, return
            }
            add("allreduce", group: P, bytes: rows, count: layers)                                        // moe combine
        }
        if !plan.isLastStage { add("pointToPoint", group: 2, bytes: rows) }                              // stage send
        let kv = Double(sequences) * Double(context) * kvLocal
        let result = RankCost(rank: plan.rank, stage: plan.stage, weightBytes: Int(held), kvCacheBytes: Int(kv),
                            bufferBytes: Int(Double(sequences) * (d * 4 * 8 + Double(config.vocabularySize) * 4)),
                            bytesRead: readSum / n * Double(micro), flops: flopSum / n * Double(micro),
                            computeSeconds: computeMicro * Double(micro), communicationSeconds: seconds * Double(micro),
                            messages: messages, bytesSent: sent)
        return (result, computePerDraw.map { $0 + seconds }, computePerDraw)
    }

    /// Ranks of one node working at the same time: all of them, except in a pipeline run one
    /// micro-batch at a time, where only one stage works at once.
    var activeRanksPerNode: Int {
        let stages = topology.stages.count
        guard stages > 1, microBatchesInStep <= 1 else { return ranksPerNode }
        let largest = topology.stages.map(\.ranks.count).max() ?? 1
        return max(1, min(ranksPerNode, largest))
    }

    /// Kernel rates shared out when the ranks of a node ask for more threads than it has cores.
    private func scaled(_ k: (matvecBytesPerSecond: Double, matmatFlopsPerSecond: Double))
        -> (matvecBytesPerSecond: Double, matmatFlopsPerSecond: Double) {
        let active = activeRanksPerNode
        let oversubscribed = max(1, Double(threads * active) / Double(max(profile.node.cores, 1)))
        // Ranks of one node also share its memory bus: matvec streams at most the node's bandwidth.
        let nodeBandwidth = profile.perRankBandwidth(ranks: active, threads: threads)
        return (min(k.matvecBytesPerSecond / oversubscribed, nodeBandwidth), k.matmatFlopsPerSecond / oversubscribed)
    }

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

    /// A prompt of `tokens` tokens in one forward step: the same per-rank model with all its
    /// tokens in one micro-batch (the kernels' sgemm path, every expert busy), attention over half
    /// the prompt on average, the stages one after the other.
    private func prefillSeconds(plans: [RankPlan], tokens: Int, bandwidth: Double) throws -> Double {
        let draws = expertDraws(tokens: Double(tokens))
        var perStage: [Int: [[Double]]] = [:]
        for plan in plans {
            let c = rankCost(plan, tokens: Double(tokens), sequences: 1, context: tokens / 2, bandwidth: bandwidth, draws: draws, micro: 1)
            perStage[plan.stage, default: []].append(c.microSeconds)
        }
        return perStage.values.map { ranks in
            (0..<draws.count).map { i in ranks.map { $0[i] }.max() ?? 0 }.reduce(0, +) / Double(draws.count)
        }.reduce(0, +)
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
            if ranks.count > 1 && slowest > 1.3 * mean {
                return String(format: "expert imbalance in stage %d: the busiest rank of a step computes %.0f%% more than the mean (only the ranks holding the chosen experts work)",
                              stage, 100 * (slowest / mean - 1))
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
