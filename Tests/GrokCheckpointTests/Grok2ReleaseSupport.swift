import Foundation
@testable import GrokCheckpoint
import GrokTensor

/// A small Grok-2 GGUF written by hand (this target cannot use GrokRuntime's synthesizer): odd
/// layer count so the last file group has one layer, expert width 32 = 4 rows per rank of 8,
/// matrices in the dtype asked for with pattern bytes, norms and router in F32 (as llama.cpp keeps
/// them), rope base 208533496 as a float32 (208533504, as llama.cpp writes it), and a byte-level vocabulary with specials, ten merges and one unused id.
enum TinyGrok2 {
    static let width = 64, layers = 3, heads = 4, kvHeads = 2, headDim = 16
    static let experts = 4, expertWidth = 32, denseWidth = 48

    /// Specials 0-2, the 256 bytes (3-258), merged tokens, a reserved control token, an unused id.
    static let merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "Ġa n", "Ġan d", "e r", "Ġ w", "o r"]
    static var tokens: [String] {
        ["<|pad|>", "<|separator|>", "<|eos|>"] + (0...255).map { ByteLevelText.string([UInt8($0)]) }
            + merges.map { $0.replacingOccurrences(of: " ", with: "") } + ["<|reserved_3|>", "[PAD270]"]
    }
    static var tokenTypes: [Int32] { [3, 3, 3] + [Int32](repeating: 1, count: 256 + merges.count) + [3, 5] }
    static var vocabulary: Int { tokens.count }

    static func write(to path: String, dtype: DType) throws {
        var w = GGUFWriter()
        let keys: [(String, GGUFValue)] = [
            ("general.architecture", .string("grok")), ("general.name", .string("tiny-grok-2")),
            ("grok.context_length", .uint32(4096)), ("grok.embedding_length", .uint32(UInt32(width))),
            ("grok.block_count", .uint32(UInt32(layers))), ("grok.feed_forward_length", .uint32(UInt32(denseWidth))),
            ("grok.attention.head_count", .uint32(UInt32(heads))), ("grok.attention.head_count_kv", .uint32(UInt32(kvHeads))),
            ("grok.attention.key_length", .uint32(UInt32(headDim))), ("grok.attention.value_length", .uint32(UInt32(headDim))),
            ("grok.rope.freq_base", .float32(208_533_504)), ("grok.attention.layer_norm_rms_epsilon", .float32(1e-5)),
            ("grok.expert_count", .uint32(UInt32(experts))), ("grok.expert_used_count", .uint32(2)),
            ("grok.attn_logit_softcapping", .float32(30)), ("grok.router_logit_softcapping", .float32(30)),
            ("grok.attention.output_scale", .float32(0.25)), ("grok.embedding_scale", .float32(8)),
            ("grok.logit_scale", .float32(0.5)), ("grok.expert_feed_forward_length", .uint32(UInt32(expertWidth))),
            ("grok.final_logit_softcapping", .float32(50)), ("grok.attention.temperature_length", .uint32(1024)),
            ("grok.rope.scaling.type", .string("yarn")), ("grok.rope.scaling.factor", .float32(16)),
            ("grok.rope.scaling.original_context_length", .uint32(8192)), ("grok.rope.scaling.yarn_ext_factor", .float32(1)),
            ("grok.rope.scaling.yarn_attn_factor", .float32(1)), ("grok.rope.scaling.yarn_beta_fast", .float32(8)),
            ("grok.rope.scaling.yarn_beta_slow", .float32(1)),
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("grok-2")),
            ("tokenizer.ggml.tokens", .array(tokens.map { .string($0) })), ("tokenizer.ggml.token_type", .array(tokenTypes.map { .int32($0) })),
            ("tokenizer.ggml.merges", .array(merges.map { .string($0) })), ("tokenizer.ggml.eos_token_id", .uint32(2)),
            ("tokenizer.ggml.padding_token_id", .uint32(0)), ("tokenizer.ggml.add_bos_token", .bool(false)),
            ("tokenizer.ggml.add_eos_token", .bool(false)),
        ]
        for (key, value) in keys { w.set(key, value) }
        var seed: UInt64 = 1
        func add(_ name: String, _ dims: [Int], _ type: DType = dtype) {
            seed += 1
            w.addTensor(name: name, dims: dims, dtype: type, bytes: patternBytes(type.rowBytes(dims[0]) * dims.dropFirst().reduce(1, *), seed: seed))
        }
        let d = width, q = heads * headDim, kv = kvHeads * headDim
        add("token_embd.weight", [d, vocabulary])
        add("output_norm.weight", [d], .f32)
        add("output.weight", [d, vocabulary])
        for l in 0..<layers {
            let p = "blk.\(l)."
            add(p + "attn_norm.weight", [d], .f32)
            add(p + "attn_q.weight", [d, q]); add(p + "attn_k.weight", [d, kv]); add(p + "attn_v.weight", [d, kv])
            add(p + "attn_output.weight", [q, d])
            add(p + "attn_output_norm.weight", [d], .f32); add(p + "ffn_norm.weight", [d], .f32)
            add(p + "ffn_gate_inp.weight", [d, experts], .f32)
            add(p + "ffn_gate_exps.weight", [d, expertWidth, experts]); add(p + "ffn_down_exps.weight", [expertWidth, d, experts])
            add(p + "ffn_up_exps.weight", [d, expertWidth, experts])
            add(p + "ffn_gate.weight", [d, denseWidth]); add(p + "ffn_up.weight", [d, denseWidth]); add(p + "ffn_down.weight", [denseWidth, d])
            add(p + "post_ffw_norm.weight", [d], .f32)
        }
        try w.write(to: path)
    }

    /// A release written from a fresh tiny GGUF in `dtype`: the GGUF, and the release directory.
    static func release(in directory: URL, dtype: DType = .bf16) throws -> (gguf: GGUFFile, directory: String) {
        let path = directory.appendingPathComponent("tiny-grok-2.gguf").path
        try write(to: path, dtype: dtype)
        let gguf = try GGUFFile(path: path)
        let release = directory.appendingPathComponent("release").path
        try Grok2ReleaseWriter.write(from: gguf, to: release)
        return (gguf, release)
    }
}
