import Foundation
import GrokTensor

/// A Grok `config.json` in Hugging Face form — xai-org/grok-2's (grok-architecture.md §3.1) or a
/// Grok-1 port's (keyfan/grok-1-hf `configuration_grok.py`: no `moe_intermediate_size`, the
/// experts' width is `intermediate_size`) — and its translation to and from the `grok.*` GGUF
/// keys, as llama.cpp's converter writes them (LC-conv `GrokModel.set_gguf_parameters`, §5.2)
/// and `ModelConfig(gguf:)` reads them.
public struct GrokHFConfig {
    public let path: String
    /// Grok-2: `moe_intermediate_size` is given and a dense MLP of `intermediate_size` runs beside the MoE.
    public let isGrok2: Bool
    public let vocabularySize: Int, width: Int, layerCount: Int, headCount: Int, kvHeadCount: Int, headDim: Int
    public let denseWidth: Int, expertWidth: Int, expertCount: Int
    /// The `grok.*` keys, in the order llama.cpp writes them.
    public let ggufMetadata: [(key: String, value: GGUFValue)]

    enum Kind { case int, float }
    /// What a key takes when config.json lacks it: an error, LC-conv's default, head_dim^p, or nothing.
    enum Fallback { case required, value(Double), headDimPower(Double), omitted }

    /// config.json key → GGUF key, with LC-conv's defaults. `head_dim` defaults to
    /// hidden_size / num_attention_heads and `attn_output_multiplier` to head_dim^-0.5 (§3.1:
    /// the release has no such key, SGLang uses head_dim^-0.5).
    static let keys: [(json: String, gguf: String, kind: Kind, fallback: Fallback)] = [
        ("max_position_embeddings", "grok.context_length", .int, .required),
        ("hidden_size", "grok.embedding_length", .int, .required),
        ("num_hidden_layers", "grok.block_count", .int, .required),
        ("intermediate_size", "grok.feed_forward_length", .int, .required),
        ("num_attention_heads", "grok.attention.head_count", .int, .required),
        ("num_key_value_heads", "grok.attention.head_count_kv", .int, .required),
        ("head_dim", "grok.attention.key_length", .int, .headDimPower(1)),
        ("head_dim", "grok.attention.value_length", .int, .headDimPower(1)),
        ("rope_theta", "grok.rope.freq_base", .float, .required),
        ("rms_norm_eps", "grok.attention.layer_norm_rms_epsilon", .float, .required),
        ("num_local_experts", "grok.expert_count", .int, .required),
        ("num_experts_per_tok", "grok.expert_used_count", .int, .required),
        ("moe_intermediate_size", "grok.expert_feed_forward_length", .int, .omitted),
        ("attn_logit_softcapping", "grok.attn_logit_softcapping", .float, .value(30)),
        ("router_logit_softcapping", "grok.router_logit_softcapping", .float, .value(30)),
        ("final_logit_softcapping", "grok.final_logit_softcapping", .float, .omitted),
        ("attn_temperature_len", "grok.attention.temperature_length", .int, .omitted),
        ("attn_output_multiplier", "grok.attention.output_scale", .float, .headDimPower(-0.5)),
        ("embedding_multiplier_scale", "grok.embedding_scale", .float, .required),
        ("output_multiplier_scale", "grok.logit_scale", .float, .required),
    ]

    /// Written when `rope_type` is "yarn" or "original": LC-conv treats "original" as YaRN (§3.4;
    /// our runtime reads and ignores these and uses plain RoPE, as SGLang).
    static let yarnKeys: [(json: String, gguf: String, kind: Kind)] = [
        ("scaling_factor", "grok.rope.scaling.factor", .float),
        ("original_max_position_embeddings", "grok.rope.scaling.original_context_length", .int),
        ("extrapolation_factor", "grok.rope.scaling.yarn_ext_factor", .float),
        ("attn_factor", "grok.rope.scaling.yarn_attn_factor", .float),
        ("beta_fast", "grok.rope.scaling.yarn_beta_fast", .float),
        ("beta_slow", "grok.rope.scaling.yarn_beta_slow", .float),
    ]

    /// Reads `path`: architecture `Grok1ForCausalLM` or `GrokForCausalLM`.
    public init(path: String) throws {
        self.path = path
        func failure(_ field: String, _ expected: String, _ found: String) -> CheckpointError {
            CheckpointError(file: path, field: field, expected: expected, found: found)
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw failure("file", "a readable config.json", "cannot read it") }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw failure("file", "a JSON object", "\(data.count) bytes that are not one")
        }
        let architectures = json["architectures"] as? [String] ?? []
        guard architectures.contains("Grok1ForCausalLM") || architectures.contains("GrokForCausalLM") else {
            throw failure("architectures", "[\"Grok1ForCausalLM\"] (§3.1) or [\"GrokForCausalLM\"]", "\(json["architectures"] ?? "nothing")")
        }
        func number(_ key: String, _ kind: Kind) throws -> Double? {
            guard let raw = json[key] else { return nil }
            guard let n = raw as? NSNumber, n.doubleValue.isFinite,
                  kind == .float || (n.doubleValue.rounded() == n.doubleValue && (0...Double(UInt32.max)).contains(n.doubleValue)) else {
                throw failure(key, kind == .int ? "an integer in 0...2^32-1" : "a finite number", "\(raw)")
            }
            return n.doubleValue
        }
        func int(_ key: String) throws -> Int {
            guard let v = try number(key, .int) else { throw failure(key, "an integer", "nothing (key absent)") }
            guard v > 0 && v < Double(Int32.max) else { throw failure(key, "an integer > 0", "\(v)") }
            return Int(v)
        }
        vocabularySize = try int("vocab_size"); width = try int("hidden_size"); layerCount = try int("num_hidden_layers")
        headCount = try int("num_attention_heads"); kvHeadCount = try int("num_key_value_heads")
        headDim = json["head_dim"] == nil ? width / headCount : try int("head_dim")
        isGrok2 = json["moe_intermediate_size"] != nil
        expertWidth = try int(isGrok2 ? "moe_intermediate_size" : "intermediate_size")
        denseWidth = isGrok2 ? try int("intermediate_size") : 0
        expertCount = try int("num_local_experts")
        if isGrok2, let residual = json["residual_moe"] as? Bool, !residual {
            throw failure("residual_moe", "true (Grok-2 runs a dense MLP beside the MoE)", "false")
        }

        var metadata: [(key: String, value: GGUFValue)] = [("general.architecture", .string("grok"))]
        func add(_ gguf: String, _ kind: Kind, _ value: Double) {
            metadata.append((gguf, kind == .int ? .uint32(UInt32(value)) : .float32(Float(value))))
        }
        for key in Self.keys {
            if let v = try number(key.json, key.kind) { add(key.gguf, key.kind, v); continue }
            switch key.fallback {
            case .required: throw failure(key.json, key.kind == .int ? "an integer" : "a number", "nothing (key absent)")
            case .value(let v): add(key.gguf, key.kind, v)
            case .headDimPower(let p): add(key.gguf, key.kind, pow(Double(headDim), p))
            case .omitted: break
            }
        }
        if let rope = json["rope_type"] as? String, rope == "yarn" || rope == "original" {
            metadata.append(("grok.rope.scaling.type", .string("yarn")))
            for key in Self.yarnKeys {
                guard let v = try number(key.json, key.kind) else { throw failure(key.json, "a number (rope_type is \(quoted(rope)))", "nothing (key absent)") }
                add(key.gguf, key.kind, v)
            }
        }
        ggufMetadata = metadata
    }

    /// config.json for the Grok GGUF `file` (its `grok.*` keys back to their config.json names),
    /// with the fixed keys of xai-org/grok-2 (§3.1) for a Grok-2 file (one with a dense MLP) or of
    /// keyfan/grok-1-hf for a Grok-1 file. `dtype` is the matrices' dtype (`torch_dtype`).
    /// `attn_output_multiplier` is written only when it differs from head_dim^-0.5.
    public static func jsonText(from file: GGUFFile, vocabularySize: Int, dtype: DType) throws -> String {
        let torchDtype = [DType.bf16: "bfloat16", .f16: "float16", .f32: "float32"][dtype] ?? "bfloat16"
        let grok2 = file.tensor("blk.0.ffn_gate.weight") != nil
        var members: [(String, JSONText)] = grok2
            ? [("architectures", .array([.string("Grok1ForCausalLM")])), ("model_type", .string("git")), ("torch_dtype", .string(torchDtype)),
               ("vocab_size", .int(vocabularySize)), ("residual_moe", .bool(true))]
            : [("architectures", .array([.string("GrokForCausalLM")])), ("model_type", .string("grok")), ("torch_dtype", .string(torchDtype)),
               ("vocab_size", .int(vocabularySize)), ("tie_word_embeddings", .bool(true))]
        var written: Set<String> = []
        let headDim = try file.int("grok.attention.key_length")
        for key in keys + yarnKeys.map({ ($0.json, $0.gguf, $0.kind, Fallback.omitted) }) where !written.contains(key.json) {
            guard let value = file.metadata[key.gguf], let number = value.doubleValue else {
                if case .required = key.fallback {
                    throw CheckpointError(file: file.path, field: "metadata \(quoted(key.gguf))", expected: "a number (config.json \(key.json))", found: "nothing")
                }
                continue
            }
            if key.json == "attn_output_multiplier", let headDim, Float(number) == Float(pow(Double(headDim), -0.5)) { continue }
            members.append((key.json, key.kind == .int ? .int(Int(number)) : .float(Float(number))))
            written.insert(key.json)
        }
        if written.contains("scaling_factor") { members.append(("rope_type", .string("original"))) }
        if grok2 { members += [("sliding_window_size", .int(-1)), ("global_attn_every_n", .int(1))] }
        return JSONText.object(members).rendered(pretty: true) + "\n"
    }
}
