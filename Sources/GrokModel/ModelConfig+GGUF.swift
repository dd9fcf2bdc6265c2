import GrokCheckpoint

extension ModelConfig {
    /// Decodes llama.cpp's `grok.*` metadata (grok-architecture.md §5.2). Keys llama.cpp treats as
    /// optional get llama.cpp's defaults for old Grok-1 files; the architecture is Grok-2 when the
    /// layers carry a dense MLP. Throws naming the file and key; validates before returning.
    public init(gguf file: GGUFFile) throws {
        let source = file.path
        func missing(_ key: String, _ expected: String) -> ModelConfigError {
            ModelConfigError(source: source, field: key, expected: expected, found: "nothing (key absent)")
        }
        func requiredInt(_ key: String) throws -> Int {
            guard let v = try file.int(key) else { throw missing(key, "an integer") }
            return v
        }
        func float(_ key: String, default value: Float) throws -> Float {
            try file.double(key).map(Float.init) ?? value
        }

        let arch = try file.string("general.architecture")
        guard arch == "grok" else {
            throw ModelConfigError(source: source, field: "general.architecture", expected: "\"grok\"",
                                   found: arch.map { "\"\($0)\"" } ?? "nothing (key absent)")
        }
        // A metadata-only file (a shard directory's model.gguf, a converted checkpoint's metadata)
        // states in keys what a full file's tensors show: see `structuralMetadata`.
        let metadataOnly = file.tensors.isEmpty
        let isGrok2 = metadataOnly ? try file.bool(MetadataOnlyKeys.denseMLP) ?? false : file.tensor("blk.0.ffn_gate.weight") != nil
        let base = isGrok2 ? Grok2.config : Grok1.config

        let width = try requiredInt("grok.embedding_length")
        let heads = try requiredInt("grok.attention.head_count")
        let ffn = try requiredInt("grok.feed_forward_length")
        guard let eps = try file.double("grok.attention.layer_norm_rms_epsilon") else {
            throw missing("grok.attention.layer_norm_rms_epsilon", "a float (llama.cpp requires it)")
        }
        let vocabulary: Int
        if metadataOnly {
            vocabulary = try requiredInt(MetadataOnlyKeys.vocabulary)
        } else {
            guard let embedding = file.tensor("token_embd.weight") else {
                throw ModelConfigError(source: source, field: "token_embd.weight", expected: "a [d, vocabulary] tensor",
                                       found: "no such tensor")
            }
            vocabulary = embedding.dims.count == 2 ? embedding.dims[1] : 0
        }
        let headDim = try file.int("grok.attention.key_length") ?? (heads > 0 ? width / heads : 0)

        self.init(
            architecture: isGrok2 ? .grok2 : .grok1,
            vocabularySize: vocabulary,
            modelWidth: width,
            layerCount: try requiredInt("grok.block_count"),
            queryHeads: heads,
            kvHeads: try file.int("grok.attention.head_count_kv") ?? heads,
            headDim: headDim,
            expertCount: try requiredInt("grok.expert_count"),
            expertsPerToken: try requiredInt("grok.expert_used_count"),
            // llama.cpp: n_ff_exp falls back to n_ff when the expert key is absent (Grok-1 files).
            expertFFNWidth: try file.int("grok.expert_feed_forward_length") ?? ffn,
            denseFFNWidth: isGrok2 ? ffn : 0,
            contextLength: try requiredInt("grok.context_length"),
            rmsNormEpsilon: Float(eps),
            ropeBase: try file.double("grok.rope.freq_base") ?? base.ropeBase,
            embeddingScale: try float("grok.embedding_scale", default: Grok1.embeddingMultiplier),
            attentionScale: try float("grok.attention.output_scale",
                                      default: isGrok2 ? 1 / Float(headDim).squareRoot() : Grok1.attentionMultiplier),
            attentionSoftCap: try float("grok.attn_logit_softcapping", default: Grok1.attentionSoftCap),
            // The official Grok-1 has no router soft-cap even when a file carries the key (§2.6).
            routerSoftCap: isGrok2 ? try float("grok.router_logit_softcapping", default: Grok2.routerSoftCap) : 0,
            finalSoftCap: try float("grok.final_logit_softcapping", default: 0),
            outputScale: try float("grok.logit_scale", default: Grok1.outputMultiplier),
            attentionTemperatureLength: isGrok2 ? try file.int("grok.attention.temperature_length") ?? 0 : 0,
            tiedEmbeddings: metadataOnly ? try file.bool(MetadataOnlyKeys.tiedEmbeddings) ?? true : file.tensor("output.weight") == nil,
            gelu: isGrok2 ? .erf : .tanh)
        try validate(source: source)
    }

    /// The keys a metadata-only GGUF carries so that `init(gguf:)` reads the same configuration
    /// as from the full file: the vocabulary size, whether layers have a dense MLP (Grok-2) and
    /// whether the output head is the embedding.
    public var structuralMetadata: [(key: String, value: GGUFValue)] {
        [(MetadataOnlyKeys.vocabulary, .uint32(UInt32(vocabularySize))),
         (MetadataOnlyKeys.denseMLP, .bool(denseFFNWidth > 0)),
         (MetadataOnlyKeys.tiedEmbeddings, .bool(tiedEmbeddings))]
    }
}
