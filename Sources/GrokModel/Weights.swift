import GrokCheckpoint
import GrokTensor
import GrokTopology

/// The weights of one decoder layer that a rank's plan names. Matrices are views of the source
/// (PyTorch layout `[out, in]`, the source's dtype); norm and router vectors are small and f32.
struct LayerWeights {
    var attentionNorm: [Float]           // [d]            blk.N.attn_norm
    var query: WeightMatrix              // [Hl·hd, d]     blk.N.attn_q (this rank's heads)
    var key: WeightMatrix                // [Hkvl·hd, d]   blk.N.attn_k
    var value: WeightMatrix              // [Hkvl·hd, d]   blk.N.attn_v
    var attentionOutput: WeightMatrix    // [d, Hl·hd]     blk.N.attn_output (columns of this rank's heads)
    var postAttentionNorm: [Float]       // [d]            blk.N.attn_output_norm
    var feedForwardNorm: [Float]         // [d]            blk.N.ffn_norm
    var router: [Float]                  // [E, d]         blk.N.ffn_gate_inp (f32)
    var experts: [Int: ExpertWeights]    // held experts only
    var postFeedForwardNorm: [Float]     // [d]            layer_output_norm (Grok-1) / post_ffw_norm (Grok-2)
    var dense: DenseMLPWeights?          // Grok-2's MLP beside the MoE
}

/// One gated FFN: down(gelu(gate·x) ⊙ up·x), or a column slice of one (then `down` gives a
/// partial sum that the ranks holding the other slices complete).
struct DenseMLPWeights {
    var gate: WeightMatrix               // [Fl, d]
    var up: WeightMatrix                 // [Fl, d]
    var down: WeightMatrix               // [d, Fl]
}

typealias ExpertWeights = DenseMLPWeights

struct ModelWeights {
    var embedding: WeightMatrix          // [Ve, d] token_embd rows plan.embeddingRows (first stage)
    var output: WeightMatrix             // [Vo, d] output (or token_embd when tied) rows plan.outputRows (last stage)
    var outputNorm: [Float]              // [d]
    var layers: [Int: LayerWeights]      // the plan's layers
}

extension WeightBlock {
    /// Every block `plan`'s rank holds, in load order.
    public static func list(config: ModelConfig, plan: RankPlan) -> [WeightBlock] {
        var blocks: [WeightBlock] = []
        let placeholder = UnsafeRawPointer(bitPattern: 64)!   // never read: the pass only records
        _ = ModelWeights.assemble(config: config, plan: plan,
                                  matrix: { blocks.append($0); return WeightMatrix(base: placeholder, dtype: .f32, rows: $0.rows.count, cols: $0.columns.count) },
                                  vector: { blocks.append($0); return [Float](repeating: 0, count: $0.rows.count * $0.columns.count) })
        return blocks
    }
}

extension ModelWeights {
    /// Checks every tensor the plan needs (name, dims) and takes its blocks from `source`.
    init(source: TensorSource, config: ModelConfig, plan: RankPlan) throws {
        func take(_ block: WeightBlock) throws -> WeightMatrix {
            let info = try source.requireTensor(block.name, dims: block.dims)
            let bytes = try source.block(block.name, expert: block.expert, rows: block.rows, columns: block.columns)
            return WeightMatrix(base: bytes.baseAddress!, dtype: info.dtype, rows: block.rows.count, cols: block.columns.count)
        }
        self = try ModelWeights.assemble(config: config, plan: plan, matrix: take, vector: { try take($0).floats(rows: 0..<$0.rows.count) })
    }

    /// The one description of what a rank holds: builds the weights from the blocks `matrix` and
    /// `vector` (dequantized to f32) return for each request. `WeightBlock.list` records the requests.
    static func assemble(config c: ModelConfig, plan: RankPlan, matrix take: (WeightBlock) throws -> WeightMatrix,
                         vector takeVector: (WeightBlock) throws -> [Float]) rethrows -> ModelWeights {
        let d = c.modelWidth, hd = c.headDim, E = c.expertCount, F = c.expertFFNWidth, D = c.denseFFNWidth
        func matrix(_ name: String, _ rows: Int, _ cols: Int, rows slice: Range<Int>? = nil, columns: Range<Int>? = nil) throws -> WeightMatrix {
            try take(WeightBlock(name: name, dims: [cols, rows], rows: slice ?? 0..<rows, columns: columns ?? 0..<cols))
        }
        func vector(_ name: String, _ count: Int, rows: Int = 1) throws -> [Float] {   // [rows, count] f32, row-major
            try takeVector(WeightBlock(name: name, dims: rows == 1 ? [count] : [count, rows], rows: 0..<rows, columns: 0..<count, isMatrix: false))
        }
        func expert(_ name: String, _ e: Int, rows: Range<Int>, columns: Range<Int>, dims: [Int]) throws -> WeightMatrix {
            try take(WeightBlock(name: name, dims: dims, expert: e, rows: rows, columns: columns))
        }
        let none = WeightMatrix(base: UnsafeRawPointer(bitPattern: 64)!, dtype: .f32, rows: 0, cols: d)   // a stage without it
        let embedding = plan.embeddingRows.isEmpty ? none : try matrix("token_embd.weight", c.vocabularySize, d, rows: plan.embeddingRows)
        let output = plan.outputRows.isEmpty ? none
            : try matrix(c.tiedEmbeddings ? "token_embd.weight" : "output.weight", c.vocabularySize, d, rows: plan.outputRows)
        let outputNorm = try vector("output_norm.weight", d)
        let postNorm = c.architecture == .grok1 ? Grok1.postFeedForwardNorm : Grok2.postFeedForwardNorm
        let heads = plan.queryHeads.lowerBound * hd ..< plan.queryHeads.upperBound * hd
        let kvHeads = plan.kvHeads.lowerBound * hd ..< plan.kvHeads.upperBound * hd
        var layers: [Int: LayerWeights] = [:]
        for l in plan.layers {
            let p = "blk.\(l)."
            let attentionNorm = try vector(p + "attn_norm.weight", d)
            let query = try matrix(p + "attn_q.weight", c.queryWidth, d, rows: heads)
            let key = try matrix(p + "attn_k.weight", c.kvWidth, d, rows: kvHeads)
            let value = try matrix(p + "attn_v.weight", c.kvWidth, d, rows: kvHeads)
            let attentionOutput = try matrix(p + "attn_output.weight", d, c.queryWidth, columns: heads)
            let postAttentionNorm = try vector(p + "attn_output_norm.weight", d)
            let feedForwardNorm = try vector(p + "ffn_norm.weight", d)
            let router = try vector(p + "ffn_gate_inp.weight", d, rows: E)
            var held: [Int: ExpertWeights] = [:]
            for e in plan.experts[l] ?? [] {
                let slice = plan.expertColumns
                held[e] = ExpertWeights(gate: try expert(p + "ffn_gate_exps.weight", e, rows: slice, columns: 0..<d, dims: [d, F, E]),
                                        up: try expert(p + "ffn_up_exps.weight", e, rows: slice, columns: 0..<d, dims: [d, F, E]),
                                        down: try expert(p + "ffn_down_exps.weight", e, rows: 0..<d, columns: slice, dims: [F, d, E]))
            }
            var dense: DenseMLPWeights?
            if D > 0 {
                dense = DenseMLPWeights(gate: try matrix(p + "ffn_gate.weight", D, d, rows: plan.denseColumns),
                                        up: try matrix(p + "ffn_up.weight", D, d, rows: plan.denseColumns),
                                        down: try matrix(p + "ffn_down.weight", d, D, columns: plan.denseColumns))
            }
            layers[l] = LayerWeights(attentionNorm: attentionNorm, query: query, key: key, value: value,
                                     attentionOutput: attentionOutput, postAttentionNorm: postAttentionNorm,
                                     feedForwardNorm: feedForwardNorm, router: router, experts: held,
                                     postFeedForwardNorm: try vector(p + postNorm + ".weight", d), dense: dense)
        }
        return ModelWeights(embedding: embedding, output: output, outputNorm: outputNorm, layers: layers)
    }

    /// Bytes of every weight this rank holds (norms and router in f32).
    var byteCount: Int {
        var total = embedding.byteCount + (output.base == embedding.base && output.rows == embedding.rows ? 0 : output.byteCount)
        total += outputNorm.count * 4
        for layer in layers.values {
            total += layer.query.byteCount + layer.key.byteCount + layer.value.byteCount + layer.attentionOutput.byteCount
            total += (layer.attentionNorm.count + layer.postAttentionNorm.count + layer.feedForwardNorm.count
                      + layer.postFeedForwardNorm.count + layer.router.count) * 4
            for e in layer.experts.values { total += e.gate.byteCount + e.up.byteCount + e.down.byteCount }
            if let dense = layer.dense { total += dense.gate.byteCount + dense.up.byteCount + dense.down.byteCount }
        }
        return total
    }
}

extension WeightMatrix {
    /// Rows `range` dequantized to f32, row-major.
    func floats(rows range: Range<Int>) -> [Float] {
        var out = [Float](repeating: 0, count: range.count * cols)
        out.withUnsafeMutableBufferPointer { buffer in
            for (i, r) in range.enumerated() { Kernels.dequantizeRow(self, r, into: buffer.baseAddress! + i * cols) }
        }
        return out
    }
}
