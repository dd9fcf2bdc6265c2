import GrokCheckpoint
import GrokTensor
import GrokTopology

/// The weights of one decoder layer that a rank's plan names. Matrices point into the mapped file
/// (PyTorch layout `[out, in]`, file dtype); norm and router vectors are small and copied to f32.
struct LayerWeights {
    var attentionNorm: [Float]           // [d]            blk.N.attn_norm
    var query: WeightMatrix              // [Hl·hd, d]     blk.N.attn_q (this rank's heads)
    var key: WeightMatrix                // [Hkvl·hd, d]   blk.N.attn_k
    var value: WeightMatrix              // [Hkvl·hd, d]   blk.N.attn_v
    var attentionOutput: WeightMatrix    // [d, H·hd]      blk.N.attn_output (whole: plans split no heads yet)
    var postAttentionNorm: [Float]       // [d]            blk.N.attn_output_norm
    var feedForwardNorm: [Float]         // [d]            blk.N.ffn_norm
    var router: [Float]                  // [E, d]         blk.N.ffn_gate_inp (f32)
    var experts: [Int: ExpertWeights]    // held experts only
    var postFeedForwardNorm: [Float]     // [d]            layer_output_norm (Grok-1) / post_ffw_norm (Grok-2)
    var dense: DenseMLPWeights?          // Grok-2's MLP beside the MoE
}

/// One gated FFN: down(gelu(gate·x) ⊙ up·x).
struct DenseMLPWeights {
    var gate: WeightMatrix               // [F, d]
    var up: WeightMatrix                 // [F, d]
    var down: WeightMatrix               // [d, F]
}

typealias ExpertWeights = DenseMLPWeights

struct ModelWeights {
    var embedding: WeightMatrix          // [V, d] token_embd
    var output: WeightMatrix             // [V, d] output, or token_embd when tied
    var outputNorm: [Float]              // [d]
    var layers: [Int: LayerWeights]      // the plan's layers
}

extension ModelWeights {
    /// Checks every tensor the config implies (name, shape) and maps the plan's share of them.
    init(file: GGUFFile, config c: ModelConfig, plan: RankPlan) throws {
        let d = c.modelWidth, hd = c.headDim, E = c.expertCount, F = c.expertFFNWidth
        func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
            let info = try file.require(name, dims: [cols, rows], dtypes: Set(DType.allCases))
            try blockCheck(info, cols)
            return WeightMatrix(base: file.data(of: info).baseAddress!, dtype: info.dtype, rows: rows, cols: cols)
        }
        func blockCheck(_ info: GGUFTensorInfo, _ cols: Int) throws {
            if cols % info.dtype.blockSize != 0 {
                throw CheckpointError(file: file.path, field: info.name,
                                      expected: "rows of a multiple of \(info.dtype.blockSize) for \(info.dtype)",
                                      found: "\(cols)")
            }
        }
        func vector(_ name: String, _ count: Int) throws -> [Float] {
            let info = try file.require(name, dims: [count], dtypes: Set(DType.allCases))
            try blockCheck(info, count)
            return WeightMatrix(base: file.data(of: info).baseAddress!, dtype: info.dtype, rows: 1, cols: count).floats(rows: 0..<1)
        }
        func experts(_ name: String, rows: Int, cols: Int) throws -> (Int) -> WeightMatrix {
            let info = try file.require(name, dims: [cols, rows, E], dtypes: Set(DType.allCases))
            try blockCheck(info, cols)
            let whole = WeightMatrix(base: file.data(of: info).baseAddress!, dtype: info.dtype, rows: E * rows, cols: cols)
            return { e in whole.rows(e * rows ..< (e + 1) * rows) }
        }

        embedding = try matrix("token_embd.weight", rows: c.vocabularySize, cols: d)
        output = c.tiedEmbeddings ? embedding : try matrix("output.weight", rows: c.vocabularySize, cols: d)
        outputNorm = try vector("output_norm.weight", d)
        let postNorm = c.architecture == .grok1 ? Grok1.postFeedForwardNorm : Grok2.postFeedForwardNorm

        var layers: [Int: LayerWeights] = [:]
        for l in plan.layers {
            let p = "blk.\(l)."
            let q = try matrix(p + "attn_q.weight", rows: c.queryWidth, cols: d)
            let k = try matrix(p + "attn_k.weight", rows: c.kvWidth, cols: d)
            let v = try matrix(p + "attn_v.weight", rows: c.kvWidth, cols: d)
            let gate = try experts(p + "ffn_gate_exps.weight", rows: F, cols: d)
            let up = try experts(p + "ffn_up_exps.weight", rows: F, cols: d)
            let down = try experts(p + "ffn_down_exps.weight", rows: d, cols: F)
            var held: [Int: ExpertWeights] = [:]
            for e in plan.experts[l] ?? [] { held[e] = ExpertWeights(gate: gate(e), up: up(e), down: down(e)) }
            var dense: DenseMLPWeights?
            if c.denseFFNWidth > 0 {
                dense = DenseMLPWeights(gate: try matrix(p + "ffn_gate.weight", rows: c.denseFFNWidth, cols: d),
                                        up: try matrix(p + "ffn_up.weight", rows: c.denseFFNWidth, cols: d),
                                        down: try matrix(p + "ffn_down.weight", rows: d, cols: c.denseFFNWidth))
            }
            layers[l] = LayerWeights(
                attentionNorm: try vector(p + "attn_norm.weight", d),
                query: q.rows(plan.queryHeads.lowerBound * hd ..< plan.queryHeads.upperBound * hd),
                key: k.rows(plan.kvHeads.lowerBound * hd ..< plan.kvHeads.upperBound * hd),
                value: v.rows(plan.kvHeads.lowerBound * hd ..< plan.kvHeads.upperBound * hd),
                attentionOutput: try matrix(p + "attn_output.weight", rows: d, cols: c.queryWidth),
                postAttentionNorm: try vector(p + "attn_output_norm.weight", d),
                feedForwardNorm: try vector(p + "ffn_norm.weight", d),
                router: try matrix(p + "ffn_gate_inp.weight", rows: E, cols: d).floats(rows: 0..<E),
                experts: held,
                postFeedForwardNorm: try vector(p + postNorm + ".weight", d),
                dense: dense)
        }
        self.layers = layers
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
