// Grok-2, as xAI's SGLang serving path computes it (sglang models/grok.py @031ad4c; config.json of
// xai-org/grok-2). See ../shared/grok-architecture.md §3 and §8.
//
// Per layer:
//   h = h + RMSNorm_post_attn(Attn(RMSNorm_pre_attn(h)))
//   x = RMSNorm_pre_moe(h)
//   h = h + RMSNorm_post_moe((MLP(x) + MoE(x)) / √2)       (`residual_moe`)
// Router logits soft-capped 30·tanh(x/30) before the softmax, raw top-2 gates (§3.5). Attention
// logits ·1/√hd, soft-capped at 30, then ·log2(p)/log2(L) for query positions p > L = 1024 (§3.3).
// Exact erf GELU (§8). Separate output head; logits ·0.5 then 50·tanh(x/50).
//
// Where llama.cpp differs (§5.5): it renormalises the top-2 gates (changes the MLP:MoE mix),
// does not apply the router soft-cap or the attention temperature, and treats rope_type "original"
// as YaRN(16); SGLang uses plain RoPE with base 208533496, and so do we (the yarn keys a GGUF
// carries are read and ignored).
import Foundation
import GrokTensor

public enum Grok2 {
    /// `embedding_multiplier_scale` = sqrt(8192) (G2-cfg).
    public static let embeddingMultiplier: Float = 90.50966799187809
    /// Attention scale head_dim^-0.5: the config has no `attn_output_multiplier` (SGL-grok).
    public static let attentionMultiplier: Float = 0.08838834764831845
    /// `output_multiplier_scale` (G2-cfg).
    public static let outputMultiplier: Float = 0.5
    /// `attn_logit_softcapping`, `router_logit_softcapping`, `final_logit_softcapping` (G2-cfg).
    public static let attentionSoftCap: Float = 30
    public static let routerSoftCap: Float = 30
    public static let finalSoftCap: Float = 50
    /// `attn_temperature_len` (G2-cfg).
    public static let attentionTemperatureLength = 1024
    /// `rope_theta`, with `rope_type "original"` = unscaled frequencies in SGLang (§3.4).
    public static let ropeBase: Double = 208_533_496
    /// (MLP + MoE) / √2: SGLang divides by 1.4142135623730951 (`moe_with_rmoe`).
    public static let residualMoEScale: Float = 1 / 1.4142135623730951

    /// Post-MoE norm tensor (`post_moe_norm` in HF) as llama.cpp's converter names it.
    public static let postFeedForwardNorm = "post_ffw_norm"

    /// The 270B model (G2-cfg): 64 layers, width 8192, 64/8 heads of 128, 8 experts of width
    /// 16384 top-2, dense MLP 32768, vocabulary 131072, context 131072.
    public static let config = ModelConfig(
        architecture: .grok2, vocabularySize: 131_072, modelWidth: 8192, layerCount: 64,
        queryHeads: 64, kvHeads: 8, headDim: 128, expertCount: 8, expertsPerToken: 2,
        expertFFNWidth: 16_384, denseFFNWidth: 32_768, contextLength: 131_072, rmsNormEpsilon: 1e-5,
        ropeBase: ropeBase, embeddingScale: embeddingMultiplier, attentionScale: attentionMultiplier,
        attentionSoftCap: attentionSoftCap, routerSoftCap: routerSoftCap, finalSoftCap: finalSoftCap,
        outputScale: outputMultiplier, attentionTemperatureLength: attentionTemperatureLength,
        tiedEmbeddings: false, gelu: .erf)

    /// The shape of ../shared/reference/grok2: vocabulary 512, width 256, 4 layers, 8/4 heads of
    /// 32, 8 experts of width 128, dense MLP 256, temperature length 64 so short prompts exercise it.
    public static let tiny: ModelConfig = {
        var c = config
        c.vocabularySize = 512; c.modelWidth = 256; c.layerCount = 4
        c.queryHeads = 8; c.kvHeads = 4; c.headDim = 32; c.expertFFNWidth = 128; c.denseFFNWidth = 256
        c.contextLength = 2048; c.embeddingScale = 16; c.attentionScale = 0.1767766952966369
        c.attentionTemperatureLength = 64
        return c
    }()

    /// A mid-sized Grok-2 shape for benchmarks (~0.6 GB in F32).
    public static let small: ModelConfig = {
        var c = config
        c.vocabularySize = 4096; c.modelWidth = 1024; c.layerCount = 4
        c.queryHeads = 8; c.kvHeads = 2; c.headDim = 128; c.expertFFNWidth = 1024; c.denseFFNWidth = 2048
        c.contextLength = 4096; c.embeddingScale = 32; c.attentionScale = 1 / Float(128).squareRoot()
        c.attentionTemperatureLength = 1024
        return c
    }()
}

extension Grok2 {
    /// The attention temperature of a query at absolute 0-based position p: log2(p)/log2(L) for
    /// p > L, else 1; it multiplies the logits after the soft-cap (SGLang's triton kernels, §3.3).
    /// `length` 0 turns it off (Grok-1).
    public static func attentionTemperature(position p: Int, length: Int) -> Float {
        length > 0 && p > length ? Float(log2(Double(p)) / log2(Double(length))) : 1
    }

    /// Grok-2's feed-forward block: (dense MLP + MoE) / √2 (`residual_moe`).
    static func feedForward(_ model: GrokModel, _ layer: Int, _ w: LayerWeights, _ x: FloatBuffer) throws -> FloatBuffer {
        let f = try model.feedForwardSum(layer, w, x)          // MoE(x) + MLP(x)
        for i in 0..<f.count { f.pointer[i] *= residualMoEScale }
        return f
    }
}
