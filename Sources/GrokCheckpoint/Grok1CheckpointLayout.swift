import GrokTensor

/// One parameter leaf of a Grok-1 `ckpt-0`: which file holds it, how it is stored in JAX layout,
/// and the llama.cpp GGUF tensor it is presented as (grok-architecture.md §2.12, §5.3).
struct Grok1Leaf: Sendable {
    /// How a leaf is stored.
    enum Storage: Sendable {
        /// A float32 numpy array.
        case float32
        /// A `QuantizedWeight8bit`: int8 weight `[(E,) K, N]` and bf16 scales `[(E,) G, N]`, G
        /// groups along the input axis K. `officialGroups` is G in the official release.
        case quantized(officialGroups: Int)
    }

    /// `ckpt-0/tensor{index:05d}_000`.
    let index: Int
    /// The JAX parameter path, e.g. `transformer/decoder_layer_2/moe/linear/w`.
    let path: String
    /// The GGUF tensor name, e.g. `blk.2.ffn_gate_exps.weight`.
    let name: String
    /// The JAX (numpy) shape.
    let shape: [Int]
    let storage: Storage
    /// Which JAX axes the GGUF tensor's rows, columns and experts run along (rows nil: a vector).
    let rowAxis: Int?
    let columnAxis: Int
    let expertAxis: Int?

    /// The GGUF dims (ggml order): columns, rows, experts. Quantized leaves are Q8_0, others F32.
    var info: GGUFTensorInfo {
        let dims = [shape[columnAxis]] + (rowAxis.map { [shape[$0]] } ?? []) + (expertAxis.map { [shape[$0]] } ?? [])
        if case .quantized = storage { return GGUFTensorInfo(name: name, dims: dims, dtype: .q8_0, offset: 0) }
        return GGUFTensorInfo(name: name, dims: dims, dtype: .f32, offset: 0)
    }

    var fileName: String { Grok1Layout.fileName(index) }
}

/// The order and contents of the files of a Grok-1 `ckpt-0` (§2.12).
enum Grok1Layout {
    /// Files before the layers: the embedding and the final norm.
    static let leadingFiles = 2
    /// Files per layer.
    static let filesPerLayer = 12

    static func fileName(_ index: Int) -> String {
        let digits = String(index)
        return "tensor" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits + "_000"
    }

    /// Layers in the order of their files: JAX flattens the param dict with its keys sorted as
    /// strings, so `decoder_layer_10` comes before `decoder_layer_2` (0, 1, 10, 11, …, 19, 2, 20, …).
    static func layerOrder(_ layers: Int) -> [Int] {
        (0..<layers).sorted { String($0) < String($1) }
    }

    /// Every leaf, in file order.
    static func leaves(_ c: Grok1CheckpointConfig) -> [Grok1Leaf] {
        let d = c.embeddingSize, E = c.experts, F = c.ffnSize, q = c.queryHeads * c.keySize, kv = c.kvHeads * c.keySize
        var leaves = [
            Grok1Leaf(index: 0, path: "language_model/in_out_embed/embeddings", name: "token_embd.weight", shape: [c.vocabularySize, d],
                      storage: .float32, rowAxis: 0, columnAxis: 1, expertAxis: nil),
            Grok1Leaf(index: 1, path: "language_model/rms_norm/scale", name: "output_norm.weight", shape: [d],
                      storage: .float32, rowAxis: nil, columnAxis: 0, expertAxis: nil),
        ]
        // Per layer, in file order (dict keys sorted): path, GGUF name, JAX shape, official scale groups (nil: f32).
        // Row-parallel matrices (attention `linear`, `moe/linear_1`) have 8 scale groups (model.py L116-148, L561-576).
        let members: [(String, String, [Int], Int?)] = [
            ("moe/linear/w", "ffn_gate_exps", [E, d, F], 1),
            ("moe/linear_1/w", "ffn_down_exps", [E, F, d], 8),
            ("moe/linear_v/w", "ffn_up_exps", [E, d, F], 1),
            ("multi_head_attention/key/w", "attn_k", [d, kv], 1),
            ("multi_head_attention/linear/w", "attn_output", [q, d], 8),
            ("multi_head_attention/query/w", "attn_q", [d, q], 1),
            ("multi_head_attention/value/w", "attn_v", [d, kv], 1),
            ("rms_norm/scale", "attn_norm", [d], nil),
            ("rms_norm_1/scale", "attn_output_norm", [d], nil),
            ("rms_norm_2/scale", "ffn_norm", [d], nil),
            ("rms_norm_3/scale", "layer_output_norm", [d], nil),
            ("router/w", "ffn_gate_inp", [d, E], nil),
        ]
        for (slot, layer) in layerOrder(c.layers).enumerated() {
            for (m, (path, name, shape, groups)) in members.enumerated() {
                let index = leadingFiles + filesPerLayer * slot + m
                let (rows, columns, experts): (Int?, Int, Int?) = switch shape.count {
                case 3: (2, 1, 0)                       // [E, K, N]: rows N, columns K
                case 2: (1, 0, nil)                     // [K, N] (the router: [d, E]): transposed
                default: (nil, 0, nil)                  // a vector
                }
                leaves.append(Grok1Leaf(index: index, path: "transformer/decoder_layer_\(layer)/\(path)", name: "blk.\(layer).\(name).weight",
                                        shape: shape, storage: groups.map { .quantized(officialGroups: $0) } ?? .float32,
                                        rowAxis: rows, columnAxis: columns, expertAxis: experts))
            }
        }
        return leaves
    }
}
