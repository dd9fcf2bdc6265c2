import Foundation
import GrokCheckpoint
import GrokComm
import GrokTensor
import GrokTopology

/// A batch for one forward step: tokens of one or more sequences, each with the KV-cache slot of
/// its sequence and its absolute (0-based) position. A prefill puts a whole prompt (or several) in
/// one batch; a decode step puts one token per active sequence.
public struct ForwardBatch: Sendable {
    public var tokens: [Int32]
    public var slots: [Int]
    public var positions: [Int]

    public init(tokens: [Int32], slots: [Int], positions: [Int]) {
        precondition(tokens.count == slots.count && tokens.count == positions.count)
        self.tokens = tokens
        self.slots = slots
        self.positions = positions
    }

    public var count: Int { tokens.count }

    /// Maximal runs of batch rows that belong to one sequence at consecutive positions.
    static func runs(slots: [Int], positions: [Int]) -> [Range<Int>] {
        guard !slots.isEmpty else { return [] }
        var runs: [Range<Int>] = []
        var start = 0
        for i in 1...slots.count where i == slots.count || slots[i] != slots[i - 1] || positions[i] != positions[i - 1] + 1 {
            runs.append(start..<i)
            start = i
        }
        return runs
    }
}

/// An input the model cannot run: one line naming what and why.
public struct ForwardError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A Grok-1 or Grok-2 model over the weights a `RankPlan` names, in the file's dtypes.
///
/// SPMD: under a multi-rank plan every rank calls `forward` with the same batch; world rank 0
/// gets the logits. Communication points are named where they occur: `embedding join`
/// (vocabulary-parallel embedding), `attention join` (row-parallel output projection), `moe
/// dispatch` / `moe return` (all-to-all to the ranks holding the chosen experts), `moe combine`
/// (partial feed-forward sums of the stage), `stage send` / `stage receive` (activations between
/// pipeline stages) and `logits gather` (vocabulary-parallel head, to rank 0). For the plan of a
/// single rank every one of them is a no-op.
public final class GrokModel {
    public let config: ModelConfig
    public internal(set) var plan: RankPlan
    /// Where the weights come from (a GGUF file or a rank's shard); kept alive with the model.
    public let source: TensorSource
    public let pool: ThreadPool
    var weights: ModelWeights
    let inverseFrequencies: [Float]
    /// All ranks, and the ranks of this rank's pipeline stage (set by `connect`).
    private(set) var world: Communicator = SingleProcessCommunicator()
    private(set) var stage: Communicator = SingleProcessCommunicator()
    /// Experts received from other ranks by online rebalancing (`adopt`).
    let movedExperts = ByteArena()
    /// Bytes of hidden states this rank sent to each other world rank in `moe dispatch` and
    /// `moe return` (for `--stats`: all-to-all traffic per rank pair).
    public internal(set) var alltoallBytesTo: [Int: Int] = [:]
    /// Tokens each held expert computed, per layer (for `--stats`).
    public internal(set) var expertTokens: [Int: [Int: Int]] = [:]
    /// When set, every routing decision this rank makes is recorded (`--trace-routing`); each
    /// (token, layer) is recorded by exactly one rank of the world.
    public var routingTrace: RoutingRecorder?
    /// The micro-batch running through the layers (maps routed rows to slots and positions).
    var routingBatch: ForwardBatch?
    /// The number of the micro-batch running through the layers: micro-batches are counted from 0
    /// in the order every rank runs them. The replica rule rotates with it, and a routing trace
    /// records it as the token's "step".
    var microBatchIndex = -1

    /// Reads the configuration from `source`'s metadata, checks every tensor it implies and takes
    /// the plan's blocks. Throws `ModelConfigError` / `CheckpointError` before any compute. No
    /// communication: a multi-rank plan needs `connect` (collective) before `forward`.
    public init(source: TensorSource, plan: RankPlan? = nil, pool: ThreadPool) throws {
        let config = try ModelConfig(gguf: source.metadataFile)
        self.config = config
        self.plan = plan ?? .whole(config.shape)
        self.source = source
        self.pool = pool
        weights = try ModelWeights(source: source, config: config, plan: self.plan)
        inverseFrequencies = Ops.ropeInverseFrequencies(dim: config.headDim, base: config.ropeBase)
    }

    /// Joins the world: every rank calls this together (it splits the world into stage groups).
    public func connect(_ world: Communicator) throws {
        guard world.size == plan.worldSize && world.rank == plan.rank else {
            throw ForwardError("the plan is for rank \(plan.rank) of \(plan.worldSize), but this is rank \(world.rank) of \(world.size)")
        }
        self.world = world
        let local = plan.stagePlan.ranks.firstIndex(of: plan.rank)!
        stage = try world.split(color: plan.stage, key: local)!
    }

    /// Bytes of weights this rank holds (mapped slices and copies).
    public var weightBytes: Int { weights.byteCount }

    /// A KV cache for `slots` sequences of up to `capacity` positions (at most the context length).
    public func makeCache(slots: Int, capacity: Int) -> KVCache {
        KVCache(layers: plan.layers, slots: slots, capacity: min(capacity, config.contextLength),
                kvHeads: plan.kvHeads.count, headDim: config.headDim)
    }

    /// Bytes of weights read for one decode token (attention, k experts, dense MLP, head): the
    /// numerator of the memory-bandwidth floor. Expert sizes are averaged over the held experts.
    public var activeWeightBytesPerToken: Int {
        var bytes = weights.output.byteCount + config.modelWidth * 4
        for layer in weights.layers.values {
            bytes += layer.query.byteCount + layer.key.byteCount + layer.value.byteCount + layer.attentionOutput.byteCount
            let held = layer.experts.values
            if !held.isEmpty {
                let perExpert = held.map { $0.gate.byteCount + $0.up.byteCount + $0.down.byteCount }.reduce(0, +) / held.count
                bytes += perExpert * min(config.expertsPerToken, held.count)
            }
            if let dense = layer.dense { bytes += dense.gate.byteCount + dense.up.byteCount + dense.down.byteCount }
            bytes += layer.router.count * 4
        }
        return bytes
    }

    /// Runs `batch` through every layer, writing its keys and values into `cache`, and returns the
    /// logits `[logitRows.count, vocabulary]` of the batch rows `logitRows`.
    public func forward(_ batch: ForwardBatch, cache: KVCache, logitRows: [Int]) throws -> FloatBuffer {
        let n = batch.count, d = config.modelWidth
        for i in 0..<n {
            guard batch.tokens[i] >= 0 && Int(batch.tokens[i]) < config.vocabularySize else {
                throw ForwardError("token id \(batch.tokens[i]) is outside the vocabulary (0..<\(config.vocabularySize))")
            }
            guard batch.slots[i] >= 0 && batch.slots[i] < cache.slots else {
                throw ForwardError("sequence slot \(batch.slots[i]) is outside the KV cache (\(cache.slots) slots)")
            }
            guard batch.positions[i] >= 0 && batch.positions[i] < cache.capacity else {
                throw ForwardError("position \(batch.positions[i]) is past the KV cache capacity \(cache.capacity) (context length \(config.contextLength))")
            }
        }
        for r in logitRows where r < 0 || r >= n { throw ForwardError("logit row \(r) is outside the batch of \(n)") }

        let output = FloatBuffer(rows: plan.rank == 0 ? logitRows.count : 0, columns: config.vocabularySize)  // [R, V] on rank 0
        let headRows = plan.isLastStage ? plan.outputRows.count : 0
        let partial = FloatBuffer(rows: logitRows.count, columns: headRows)   // [R, Vl] this rank's vocabulary slice
        for micro in microBatches(batch) {
            let sub = ForwardBatch(tokens: micro.map { batch.tokens[$0] }, slots: micro.map { batch.slots[$0] },
                                   positions: micro.map { batch.positions[$0] })
            let h = FloatBuffer(rows: micro.count, columns: d)       // [n, d] residual stream
            microBatchIndex += 1
            if routingTrace != nil { routingBatch = sub }
            if plan.isFirstStage {
                try embed(sub.tokens, into: h)
            } else {
                try world.receive(h.pointer, count: h.count * 4, from: previousStageSender, tag: Self.activationTag)  // ── stage receive
            }
            for l in plan.layers { try layer(l, batch: sub, residual: h, cache: cache) }
            if !plan.isLastStage {
                for next in nextStageReceivers {
                    try world.send(h.pointer, count: h.count * 4, to: next, tag: Self.activationTag)             // ── stage send
                }
                continue
            }
            // Logits of the requested rows that fall in this micro-batch.
            let wanted = logitRows.indices.filter { micro.contains(logitRows[$0]) }
            if wanted.isEmpty || headRows == 0 { continue }
            let rows = wanted.map { r in micro.firstIndex(of: logitRows[r])! }
            let part = try logits(h, rows: rows)                         // [w, Vl]
            for (i, r) in wanted.enumerated() { partial[row: r].update(from: part[row: i], count: headRows) }
        }
        try gatherLogits(partial, into: output)
        return output
    }

    /// Batch rows cut into the plan's micro-batches (whole sequences each, balanced by tokens) when
    /// there are several pipeline stages; one micro-batch of every row otherwise.
    func microBatches(_ batch: ForwardBatch) -> [[Int]] {
        var sequences: [[Int]] = []          // batch rows of each slot, in order of first appearance
        var index: [Int: Int] = [:]
        for (row, slot) in batch.slots.enumerated() {
            if let i = index[slot] { sequences[i].append(row) } else { index[slot] = sequences.count; sequences.append([row]) }
        }
        let count = plan.stages.count > 1 ? min(plan.microBatches, sequences.count) : 1
        if count <= 1 { return [Array(0..<batch.count)] }
        var groups = [[Int]](repeating: [], count: count)
        for sequence in sequences.sorted(by: { $0.count > $1.count }) {   // longest first onto the lightest group
            let lightest = groups.indices.min { groups[$0].count < groups[$1].count }!
            groups[lightest] += sequence
        }
        return groups.filter { !$0.isEmpty }.map { $0.sorted() }
    }

    static let activationTag = 1, logitsTag = 2

    /// The rank of the previous stage that sends this rank its activations.
    private var previousStageSender: Int {
        let previous = plan.stages[plan.stage - 1].ranks, local = plan.stagePlan.ranks.firstIndex(of: plan.rank)!
        return previous[local % previous.count]
    }

    /// The ranks of the next stage this rank sends activations to (each next-stage rank j gets
    /// them from rank j mod n of this stage).
    private var nextStageReceivers: [Int] {
        let next = plan.stages[plan.stage + 1].ranks, mine = plan.stagePlan.ranks
        let local = mine.firstIndex(of: plan.rank)!
        return next.indices.filter { $0 % mine.count == local }.map { next[$0] }
    }

    /// `logits gather`: each last-stage rank's vocabulary slice `[R, Vl]` goes to world rank 0,
    /// which places it at the slice's columns of `[R, V]`. Slices are contiguous, in stage order.
    private func gatherLogits(_ partial: FloatBuffer, into output: FloatBuffer) throws {
        let last = plan.stages[plan.stages.count - 1].ranks
        let v = config.vocabularySize, r = partial.rows
        if plan.isLastStage && plan.rank != 0 && r > 0 {
            try world.send(partial.pointer, count: partial.count * 4, to: 0, tag: Self.logitsTag)      // ── logits gather
        }
        guard plan.rank == 0, r > 0 else { return }
        for (i, sender) in last.enumerated() {
            let columns = evenSlice(v, part: i, of: last.count)   // the plan's outputRows of that rank
            let slice: FloatBuffer
            if sender == 0 {
                slice = partial
            } else {
                slice = FloatBuffer(rows: r, columns: columns.count)
                try world.receive(slice.pointer, count: slice.count * 4, from: sender, tag: Self.logitsTag)
            }
            precondition(slice.columns == columns.count)
            for row in 0..<r { (output[row: row] + columns.lowerBound).update(from: slice[row: row], count: columns.count) }
        }
    }

    // MARK: - Embedding

    /// h[t] = E[token_t] · embeddingScale (f32; the JAX code multiplies in its compute dtype). With
    /// a vocabulary-parallel embedding each rank fills the rows of its tokens and the stage sums.
    private func embed(_ tokens: [Int32], into h: FloatBuffer) throws {
        let held = plan.embeddingRows
        for (t, token) in tokens.enumerated() {
            guard held.contains(Int(token)) else { h[row: t].update(repeating: 0, count: h.columns); continue }
            Kernels.dequantizeRow(weights.embedding, Int(token) - held.lowerBound, into: h[row: t])
            for i in 0..<h.columns { h[row: t][i] *= config.embeddingScale }
        }
        if held.count != config.vocabularySize {
            try stage.allreduceSum(h.pointer, count: h.count)                                           // ── embedding join
        }
    }

    // MARK: - Decoder layer

    private func layer(_ l: Int, batch: ForwardBatch, residual h: FloatBuffer, cache: KVCache) throws {
        let w = weights.layers[l]!
        let n = batch.count
        let x = FloatBuffer(rows: n, columns: h.columns)  // [N, d]
        x.pointer.update(from: h.pointer, count: h.count)
        Ops.rmsNormRows(x.pointer, rows: n, weight: w.attentionNorm, eps: config.rmsNormEpsilon)
        let a = attention(l, w, x: x, batch: batch, cache: cache)
        if plan.stagePlan.tensorParallelSize > 1 {
            try stage.allreduceSum(a.pointer, count: a.count)                                           // ── attention join
        }
        Ops.rmsNormRows(a.pointer, rows: n, weight: w.postAttentionNorm, eps: config.rmsNormEpsilon)
        add(a, into: h)

        x.pointer.update(from: h.pointer, count: h.count)
        Ops.rmsNormRows(x.pointer, rows: n, weight: w.feedForwardNorm, eps: config.rmsNormEpsilon)
        let f: FloatBuffer
        switch config.architecture {
        case .grok1: f = try Grok1.feedForward(self, l, w, x)
        case .grok2: f = try Grok2.feedForward(self, l, w, x)
        }
        Ops.rmsNormRows(f.pointer, rows: n, weight: w.postFeedForwardNorm, eps: config.rmsNormEpsilon)
        add(f, into: h)
    }

    // MARK: - Attention

    /// Grouped-query attention over this rank's heads; returns the output projection `[N, d]`
    /// (a partial sum when heads are split across ranks).
    private func attention(_ l: Int, _ w: LayerWeights, x: FloatBuffer, batch: ForwardBatch, cache: KVCache) -> FloatBuffer {
        let n = batch.count, hd = config.headDim
        let heads = plan.queryHeads.count, kvHeads = plan.kvHeads.count
        let q = FloatBuffer(rows: n, columns: heads * hd)       // [N, Hl·hd]
        let k = FloatBuffer(rows: n, columns: kvHeads * hd)     // [N, Hkvl·hd]
        let v = FloatBuffer(rows: n, columns: kvHeads * hd)
        Kernels.matmul(w.query, x: x.pointer, n: n, y: q.pointer, pool: pool)
        Kernels.matmul(w.key, x: x.pointer, n: n, y: k.pointer, pool: pool)
        Kernels.matmul(w.value, x: x.pointer, n: n, y: v.pointer, pool: pool)

        // RoPE on queries and keys; keys are cached after rotation.
        let kvRow = kvHeads * hd
        for t in 0..<n {
            let p = batch.positions[t]
            for head in 0..<heads { Ops.ropeRotateHalf(q[row: t] + head * hd, dim: hd, position: p, invFreq: inverseFrequencies) }
            for head in 0..<kvHeads { Ops.ropeRotateHalf(k[row: t] + head * hd, dim: hd, position: p, invFreq: inverseFrequencies) }
            cache.keys(layer: l, slot: batch.slots[t]).advanced(by: p * kvRow).update(from: k[row: t], count: kvRow)
            cache.values(layer: l, slot: batch.slots[t]).advanced(by: p * kvRow).update(from: v[row: t], count: kvRow)
        }

        // Queries of one sequence at consecutive positions form a run that shares its keys: per
        // (run, head), scores S[m, p_last+1] = Q·Kᵀ and the output O = softmax(S)·V are two
        // sgemm calls (OpenBLAS single-threaded; runs and heads spread over the pool).
        let out = FloatBuffer(rows: n, columns: heads * hd)     // [N, Hl·hd] attention-weighted values
        let runs = ForwardBatch.runs(slots: batch.slots, positions: batch.positions)
        let group = config.queriesPerKVHead
        let scale = config.attentionScale, cap = config.attentionSoftCap
        let temperatureLength = config.attentionTemperatureLength
        let firstHead = plan.queryHeads.lowerBound, firstKVHead = plan.kvHeads.lowerBound
        pool.parallelFor(runs.count * heads) { index in
            let run = runs[index / heads], head = index % heads
            let kvHead = (firstHead + head) / group - firstKVHead
            let m = run.count, first = batch.positions[run.lowerBound], keysCount = first + m
            let slot = batch.slots[run.lowerBound]
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: m * keysCount)   // [m, keysCount]
            defer { scores.deallocate() }
            let keys = cache.keys(layer: l, slot: slot) + kvHead * hd
            let values = cache.values(layer: l, slot: slot) + kvHead * hd
            let query = q[row: run.lowerBound] + head * hd, output = out[row: run.lowerBound] + head * hd
            if m == 1 {  // decode: one query, matrix-vector products (no sgemm packing)
                BLAS.sgemv(m: keysCount, n: hd, a: keys, lda: kvRow, transposeA: false, x: query, y: scores)
            } else {
                BLAS.sgemm(m: m, n: keysCount, k: hd, a: query, lda: heads * hd, b: keys, ldb: kvRow, transposeB: true,
                           c: scores, ldc: keysCount)
            }
            for i in 0..<m {
                let p = first + i, row = scores + i * keysCount
                let temperature = Grok2.attentionTemperature(position: p, length: temperatureLength)
                for j in 0...p { row[j] = Ops.softCap(row[j] * scale, cap) * temperature }
                Ops.softmax(row, count: p + 1)
                for j in (p + 1)..<keysCount { row[j] = 0 }   // causal: later positions get no weight
            }
            if m == 1 {
                BLAS.sgemv(m: hd, n: keysCount, a: values, lda: kvRow, transposeA: true, x: scores, y: output)
            } else {
                BLAS.sgemm(m: m, n: hd, k: keysCount, a: scores, lda: keysCount, b: values, ldb: kvRow, transposeB: false,
                           c: output, ldc: heads * hd)
            }
        }
        let a = FloatBuffer(rows: n, columns: config.modelWidth)  // [N, d]
        Kernels.matmul(w.attentionOutput, x: out.pointer, n: n, y: a.pointer, pool: pool)
        return a
    }

    // MARK: - Logits

    /// logits = (RMSNorm_final(h) · head^T) · outputScale, then the final soft-cap (Grok-2).
    private func logits(_ h: FloatBuffer, rows: [Int]) throws -> FloatBuffer {
        let d = config.modelWidth
        let x = FloatBuffer(rows: rows.count, columns: d)         // [R, d]
        for (i, r) in rows.enumerated() { x[row: i].update(from: h[row: r], count: d) }
        Ops.rmsNormRows(x.pointer, rows: rows.count, weight: weights.outputNorm, eps: config.rmsNormEpsilon)
        let head = weights.output                                     // [Vl, d] this rank's vocabulary rows
        let out = FloatBuffer(rows: rows.count, columns: head.rows)  // [R, Vl]
        if rows.isEmpty { return out }
        Kernels.matmul(head, x: x.pointer, n: rows.count, y: out.pointer, pool: pool)
        for i in 0..<out.count { out.pointer[i] = Ops.softCap(out.pointer[i] * config.outputScale, config.finalSoftCap) }
        return out
    }
}
