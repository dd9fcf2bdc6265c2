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
    /// Column slices copied out of the mapped file (row slices stay zero-copy in the mapping).
    let storage: OwnedStorage
}

extension ModelWeights {
    /// Bytes of every weight this rank holds (mapped slices and repacked copies; norms and router in f32).
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

/// Memory this rank owns for repacked weight slices; freed with the model.
final class OwnedStorage {
    private var blocks: [UnsafeMutableRawPointer] = []
    private(set) var byteCount = 0
    func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let block = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        blocks.append(block)
        byteCount += bytes
        return block
    }
    deinit { blocks.forEach { $0.deallocate() } }
}

extension ModelWeights {
    /// Checks every tensor the config implies (name, shape) and maps the plan's share of them.
    init(file: GGUFFile, config c: ModelConfig, plan: RankPlan) throws {
        let d = c.modelWidth, hd = c.headDim, E = c.expertCount, F = c.expertFFNWidth
        let storage = OwnedStorage()
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

        /// Columns `range` of every row, copied into owned memory (a row-parallel slice).
        func columns(_ w: WeightMatrix, _ range: Range<Int>, _ name: String) throws -> WeightMatrix {
            if range == 0..<w.cols { return w }
            let block = w.dtype.blockSize
            guard range.lowerBound % block == 0 && range.count % block == 0 else {
                throw CheckpointError(file: file.path, field: name,
                                      expected: "column slices at multiples of \(block) for \(w.dtype) (the layout splits columns \(range.lowerBound)..<\(range.upperBound))",
                                      found: "a slice inside a block")
            }
            let sliceBytes = w.dtype.rowBytes(range.count), offset = w.dtype.rowBytes(range.lowerBound)
            let base = storage.allocate(w.rows * sliceBytes)
            for r in 0..<w.rows { (base + r * sliceBytes).copyMemory(from: w.row(r) + offset, byteCount: sliceBytes) }
            file.evict(UnsafeRawBufferPointer(start: w.base, count: w.byteCount))   // hold the copy, not the whole matrix
            return WeightMatrix(base: UnsafeRawPointer(base), dtype: w.dtype, rows: w.rows, cols: range.count)
        }

        let embeddingTensor = try matrix("token_embd.weight", rows: c.vocabularySize, cols: d)
        embedding = embeddingTensor.rows(plan.embeddingRows)
        output = (c.tiedEmbeddings ? embeddingTensor : try matrix("output.weight", rows: c.vocabularySize, cols: d))
            .rows(plan.outputRows)
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
            let slice = plan.expertColumns
            for e in plan.experts[l] ?? [] {
                held[e] = ExpertWeights(gate: gate(e).rows(slice), up: up(e).rows(slice),
                                        down: try columns(down(e), slice, p + "ffn_down_exps.weight"))
            }
            var dense: DenseMLPWeights?
            if c.denseFFNWidth > 0 {
                let D = c.denseFFNWidth, slice = plan.denseColumns
                dense = DenseMLPWeights(gate: try matrix(p + "ffn_gate.weight", rows: D, cols: d).rows(slice),
                                        up: try matrix(p + "ffn_up.weight", rows: D, cols: d).rows(slice),
                                        down: try columns(try matrix(p + "ffn_down.weight", rows: d, cols: D), slice, p + "ffn_down.weight"))
            }
            let headColumns = plan.queryHeads.lowerBound * hd ..< plan.queryHeads.upperBound * hd
            layers[l] = LayerWeights(
                attentionNorm: try vector(p + "attn_norm.weight", d),
                query: q.rows(plan.queryHeads.lowerBound * hd ..< plan.queryHeads.upperBound * hd),
                key: k.rows(plan.kvHeads.lowerBound * hd ..< plan.kvHeads.upperBound * hd),
                value: v.rows(plan.kvHeads.lowerBound * hd ..< plan.kvHeads.upperBound * hd),
                attentionOutput: try columns(try matrix(p + "attn_output.weight", rows: d, cols: c.queryWidth), headColumns,
                                             p + "attn_output.weight"),
                postAttentionNorm: try vector(p + "attn_output_norm.weight", d),
                feedForwardNorm: try vector(p + "ffn_norm.weight", d),
                router: try matrix(p + "ffn_gate_inp.weight", rows: E, cols: d).floats(rows: 0..<E),
                experts: held,
                postFeedForwardNorm: try vector(p + postNorm + ".weight", d),
                dense: dense)
        }
        self.layers = layers
        self.storage = storage
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
