/// Where each GGUF tensor of Grok-2 lives in xAI's release (grok-architecture.md §3.6 names and
/// shapes, §5.3 the GGUF names llama.cpp's converter gives them). Shared by `Grok2Release` and
/// `Grok2ReleaseWriter`.
enum Grok2ReleaseLayout {
    typealias Common = CheckpointLayout.Common
    typealias Expert = CheckpointLayout.Expert

    static let tensors = CheckpointLayout(global: global, layer: layer, experts: experts,
                                          hfLayer: { hf(layer: $0, $1) }, hfExpert: { hf(layer: $0, expert: $1, $2) })

    static let global: [Common] = [
        Common(gguf: "token_embd.weight", hf: "model.embed_tokens.weight", shape: [.vocabulary, .width]),
        Common(gguf: "output.weight", hf: "lm_head.weight", shape: [.vocabulary, .width]),
        Common(gguf: "output_norm.weight", hf: "model.norm.weight", shape: [.width]),
    ]

    /// Per layer, without the `blk.N.` / `model.layers.N.` prefixes.
    static let layer: [Common] = [
        Common(gguf: "attn_norm.weight", hf: "pre_attn_norm.weight", shape: [.width]),
        Common(gguf: "attn_q.weight", hf: "self_attn.q_proj.weight", shape: [.queryWidth, .width]),
        Common(gguf: "attn_k.weight", hf: "self_attn.k_proj.weight", shape: [.kvWidth, .width]),
        Common(gguf: "attn_v.weight", hf: "self_attn.v_proj.weight", shape: [.kvWidth, .width]),
        Common(gguf: "attn_output.weight", hf: "self_attn.o_proj.weight", shape: [.width, .queryWidth]),
        Common(gguf: "attn_output_norm.weight", hf: "post_attn_norm.weight", shape: [.width]),
        Common(gguf: "ffn_norm.weight", hf: "pre_moe_norm.weight", shape: [.width]),
        Common(gguf: "ffn_gate_inp.weight", hf: "block_sparse_moe.gate.weight", shape: [.experts, .width]),
        Common(gguf: "ffn_gate.weight", hf: "mlp.gate_proj.weight", shape: [.denseWidth, .width]),
        Common(gguf: "ffn_up.weight", hf: "mlp.up_proj.weight", shape: [.denseWidth, .width]),
        Common(gguf: "ffn_down.weight", hf: "mlp.down_proj.weight", shape: [.width, .denseWidth]),
        Common(gguf: "post_ffw_norm.weight", hf: "post_moe_norm.weight", shape: [.width]),
    ]

    /// w1 = gate (GELU input), w3 = up, w2 = down (§3.2); w1/w3 split along dim 0, w2 along dim 1 (§3.6).
    static let experts: [Expert] = [
        Expert(gguf: "ffn_gate_exps.weight", hf: "w1", splitAxis: 0),
        Expert(gguf: "ffn_up_exps.weight", hf: "w3", splitAxis: 0),
        Expert(gguf: "ffn_down_exps.weight", hf: "w2", splitAxis: 1),
    ]

    static func gguf(layer l: Int, _ name: String) -> String { CheckpointLayout.gguf(layer: l, name) }
    static func hf(layer l: Int, _ name: String) -> String { "model.layers.\(l).\(name)" }
    static func hf(layer l: Int, expert e: Int, _ projection: String) -> String {
        "model.layers.\(l).block_sparse_moe.experts.\(e).\(projection).weight"
    }

    /// File names: `pytorch_model-NNNNN-TP-common.safetensors` and `…-TP-RRR.safetensors` (§3.6).
    static let commonSuffix = "-TP-common.safetensors"
    static func commonFile(_ number: Int) -> String { "pytorch_model-\(digits(number, 5))\(commonSuffix)" }
    static func rankFile(_ number: Int, rank: Int) -> String { "pytorch_model-\(digits(number, 5))-TP-\(digits(rank, 3)).safetensors" }

    /// The rank of a `…-TP-RRR.safetensors` file name, or nil.
    static func rank(ofFile name: String) -> Int? {
        guard name.hasSuffix(".safetensors") else { return nil }
        let stem = name.dropLast(".safetensors".count)
        guard stem.count > 7, stem.dropLast(3).hasSuffix("-TP-") else { return nil }
        let digits = stem.suffix(3)
        return digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber) ? Int(digits) : nil
    }

    private static func digits(_ n: Int, _ width: Int) -> String {
        let text = String(n)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}
