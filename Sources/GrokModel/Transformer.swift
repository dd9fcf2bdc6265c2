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
/// Communication points (all no-ops for the plan of a single rank) are named where they occur:
/// `attention join` (row-parallel output projection), `moe combine` (experts held on other
/// ranks, and Grok-2's dense MLP slices) and `logits gather` (vocabulary-parallel head).
public final class GrokModel {
    public let config: ModelConfig
    public let plan: RankPlan
    public let file: GGUFFile
    public let pool: ThreadPool
    let weights: ModelWeights
    let comm: Communicator
    let inverseFrequencies: [Float]

    /// Reads the configuration from `file`, checks every tensor it implies and maps the plan's
    /// weights. Throws `ModelConfigError` / `CheckpointError` before any compute.
    public init(file: GGUFFile, plan: RankPlan? = nil, communicator: Communicator = SingleProcessCommunicator(),
                pool: ThreadPool) throws {
        let config = try ModelConfig(gguf: file)
        let plan = plan ?? .whole(config.shape)
        guard plan.isWhole(config.shape) else {
            // Q/K/V rows and held experts are mapped per plan already; the output projection's column
            // slice, the exchange between stages and the collectives come with the distributed runtime.
            throw ForwardError("\(file.path): rank plans other than the whole model are not supported by this build")
        }
        self.config = config
        self.plan = plan
        self.file = file
        self.pool = pool
        self.comm = communicator
        weights = try ModelWeights(file: file, config: config, plan: plan)
        inverseFrequencies = Ops.ropeInverseFrequencies(dim: config.headDim, base: config.ropeBase)
    }

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

        let h = FloatBuffer(rows: n, columns: d)       // [N, d] residual stream
        embed(batch.tokens, into: h)
        for l in plan.layers { try layer(l, batch: batch, residual: h, cache: cache) }
        return try logits(h, rows: logitRows)
    }

    // MARK: - Embedding

    /// h[t] = E[token_t] · embeddingScale (f32; the JAX code multiplies in its compute dtype).
    private func embed(_ tokens: [Int32], into h: FloatBuffer) {
        for (t, token) in tokens.enumerated() {
            Kernels.dequantizeRow(weights.embedding, Int(token), into: h[row: t])
            for i in 0..<h.columns { h[row: t][i] *= config.embeddingScale }
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
        try comm.allreduceSum(a.pointer, count: a.count)            // ── attention join
        Ops.rmsNormRows(a.pointer, rows: n, weight: w.postAttentionNorm, eps: config.rmsNormEpsilon)
        add(a, into: h)

        x.pointer.update(from: h.pointer, count: h.count)
        Ops.rmsNormRows(x.pointer, rows: n, weight: w.feedForwardNorm, eps: config.rmsNormEpsilon)
        let f: FloatBuffer
        switch config.architecture {
        case .grok1: f = try Grok1.feedForward(self, w, x)
        case .grok2: f = try Grok2.feedForward(self, w, x)
        }
        Ops.rmsNormRows(f.pointer, rows: n, weight: w.postFeedForwardNorm, eps: config.rmsNormEpsilon)
        add(f, into: h)
    }

    private func add(_ a: FloatBuffer, into h: FloatBuffer) {
        for i in 0..<h.count { h.pointer[i] += a.pointer[i] }
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

    // MARK: - Feed-forward blocks (composed per architecture in Grok1.swift / Grok2.swift)

    /// Top-k routing of one token: router logits (optionally soft-capped) → softmax over all
    /// experts in f32 → the k largest probabilities as raw gates (not renormalised; ties go to the
    /// lower index as in jax.lax.top_k). Returns (expert, gate) pairs, best first.
    public static func routingGates(logits: [Float], softCap: Float, k: Int) -> [(expert: Int, gate: Float)] {
        var probabilities = logits.map { Ops.softCap($0, softCap) }
        probabilities.withUnsafeMutableBufferPointer { Ops.softmax($0.baseAddress!, count: $0.count) }
        var chosen: [(expert: Int, gate: Float)] = []
        for _ in 0..<k {
            var best = -1
            for e in probabilities.indices where !chosen.contains(where: { $0.expert == e }) {
                if best < 0 || probabilities[e] > probabilities[best] { best = e }
            }
            chosen.append((best, probabilities[best]))
        }
        return chosen
    }

    /// Routes every row of x; returns, per expert, the (token, gate) pairs routed to it.
    func route(_ w: LayerWeights, _ x: FloatBuffer) -> [[(token: Int, gate: Float)]] {
        let experts = config.expertCount, d = config.modelWidth
        var assignments = [[(token: Int, gate: Float)]](repeating: [], count: experts)
        var logits = [Float](repeating: 0, count: experts)
        w.router.withUnsafeBufferPointer { router in
            for t in 0..<x.rows {
                let row = x[row: t]
                for e in 0..<experts {
                    var dot: Float = 0
                    let r = router.baseAddress! + e * d
                    for i in 0..<d { dot += r[i] * row[i] }
                    logits[e] = dot
                }
                for (e, gate) in GrokModel.routingGates(logits: logits, softCap: config.routerSoftCap, k: config.expertsPerToken) {
                    assignments[e].append((t, gate))
                }
            }
        }
        return assignments
    }

    /// Σ over held experts of gate · expert(x) for the tokens routed to them: `[N, d]`, a partial
    /// sum when experts live on several ranks (joined by the caller's `moe combine`).
    func mixtureOfExperts(_ w: LayerWeights, _ x: FloatBuffer) -> FloatBuffer {
        let d = config.modelWidth
        let f = FloatBuffer(rows: x.rows, columns: d)
        let assignments = route(w, x)
        for e in w.experts.keys.sorted() {
            let routed = assignments[e]
            if routed.isEmpty { continue }
            let xe = FloatBuffer(rows: routed.count, columns: d)      // [n_e, d] gathered tokens
            for (i, r) in routed.enumerated() { xe[row: i].update(from: x[row: r.token], count: d) }
            let ye = gatedFFN(w.experts[e]!, xe)
            for (i, r) in routed.enumerated() {
                let dst = f[row: r.token], src = ye[row: i]
                for j in 0..<d { dst[j] += r.gate * src[j] }
            }
        }
        return f
    }

    /// down(gelu(gate·x) ⊙ (up·x)) for each row of x: `[n, d] → [n, d]`.
    func gatedFFN(_ w: DenseMLPWeights, _ x: FloatBuffer) -> FloatBuffer {
        let n = x.rows
        let g = FloatBuffer(rows: n, columns: w.gate.rows)   // [n, F]
        let u = FloatBuffer(rows: n, columns: w.up.rows)     // [n, F]
        Kernels.matmul(w.gate, x: x.pointer, n: n, y: g.pointer, pool: pool)
        Kernels.matmul(w.up, x: x.pointer, n: n, y: u.pointer, pool: pool)
        switch config.gelu {
        case .tanh: for i in 0..<g.count { g.pointer[i] = Ops.geluTanh(g.pointer[i]) * u.pointer[i] }
        case .erf: for i in 0..<g.count { g.pointer[i] = Ops.geluErf(g.pointer[i]) * u.pointer[i] }
        }
        let y = FloatBuffer(rows: n, columns: w.down.rows)   // [n, d]
        Kernels.matmul(w.down, x: g.pointer, n: n, y: y.pointer, pool: pool)
        return y
    }

    /// The `moe combine` communication point: sums the ranks' partial feed-forward outputs.
    func combine(_ f: FloatBuffer) throws {
        try comm.allreduceSum(f.pointer, count: f.count)         // ── moe combine
    }

    // MARK: - Logits

    /// logits = (RMSNorm_final(h) · head^T) · outputScale, then the final soft-cap (Grok-2).
    private func logits(_ h: FloatBuffer, rows: [Int]) throws -> FloatBuffer {
        let d = config.modelWidth
        let x = FloatBuffer(rows: rows.count, columns: d)         // [R, d]
        for (i, r) in rows.enumerated() { x[row: i].update(from: h[row: r], count: d) }
        Ops.rmsNormRows(x.pointer, rows: rows.count, weight: weights.outputNorm, eps: config.rmsNormEpsilon)
        let head = weights.output.rows(plan.vocabulary)
        let out = FloatBuffer(rows: rows.count, columns: head.rows)  // [R, V]
        if rows.isEmpty { return out }
        Kernels.matmul(head, x: x.pointer, n: rows.count, y: out.pointer, pool: pool)
        for i in 0..<out.count { out.pointer[i] = Ops.softCap(out.pointer[i] * config.outputScale, config.finalSoftCap) }
        // ── logits gather: a vocabulary-parallel head concatenates the ranks' slices here.
        return out
    }
}
