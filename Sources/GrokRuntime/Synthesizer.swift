import Foundation
import GrokCheckpoint
import GrokModel
import GrokTensor
import GrokTokenizer

/// Writes synthetic Grok models as GGUF files with llama.cpp's tensor names and metadata (the
/// layout its converter writes for `grok`), weights drawn from a seed, and a real tokenizer
/// vocabulary: SentencePiece BPE for Grok-1, byte-level BPE with the grok-2 pre-tokenizer for Grok-2.
///
/// Every tensor is drawn from its own stream (seed ⊕ tensor name), so a file is the same whatever
/// order it is written in. Scales keep activations O(1): matrices ~ N(0, 1/fan_in), the embedding
/// ~ N(0, 1/embeddingScale²), norm weights
/// ~ 1 + N(0, 0.1²), router ~ N(0, 1/d) so that routing varies across tokens and layers.
public enum Synthesizer {
    /// llama.cpp's `general.file_type` (llama_ftype) for a file whose matrices are `dtype`.
    static func fileType(_ dtype: DType) -> Int {
        switch dtype {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q8_0: return 7
        case .bf16: return 32
        }
    }

    /// Writes `config` at `dtype` to `path`. Matrices whose rows are not a multiple of the block size
    /// of `dtype` are an error. Streams tensor by tensor (files of several GB are fine). With
    /// `routing`, the routers are biased for skewed, layer-correlated expert choices
    /// (`SkewedRouting`); without it the file is the plain random model.
    public static func write(_ config: ModelConfig, dtype: DType, seed: UInt64, name: String, to path: String,
                             routing: SkewedRouting.Options? = nil) throws {
        try config.validate(source: "synthetic \(name)")
        for (what, width) in [("embedding_length", config.modelWidth), ("expert_feed_forward_length", config.expertFFNWidth),
                              ("feed_forward_length", max(config.denseFFNWidth, dtype.blockSize)),
                              ("head_count · key_length", config.queryWidth)] where width % dtype.blockSize != 0 {
            throw ModelConfigError(source: "synthetic \(name)", field: what,
                                   expected: "a multiple of \(dtype.blockSize) for \(dtype)", found: "\(width)")
        }
        var w = GGUFWriter()
        let grok2 = config.architecture == .grok2
        w.set("general.architecture", .string("grok"))
        w.set("general.name", .string(name))
        w.set("general.type", .string("model"))
        w.set("general.file_type", .uint32(UInt32(fileType(dtype))))
        w.set("general.quantization_version", .uint32(2))
        w.set("grok.context_length", .uint32(UInt32(config.contextLength)))
        w.set("grok.embedding_length", .uint32(UInt32(config.modelWidth)))
        w.set("grok.block_count", .uint32(UInt32(config.layerCount)))
        w.set("grok.feed_forward_length", .uint32(UInt32(grok2 ? config.denseFFNWidth : config.expertFFNWidth)))
        w.set("grok.attention.head_count", .uint32(UInt32(config.queryHeads)))
        w.set("grok.attention.head_count_kv", .uint32(UInt32(config.kvHeads)))
        w.set("grok.attention.key_length", .uint32(UInt32(config.headDim)))
        w.set("grok.attention.value_length", .uint32(UInt32(config.headDim)))
        w.set("grok.rope.freq_base", .float32(Float(config.ropeBase)))
        w.set("grok.attention.layer_norm_rms_epsilon", .float32(config.rmsNormEpsilon))
        w.set("grok.expert_count", .uint32(UInt32(config.expertCount)))
        w.set("grok.expert_used_count", .uint32(UInt32(config.expertsPerToken)))
        w.set("grok.attn_logit_softcapping", .float32(config.attentionSoftCap))
        w.set("grok.router_logit_softcapping", .float32(grok2 ? config.routerSoftCap : Grok1.attentionSoftCap))
        w.set("grok.attention.output_scale", .float32(config.attentionScale))
        w.set("grok.embedding_scale", .float32(config.embeddingScale))
        w.set("grok.logit_scale", .float32(config.outputScale))
        if grok2 {
            // As llama.cpp's converter writes Grok-2 (it maps rope_type "original" to YaRN; we read
            // and ignore these, following SGLang's plain RoPE).
            w.set("grok.expert_feed_forward_length", .uint32(UInt32(config.expertFFNWidth)))
            w.set("grok.final_logit_softcapping", .float32(config.finalSoftCap))
            w.set("grok.attention.temperature_length", .uint32(UInt32(config.attentionTemperatureLength)))
            w.set("grok.rope.scaling.type", .string("yarn"))
            w.set("grok.rope.scaling.factor", .float32(16))
            w.set("grok.rope.scaling.original_context_length", .uint32(8192))
            w.set("grok.rope.scaling.yarn_ext_factor", .float32(1))
            w.set("grok.rope.scaling.yarn_attn_factor", .float32(1))
            w.set("grok.rope.scaling.yarn_beta_fast", .float32(8))
            w.set("grok.rope.scaling.yarn_beta_slow", .float32(1))
        }
        let skewed = routing.map { SkewedRouting($0, config: config, seed: seed) }
        skewed?.addMetadata(to: &w)
        try addTokenizer(grok2 ? SyntheticVocabulary.byteLevelBPE(size: config.vocabularySize)
                               : SyntheticVocabulary.sentencePiece(size: config.vocabularySize), to: &w)

        let d = config.modelWidth, V = config.vocabularySize, E = config.expertCount, F = config.expertFFNWidth
        func matrix(_ tensor: String, _ dims: [Int], std: Double, type: DType = dtype) {
            w.addTensor(name: tensor, dims: dims, dtype: type) {
                var values = gaussian(count: dims.reduce(1, *), std: std, seed: seed, stream: tensor)
                skewed?.adjust(tensor, &values)
                return values.withUnsafeBufferPointer { Quantizer.quantize($0, to: type) }
            }
        }
        func norm(_ tensor: String) {
            w.addTensor(name: tensor, dims: [d], dtype: .f32) {
                let values = gaussian(count: d, std: 0.1, seed: seed, stream: tensor).map { 1 + $0 }
                return values.withUnsafeBufferPointer { Quantizer.quantize($0, to: .f32) }
            }
        }
        let inverseRootD = 1 / Double(d).squareRoot()
        // The scaled embedding has RMS ≈ 1, like the residual contributions of the layers.
        matrix("token_embd.weight", [d, V], std: 1 / Double(config.embeddingScale))
        norm("output_norm.weight")
        if !config.tiedEmbeddings { matrix("output.weight", [d, V], std: inverseRootD) }
        for l in 0..<config.layerCount {
            let p = "blk.\(l)."
            norm(p + "attn_norm.weight")
            matrix(p + "attn_q.weight", [d, config.queryWidth], std: inverseRootD)
            matrix(p + "attn_k.weight", [d, config.kvWidth], std: inverseRootD)
            matrix(p + "attn_v.weight", [d, config.kvWidth], std: inverseRootD)
            matrix(p + "attn_output.weight", [config.queryWidth, d], std: 1 / Double(config.queryWidth).squareRoot())
            norm(p + "attn_output_norm.weight")
            norm(p + "ffn_norm.weight")
            matrix(p + "ffn_gate_inp.weight", [d, E], std: inverseRootD, type: .f32)  // router stays f32, as llama.cpp keeps it
            matrix(p + "ffn_gate_exps.weight", [d, F, E], std: inverseRootD)
            matrix(p + "ffn_down_exps.weight", [F, d, E], std: 1 / Double(F).squareRoot())
            matrix(p + "ffn_up_exps.weight", [d, F, E], std: inverseRootD)
            if grok2 {
                let Fd = config.denseFFNWidth
                matrix(p + "ffn_gate.weight", [d, Fd], std: inverseRootD)
                matrix(p + "ffn_up.weight", [d, Fd], std: inverseRootD)
                matrix(p + "ffn_down.weight", [Fd, d], std: 1 / Double(Fd).squareRoot())
            }
            norm(p + (grok2 ? Grok2.postFeedForwardNorm : Grok1.postFeedForwardNorm) + ".weight")
        }
        try w.write(to: path)
        try skewed?.calibrate(path: path)
    }

    /// The `tokenizer.ggml.*` keys llama.cpp reads.
    static func addTokenizer(_ v: TokenizerVocabulary, to w: inout GGUFWriter) throws {
        w.set("tokenizer.ggml.model", .string(v.model))
        if let pre = v.pre { w.set("tokenizer.ggml.pre", .string(pre)) }
        w.set("tokenizer.ggml.tokens", .array(v.tokens.map { .string($0) }))
        if let scores = v.scores { w.set("tokenizer.ggml.scores", .array(scores.map { .float32($0) })) }
        if let types = v.tokenTypes { w.set("tokenizer.ggml.token_type", .array(types.map { .int32($0) })) }
        if let merges = v.merges { w.set("tokenizer.ggml.merges", .array(merges.map { .string($0) })) }
        if let id = v.bosID { w.set("tokenizer.ggml.bos_token_id", .uint32(UInt32(id))) }
        if let id = v.eosID { w.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(id))) }
        if let id = v.unknownID { w.set("tokenizer.ggml.unknown_token_id", .uint32(UInt32(id))) }
        if let id = v.paddingID { w.set("tokenizer.ggml.padding_token_id", .uint32(UInt32(id))) }
        w.set("tokenizer.ggml.add_bos_token", .bool(v.addBOS))
        if v.model == "llama" { w.set("tokenizer.ggml.add_space_prefix", .bool(v.addSpacePrefix)) }
        w.set("tokenizer.ggml.add_eos_token", .bool(false))
    }

    /// `count` draws of N(0, std²) from the stream of (seed, name): SplitMix64 + Box-Muller.
    static func gaussian(count: Int, std: Double, seed: UInt64, stream: String) -> [Float] {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a of the name
        for byte in stream.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        var rng = SplitMix64(seed: seed ^ hash)
        var out = [Float](repeating: 0, count: count)
        var i = 0
        while i < count {
            let u1 = (Double(rng.next() >> 11) + 1) / Double(1 << 53)   // (0, 1]
            let u2 = Double(rng.next() >> 11) / Double(1 << 53)
            let r = (-2 * log(u1)).squareRoot() * std
            out[i] = Float(r * cos(2 * .pi * u2))
            if i + 1 < count { out[i + 1] = Float(r * sin(2 * .pi * u2)) }
            i += 2
        }
        return out
    }
}
