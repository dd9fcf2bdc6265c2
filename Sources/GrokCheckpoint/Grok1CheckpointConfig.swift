import Foundation

/// The hyperparameters of a Grok-1 JAX checkpoint, under the names the official code gives them
/// (run.py's `LanguageModelConfig` / `TransformerConfig`, grok-architecture.md §2.1).
///
/// The official `ckpt-0` ships without a config file: ``official`` holds run.py's values. A
/// `config.json` beside `ckpt-0` (``Grok1CheckpointWriter`` writes one; any key may be left out,
/// unknown keys are ignored) overrides them key by key:
///
/// | key | official value | GGUF key |
/// |---|---|---|
/// | `name` | `"grok-1"` | `general.name` |
/// | `vocab_size` | 131072 | `grok.vocab_size` |
/// | `sequence_len` | 8192 | `grok.context_length` |
/// | `emb_size` | 6144 | `grok.embedding_length` |
/// | `key_size` | 128 | `grok.attention.key_length`, `value_length`, `rope.dimension_count` |
/// | `num_q_heads` / `num_kv_heads` | 48 / 8 | `grok.attention.head_count` / `head_count_kv` |
/// | `num_layers` | 64 | `grok.block_count` |
/// | `widening_factor` | 8 | (gives `ffn_size`) |
/// | `ffn_size` | model.py's `ffn_size(emb_size, widening_factor)` = 32768 | `grok.feed_forward_length` |
/// | `num_experts` / `num_selected_experts` | 8 / 2 | `grok.expert_count` / `expert_used_count` |
/// | `attn_output_multiplier` | 0.08838834764831845 | `grok.attention.output_scale` |
/// | `embedding_multiplier_scale` | 78.38367176906169 | `grok.embedding_scale` |
/// | `output_multiplier_scale` | 0.5773502691896257 | `grok.logit_scale` |
/// | `max_attn_val` | 30 | `grok.attn_logit_softcapping` |
/// | `rms_norm_eps` | 1e-5 | `grok.attention.layer_norm_rms_epsilon` |
/// | `rope_theta` | 10000 | `grok.rope.freq_base` |
///
/// `ffn_size`, `max_attn_val`, `rms_norm_eps` and `rope_theta` are not fields of the official
/// config (model.py computes or hard-codes them: L85-89, L863-865, L592, L801); they are read
/// here so that other shapes can be described.
public struct Grok1CheckpointConfig: Codable, Equatable, Sendable {
    public var name: String
    public var vocabularySize: Int
    public var sequenceLength: Int
    public var embeddingSize: Int
    public var keySize: Int
    public var queryHeads: Int
    public var kvHeads: Int
    public var layers: Int
    public var wideningFactor: Double
    /// The expert FFN width F.
    public var ffnSize: Int
    public var experts: Int
    public var selectedExperts: Int
    public var attentionOutputMultiplier: Double
    public var embeddingMultiplier: Double
    public var outputMultiplier: Double
    public var maxAttentionValue: Double
    public var rmsNormEpsilon: Double
    public var ropeTheta: Double

    enum CodingKeys: String, CodingKey {
        case name
        case vocabularySize = "vocab_size"
        case sequenceLength = "sequence_len"
        case embeddingSize = "emb_size"
        case keySize = "key_size"
        case queryHeads = "num_q_heads"
        case kvHeads = "num_kv_heads"
        case layers = "num_layers"
        case wideningFactor = "widening_factor"
        case ffnSize = "ffn_size"
        case experts = "num_experts"
        case selectedExperts = "num_selected_experts"
        case attentionOutputMultiplier = "attn_output_multiplier"
        case embeddingMultiplier = "embedding_multiplier_scale"
        case outputMultiplier = "output_multiplier_scale"
        case maxAttentionValue = "max_attn_val"
        case rmsNormEpsilon = "rms_norm_eps"
        case ropeTheta = "rope_theta"
    }

    /// The 314B model: run.py L25-50 (§2.1), model.py's hard-coded constants.
    public static let official = Grok1CheckpointConfig(
        name: "grok-1", vocabularySize: 128 * 1024, sequenceLength: 8192, embeddingSize: 48 * 128, keySize: 128,
        queryHeads: 48, kvHeads: 8, layers: 64, wideningFactor: 8, ffnSize: ffnSize(embeddingSize: 48 * 128, wideningFactor: 8),
        experts: 8, selectedExperts: 2, attentionOutputMultiplier: 0.08838834764831845,
        embeddingMultiplier: 78.38367176906169, outputMultiplier: 0.5773502691896257,
        maxAttentionValue: 30, rmsNormEpsilon: 1e-5, ropeTheta: 10_000)

    public init(name: String, vocabularySize: Int, sequenceLength: Int, embeddingSize: Int, keySize: Int,
                queryHeads: Int, kvHeads: Int, layers: Int, wideningFactor: Double, ffnSize: Int, experts: Int,
                selectedExperts: Int, attentionOutputMultiplier: Double, embeddingMultiplier: Double,
                outputMultiplier: Double, maxAttentionValue: Double, rmsNormEpsilon: Double, ropeTheta: Double) {
        self.name = name
        self.vocabularySize = vocabularySize
        self.sequenceLength = sequenceLength
        self.embeddingSize = embeddingSize
        self.keySize = keySize
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.layers = layers
        self.wideningFactor = wideningFactor
        self.ffnSize = ffnSize
        self.experts = experts
        self.selectedExperts = selectedExperts
        self.attentionOutputMultiplier = attentionOutputMultiplier
        self.embeddingMultiplier = embeddingMultiplier
        self.outputMultiplier = outputMultiplier
        self.maxAttentionValue = maxAttentionValue
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
    }

    /// Keys present override ``official``; `ffn_size` defaults to model.py's formula.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let o = Self.official
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? o.name
        vocabularySize = try c.decodeIfPresent(Int.self, forKey: .vocabularySize) ?? o.vocabularySize
        sequenceLength = try c.decodeIfPresent(Int.self, forKey: .sequenceLength) ?? o.sequenceLength
        embeddingSize = try c.decodeIfPresent(Int.self, forKey: .embeddingSize) ?? o.embeddingSize
        keySize = try c.decodeIfPresent(Int.self, forKey: .keySize) ?? o.keySize
        queryHeads = try c.decodeIfPresent(Int.self, forKey: .queryHeads) ?? o.queryHeads
        kvHeads = try c.decodeIfPresent(Int.self, forKey: .kvHeads) ?? o.kvHeads
        layers = try c.decodeIfPresent(Int.self, forKey: .layers) ?? o.layers
        wideningFactor = try c.decodeIfPresent(Double.self, forKey: .wideningFactor) ?? o.wideningFactor
        ffnSize = try c.decodeIfPresent(Int.self, forKey: .ffnSize)
            ?? Self.ffnSize(embeddingSize: embeddingSize, wideningFactor: wideningFactor)
        experts = try c.decodeIfPresent(Int.self, forKey: .experts) ?? o.experts
        selectedExperts = try c.decodeIfPresent(Int.self, forKey: .selectedExperts) ?? o.selectedExperts
        attentionOutputMultiplier = try c.decodeIfPresent(Double.self, forKey: .attentionOutputMultiplier) ?? o.attentionOutputMultiplier
        embeddingMultiplier = try c.decodeIfPresent(Double.self, forKey: .embeddingMultiplier) ?? o.embeddingMultiplier
        outputMultiplier = try c.decodeIfPresent(Double.self, forKey: .outputMultiplier) ?? o.outputMultiplier
        maxAttentionValue = try c.decodeIfPresent(Double.self, forKey: .maxAttentionValue) ?? o.maxAttentionValue
        rmsNormEpsilon = try c.decodeIfPresent(Double.self, forKey: .rmsNormEpsilon) ?? o.rmsNormEpsilon
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? o.ropeTheta
    }

    /// Reads and validates `config.json` at `path`.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError(file: path, field: "file", expected: "a readable config.json", found: "cannot read it")
        }
        do {
            self = try JSONDecoder().decode(Self.self, from: data)
        } catch let DecodingError.typeMismatch(type, context) {
            throw CheckpointError(file: path, field: context.codingPath.map(\.stringValue).joined(separator: "."),
                                  expected: type == String.self ? "a string" : type == Int.self ? "an integer" : "a number",
                                  found: "a value of another type")
        } catch {
            throw CheckpointError(file: path, field: "file", expected: "a JSON object of Grok-1 hyperparameters", found: "\(data.count) bytes that are not one")
        }
        try validate(source: path)
    }

    /// model.py `ffn_size` (L85-89): int(widening_factor · emb_size) · 2 // 3, rounded up to a multiple of 8.
    public static func ffnSize(embeddingSize: Int, wideningFactor: Double) -> Int {
        let size = Int(wideningFactor * Double(embeddingSize)) * 2 / 3
        return size + ((8 - size) % 8 + 8) % 8
    }

    /// Checks every relation the checkpoint layout and the forward pass rely on: one line naming
    /// `source` and the JSON key.
    public func validate(source: String) throws {
        func need(_ ok: Bool, _ key: CodingKeys, _ expected: String, _ found: Any) throws {
            if !ok { throw CheckpointError(file: source, field: key.rawValue, expected: expected, found: "\(found)") }
        }
        for (key, value) in [(CodingKeys.vocabularySize, vocabularySize), (.sequenceLength, sequenceLength), (.embeddingSize, embeddingSize),
                             (.layers, layers), (.ffnSize, ffnSize), (.experts, experts)] {
            try need(value > 0 && value <= Int(UInt32.max), key, "an integer in 1...2^32-1", value)
        }
        try need(keySize > 0 && keySize % 2 == 0, .keySize, "an even number > 0 (RoPE rotates pairs)", keySize)
        try need(queryHeads > 0, .queryHeads, "> 0", queryHeads)
        try need(kvHeads > 0 && queryHeads % kvHeads == 0, .kvHeads, "a divisor of num_q_heads \(queryHeads)", kvHeads)
        try need(selectedExperts > 0 && selectedExperts <= experts, .selectedExperts, "between 1 and num_experts \(experts)", selectedExperts)
        for (key, value) in [(CodingKeys.attentionOutputMultiplier, attentionOutputMultiplier), (.embeddingMultiplier, embeddingMultiplier),
                             (.outputMultiplier, outputMultiplier), (.rmsNormEpsilon, rmsNormEpsilon), (.maxAttentionValue, maxAttentionValue)] {
            try need(value.isFinite && value > 0, key, "a finite number > 0", value)
        }
        try need(ropeTheta.isFinite && ropeTheta > 1, .ropeTheta, "a finite number > 1", ropeTheta)
    }

    // MARK: - GGUF

    /// `general.*` and `grok.*` keys as llama.cpp's converters write them for Grok-1 (§5.2), plus the
    /// structural keys of a metadata-only file (no dense MLP, output head tied to the embedding).
    public var ggufMetadata: [(key: String, value: GGUFValue)] {
        func u32(_ v: Int) -> GGUFValue { .uint32(UInt32(v)) }
        func f32(_ v: Double) -> GGUFValue { .float32(Float(v)) }
        return [
            ("general.architecture", .string("grok")), ("general.name", .string(name)),
            ("grok.context_length", u32(sequenceLength)), ("grok.embedding_length", u32(embeddingSize)),
            ("grok.block_count", u32(layers)), ("grok.feed_forward_length", u32(ffnSize)),
            ("grok.attention.head_count", u32(queryHeads)), ("grok.attention.head_count_kv", u32(kvHeads)),
            ("grok.attention.key_length", u32(keySize)), ("grok.attention.value_length", u32(keySize)),
            ("grok.rope.dimension_count", u32(keySize)), ("grok.rope.freq_base", f32(ropeTheta)),
            ("grok.attention.layer_norm_rms_epsilon", f32(rmsNormEpsilon)),
            ("grok.expert_count", u32(experts)), ("grok.expert_used_count", u32(selectedExperts)),
            ("grok.attn_logit_softcapping", f32(maxAttentionValue)),
            ("grok.attention.output_scale", f32(attentionOutputMultiplier)),
            ("grok.embedding_scale", f32(embeddingMultiplier)), ("grok.logit_scale", f32(outputMultiplier)),
            (MetadataOnlyKeys.vocabulary, u32(vocabularySize)), (MetadataOnlyKeys.denseMLP, .bool(false)), (MetadataOnlyKeys.tiedEmbeddings, .bool(true)),
        ]
    }

    /// The configuration of a Grok-1 GGUF (`grok.*` keys, vocabulary from `token_embd.weight`),
    /// with llama.cpp's defaults (the official values) for the optional keys (§5.2).
    public init(gguf file: GGUFFile) throws {
        func required(_ key: String) throws -> Int {
            guard let value = try file.int(key) else {
                throw CheckpointError(file: file.path, field: "metadata \(quoted(key))", expected: "an integer", found: "nothing (key absent)")
            }
            return value
        }
        for name in ["output.weight", "blk.0.ffn_gate.weight"] where file.tensor(name) != nil {
            throw CheckpointError(file: file.path, field: "tensor \(quoted(name))",
                                  expected: "a Grok-1 file (output tied to token_embd, no dense MLP)", found: "a tensor of that name")
        }
        let width = try required("grok.embedding_length"), heads = try required("grok.attention.head_count")
        let vocabulary = file.tensor("token_embd.weight")?.dims.last ?? 0
        _ = try file.require("token_embd.weight", dims: [width, vocabulary])
        let ffn = try file.int("grok.expert_feed_forward_length") ?? required("grok.feed_forward_length")
        // GGUF floats are f32: keep their shortest decimal form, so config.json reads 1e-05, not 9.99999974737875e-06.
        func number(_ key: String, _ fallback: Double) throws -> Double {
            try file.double(key).map { Double(Float($0).description)! } ?? fallback
        }
        let o = Self.official
        self.init(name: try file.string("general.name") ?? o.name, vocabularySize: vocabulary,
                  sequenceLength: try required("grok.context_length"), embeddingSize: width,
                  keySize: try file.int("grok.attention.key_length") ?? width / max(heads, 1), queryHeads: heads,
                  kvHeads: try file.int("grok.attention.head_count_kv") ?? heads, layers: try required("grok.block_count"),
                  wideningFactor: 1.5 * Double(ffn) / Double(width), ffnSize: ffn, experts: try required("grok.expert_count"),
                  selectedExperts: try required("grok.expert_used_count"),
                  attentionOutputMultiplier: try number("grok.attention.output_scale", o.attentionOutputMultiplier),
                  embeddingMultiplier: try number("grok.embedding_scale", o.embeddingMultiplier),
                  outputMultiplier: try number("grok.logit_scale", o.outputMultiplier),
                  maxAttentionValue: try number("grok.attn_logit_softcapping", o.maxAttentionValue),
                  rmsNormEpsilon: try number("grok.attention.layer_norm_rms_epsilon", o.rmsNormEpsilon),
                  ropeTheta: try number("grok.rope.freq_base", o.ropeTheta))
        try validate(source: file.path)
    }
}
