import Foundation
import GrokCheckpoint
import GrokModel
import GrokTensor
import GrokTokenizer

/// Opening a model for a run: the GGUF file, its configuration and tokenizer.
public enum ModelSource {
    /// The embedded default's shape: Grok-1 tiny (width 256, 4 layers, 8 experts top-2, context
    /// 256) with a 4096-piece vocabulary, so that sampled text is mostly word pieces, not raw bytes.
    public static let embeddedConfig: ModelConfig = {
        var c = Grok1.tiny
        c.vocabularySize = 4096
        return c
    }()

    /// The embedded default: `embeddedConfig` synthesized deterministically (seed 1) into a
    /// private temporary file that is unlinked once mapped.
    public static func embeddedDefault(directory: String = NSTemporaryDirectory()) throws -> GGUFFile {
        let path = (directory as NSString).appendingPathComponent("grokcluster-default-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).gguf")
        try Synthesizer.write(embeddedConfig, dtype: .f32, seed: 1, name: "grokcluster-embedded-default", to: path)
        defer { unlink(path) }
        return try GGUFFile(path: path)
    }

    /// The model at `path` as a tensor source, by what is there:
    /// - a file: GGUF (llama.cpp's `grok` layout);
    /// - a directory with `ckpt-0/` (or `ckpt-0` itself): the official Grok-1 checkpoint;
    /// - a directory with `*-TP-common.safetensors`: xAI's Grok-2 release;
    /// - a directory with other `*.safetensors` and a `config.json`: a Hugging Face Grok-1 port.
    public static func open(_ path: String) throws -> TensorSource {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            return try GGUFFile(path: path)
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        if (path as NSString).lastPathComponent == "ckpt-0" || names.contains("ckpt-0") {
            return try Grok1Checkpoint(directory: path)
        }
        if names.contains(where: { $0.hasSuffix("-TP-common.safetensors") }) {
            return try Grok2Release(directory: path)
        }
        if names.contains(where: { $0.hasSuffix(".safetensors") }) {
            return try Grok1HFPort(directory: path)
        }
        throw CheckpointError(file: path, field: "directory", expected: "a Grok-1 ckpt-0 checkpoint, a Grok-2 safetensors release or a Hugging Face Grok-1 port",
                              found: "none of them (\(names.count) entries)")
    }

    /// The tokenizer a GGUF carries (`tokenizer.ggml.*`), or nil when it carries none.
    public static func tokenizer(of file: GGUFFile) throws -> (any Tokenizer)? {
        guard let model = try file.string("tokenizer.ggml.model") else { return nil }
        guard let tokens = try file.stringArray("tokenizer.ggml.tokens") else {
            throw CheckpointError(file: file.path, field: "tokenizer.ggml.tokens", expected: "an array of strings", found: "nothing (key absent)")
        }
        func id(_ key: String) throws -> Int32? { try file.int(key).map { Int32(truncatingIfNeeded: $0) } }
        let vocabulary = TokenizerVocabulary(
            model: model, pre: try file.string("tokenizer.ggml.pre"), tokens: tokens,
            scores: try file.floatArray("tokenizer.ggml.scores"),
            tokenTypes: try file.intArray("tokenizer.ggml.token_type")?.map { Int32(truncatingIfNeeded: $0) },
            merges: try file.stringArray("tokenizer.ggml.merges"),
            bosID: try id("tokenizer.ggml.bos_token_id"), eosID: try id("tokenizer.ggml.eos_token_id"),
            unknownID: try id("tokenizer.ggml.unknown_token_id"), paddingID: try id("tokenizer.ggml.padding_token_id"),
            addBOS: try file.bool("tokenizer.ggml.add_bos_token") ?? false,
            addSpacePrefix: try file.bool("tokenizer.ggml.add_space_prefix") ?? true)
        do {
            return try makeTokenizer(vocabulary)
        } catch let error as TokenizerError {
            throw GenerationError("\(file.path): \(error)")
        }
    }
}
