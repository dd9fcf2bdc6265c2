// Grok-1, as the official xai-org/grok-1 JAX code computes it (model.py @7050ed2).
// Constants are quoted with their source; see ../shared/grok-architecture.md §2.
//
// Per layer ("sandwich" norms, §2.2):
//   h = h + RMSNorm_1(Attn(RMSNorm_0(h)))
//   h = h + RMSNorm_3(MoE(RMSNorm_2(h)))
// MoE: router softmax in f32 over all experts, raw top-2 probabilities as gates (not renormalised,
// §2.6), experts gelu_tanh(x·W_gate) ⊙ (x·W_up) then W_down (§2.7). Logits use the tied embedding.
//
// Where llama.cpp differs (§5.5) we follow the official code: llama.cpp renormalises the top-2
// gates (harmless for Grok-1 only because RMSNorm_3 follows) and rounds GELU through an f16 table;
// it also reads `grok.router_logit_softcapping` (SGLang applies it to Grok-1 too) but the JAX
// reference has no router soft-cap, so a Grok-1 file's router cap is ignored here.
import GrokTensor

public enum Grok1 {
    /// `embedding_multiplier_scale` = sqrt(6144) (G1-run L42; llama.cpp's default for old GGUFs).
    public static let embeddingMultiplier: Float = 78.38367176906169
    /// `attn_output_multiplier` = 1/sqrt(128) (G1-run L41).
    public static let attentionMultiplier: Float = 0.08838834764831845
    /// `output_multiplier_scale` = 1/sqrt(3) (G1-run L43).
    public static let outputMultiplier: Float = 0.5773502691896257
    /// `max_attn_val` soft-cap: 30·tanh(x/30) (G1-model L863-865).
    public static let attentionSoftCap: Float = 30
    /// RoPE base, hard-coded `int(1e4)` in the attention module (G1-model L801).
    public static let ropeBase: Double = 10_000
    /// RMSNorm epsilon, default of the custom RMSNorm (G1-model L592).
    public static let rmsNormEpsilon: Float = 1e-5

    /// Post-MoE norm tensor (`rms_norm_3` in JAX) as llama.cpp's converter names it.
    public static let postFeedForwardNorm = "layer_output_norm"

    /// The 314B model (G1-run L25-50): 64 layers, width 6144, 48/8 heads of 128, 8 experts top-2,
    /// expert width int(8·6144)·2/3 = 32768 (G1-model L85-89), vocabulary 128·1024, context 8192.
    public static let config = ModelConfig(
        architecture: .grok1, vocabularySize: 131_072, modelWidth: 6144, layerCount: 64,
        queryHeads: 48, kvHeads: 8, headDim: 128, expertCount: 8, expertsPerToken: 2,
        expertFFNWidth: 32_768, denseFFNWidth: 0, contextLength: 8192, rmsNormEpsilon: rmsNormEpsilon,
        ropeBase: ropeBase, embeddingScale: embeddingMultiplier, attentionScale: attentionMultiplier,
        attentionSoftCap: attentionSoftCap, routerSoftCap: 0, finalSoftCap: 0, outputScale: outputMultiplier,
        attentionTemperatureLength: 0, tiedEmbeddings: true, gelu: .tanh)

    /// The shape of ../shared/reference (the tiny model xai-org/grok-1 was run on): vocabulary 512,
    /// width 256, 4 layers, 8/2 heads of 32, 8 experts of width 128, context 256.
    public static let tiny: ModelConfig = {
        var c = config
        c.vocabularySize = 512; c.modelWidth = 256; c.layerCount = 4
        c.queryHeads = 8; c.kvHeads = 2; c.headDim = 32; c.expertFFNWidth = 128; c.contextLength = 256
        c.embeddingScale = 16; c.attentionScale = 0.1767766952966369
        return c
    }()

    /// A mid-sized Grok-1 shape for benchmarks and pipelining tests (~0.5 GB in F32).
    public static let small: ModelConfig = {
        var c = config
        c.vocabularySize = 4096; c.modelWidth = 1024; c.layerCount = 4
        c.queryHeads = 8; c.kvHeads = 2; c.headDim = 128; c.expertFFNWidth = 2048; c.contextLength = 2048
        c.embeddingScale = 32; c.attentionScale = 1 / Float(128).squareRoot()
        return c
    }()
}

extension Grok1 {
    /// Grok-1's feed-forward block: the MoE alone.
    static func feedForward(_ model: GrokModel, _ layer: Int, _ w: LayerWeights, _ x: FloatBuffer) throws -> FloatBuffer {
        try model.feedForwardSum(layer, w, x)
    }
}
