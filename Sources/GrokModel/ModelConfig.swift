import GrokTopology

/// The two Grok architectures. One GGUF arch string ("grok") covers both; a file is Grok-2 when its
/// layers carry the dense MLP that runs beside the MoE (`blk.N.ffn_gate.weight`).
public enum GrokArchitecture: String, Sendable, Codable {
    case grok1 = "grok-1"
    case grok2 = "grok-2"
}

/// Which GELU the gated FFNs use: Grok-1's JAX code uses the tanh approximation (jax.nn.gelu's
/// default); xAI's SGLang GPU path computes the exact erf form for Grok-2 (grok-architecture.md §8).
public enum GELUKind: String, Sendable, Codable {
    case tanh, erf
}

/// Every hyperparameter the forward pass needs, for either architecture. Values come from GGUF
/// metadata (`ModelConfig(gguf:)`) or a preset; `validate()` runs before any weight is read.
public struct ModelConfig: Sendable, Equatable, Codable {
    public var architecture: GrokArchitecture
    public var vocabularySize: Int
    public var modelWidth: Int              // d
    public var layerCount: Int              // L
    public var queryHeads: Int              // H
    public var kvHeads: Int                 // Hkv; query head i uses KV head i / (H / Hkv)
    public var headDim: Int                 // hd
    public var expertCount: Int             // E
    public var expertsPerToken: Int         // k
    public var expertFFNWidth: Int          // F
    public var denseFFNWidth: Int           // Grok-2's shared MLP; 0 for Grok-1
    public var contextLength: Int
    public var rmsNormEpsilon: Float
    public var ropeBase: Double
    public var embeddingScale: Float        // h = E[token] · embeddingScale
    public var attentionScale: Float        // attention logits · attentionScale before the soft-cap
    public var attentionSoftCap: Float      // cap · tanh(x / cap) on attention logits
    public var routerSoftCap: Float         // 0 = none (Grok-1 per the official JAX code)
    public var finalSoftCap: Float          // 0 = none (Grok-1)
    public var outputScale: Float           // logits · outputScale
    public var attentionTemperatureLength: Int  // 0 = none; Grok-2: logits · log2(p)/log2(L) for p > L
    public var tiedEmbeddings: Bool         // Grok-1 reuses token_embd as the output head
    public var gelu: GELUKind

    public init(architecture: GrokArchitecture, vocabularySize: Int, modelWidth: Int, layerCount: Int,
                queryHeads: Int, kvHeads: Int, headDim: Int, expertCount: Int, expertsPerToken: Int,
                expertFFNWidth: Int, denseFFNWidth: Int, contextLength: Int, rmsNormEpsilon: Float,
                ropeBase: Double, embeddingScale: Float, attentionScale: Float, attentionSoftCap: Float,
                routerSoftCap: Float, finalSoftCap: Float, outputScale: Float,
                attentionTemperatureLength: Int, tiedEmbeddings: Bool, gelu: GELUKind) {
        self.architecture = architecture
        self.vocabularySize = vocabularySize
        self.modelWidth = modelWidth
        self.layerCount = layerCount
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.expertCount = expertCount
        self.expertsPerToken = expertsPerToken
        self.expertFFNWidth = expertFFNWidth
        self.denseFFNWidth = denseFFNWidth
        self.contextLength = contextLength
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeBase = ropeBase
        self.embeddingScale = embeddingScale
        self.attentionScale = attentionScale
        self.attentionSoftCap = attentionSoftCap
        self.routerSoftCap = routerSoftCap
        self.finalSoftCap = finalSoftCap
        self.outputScale = outputScale
        self.attentionTemperatureLength = attentionTemperatureLength
        self.tiedEmbeddings = tiedEmbeddings
        self.gelu = gelu
    }

    public var queryWidth: Int { queryHeads * headDim }
    public var kvWidth: Int { kvHeads * headDim }
    public var queriesPerKVHead: Int { queryHeads / kvHeads }

    public var shape: ModelShape {
        ModelShape(layers: layerCount, queryHeads: queryHeads, kvHeads: kvHeads, experts: expertCount,
                   expertsPerToken: expertsPerToken, expertWidth: expertFFNWidth, denseWidth: denseFFNWidth,
                   vocabulary: vocabularySize)
    }

    /// Parameters per layer and in total (embedding counted once when tied).
    public var parameterCount: Int {
        let attention = modelWidth * queryWidth * 2 + modelWidth * kvWidth * 2
        let experts = expertCount * 3 * modelWidth * expertFFNWidth
        let dense = 3 * modelWidth * denseFFNWidth
        let layer = attention + experts + dense + expertCount * modelWidth + 4 * modelWidth
        let vocab = vocabularySize * modelWidth * (tiedEmbeddings ? 1 : 2)
        return layerCount * layer + vocab + modelWidth
    }

    /// Parameters read per token at decode: attention, k of E experts, dense MLP, router, norms, head.
    public var activeParameterCount: Int {
        let attention = modelWidth * queryWidth * 2 + modelWidth * kvWidth * 2
        let layer = attention + expertsPerToken * 3 * modelWidth * expertFFNWidth + 3 * modelWidth * denseFFNWidth
            + expertCount * modelWidth + 4 * modelWidth
        return layerCount * layer + vocabularySize * modelWidth + modelWidth
    }

    /// Checks every relation the forward pass relies on; throws `ModelConfigError` naming the field.
    public func validate(source: String) throws {
        func need(_ ok: Bool, _ field: String, _ expected: String, _ found: Any) throws {
            if !ok { throw ModelConfigError(source: source, field: field, expected: expected, found: "\(found)") }
        }
        try need(vocabularySize > 0, "vocabulary size", "> 0", vocabularySize)
        try need(modelWidth > 0, "grok.embedding_length", "> 0", modelWidth)
        try need(layerCount > 0, "grok.block_count", "> 0", layerCount)
        try need(queryHeads > 0, "grok.attention.head_count", "> 0", queryHeads)
        try need(kvHeads > 0 && queryHeads % kvHeads == 0, "grok.attention.head_count_kv",
                 "a divisor of head_count \(queryHeads)", kvHeads)
        try need(headDim > 0 && headDim % 2 == 0, "grok.attention.key_length", "an even number > 0", headDim)
        try need(expertCount > 0, "grok.expert_count", "> 0", expertCount)
        try need(expertsPerToken > 0 && expertsPerToken <= expertCount, "grok.expert_used_count",
                 "between 1 and expert_count \(expertCount)", expertsPerToken)
        try need(expertFFNWidth > 0, "grok.expert_feed_forward_length", "> 0", expertFFNWidth)
        try need(architecture == .grok1 ? denseFFNWidth == 0 : denseFFNWidth > 0, "grok.feed_forward_length",
                 architecture == .grok1 ? "no dense MLP for Grok-1" : "> 0 for Grok-2's dense MLP", denseFFNWidth)
        try need(contextLength > 0, "grok.context_length", "> 0", contextLength)
        try need(rmsNormEpsilon > 0 && rmsNormEpsilon.isFinite, "grok.attention.layer_norm_rms_epsilon", "> 0", rmsNormEpsilon)
        try need(ropeBase > 1 && ropeBase.isFinite, "grok.rope.freq_base", "> 1", ropeBase)
        for (field, value) in [("grok.embedding_scale", embeddingScale), ("grok.attention.output_scale", attentionScale),
                               ("grok.logit_scale", outputScale)] {
            try need(value.isFinite && value > 0, field, "a finite number > 0", value)
        }
        for (field, value) in [("grok.attn_logit_softcapping", attentionSoftCap),
                               ("grok.router_logit_softcapping", routerSoftCap),
                               ("grok.final_logit_softcapping", finalSoftCap)] {
            try need(value.isFinite && value >= 0, field, "a finite number ≥ 0 (0 = off)", value)
        }
        try need(attentionTemperatureLength >= 0 && attentionTemperatureLength != 1,
                 "grok.attention.temperature_length", "0 (off) or ≥ 2", attentionTemperatureLength)
    }
}

/// A configuration that cannot run: one line naming the source, the field and what was expected.
public struct ModelConfigError: Error, CustomStringConvertible {
    public let source: String
    public let field: String
    public let expected: String
    public let found: String
    public init(source: String, field: String, expected: String, found: String) {
        self.source = source
        self.field = field
        self.expected = expected
        self.found = found
    }
    public var description: String { "\(source): \(field): expected \(expected), found \(found)" }
}

// MARK: - Presets

extension ModelConfig {
    /// Named shapes: the two real models and small ones for tests and benchmarks.
    public static let presets: [String: ModelConfig] = [
        "grok-1": Grok1.config,
        "grok-2": Grok2.config,
        "grok-1-tiny": Grok1.tiny,
        "grok-2-tiny": Grok2.tiny,
        "grok-1-small": Grok1.small,
        "grok-2-small": Grok2.small,
    ]

    public static func preset(_ name: String) -> ModelConfig? { presets[name] }
}
