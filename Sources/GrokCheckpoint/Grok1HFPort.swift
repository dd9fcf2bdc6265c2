import Foundation
import GrokTensor

/// Where each GGUF tensor of Grok-1 lives in a Hugging Face port in keyfan/grok-1-hf's layout:
/// its `convert_hf.py` names the JAX parameters by their paths (`/` → `.`, `language_model` →
/// `transformer`, `.weight` appended), unstacks the experts into `moe.E`, dequantizes and
/// transposes every matrix to `[out, in]` except the embedding (already `[V, d]`). The GGUF
/// names are llama.cpp's (grok-architecture.md §5.3; LC-conv maps `linear` → gate, `linear_v` →
/// up, `linear_1` → down).
enum Grok1HFPortLayout {
    typealias Common = CheckpointLayout.Common
    typealias Expert = CheckpointLayout.Expert

    static let tensors = CheckpointLayout(
        global: [Common(gguf: "token_embd.weight", hf: "transformer.in_out_embed.weight", shape: [.vocabulary, .width]),
                 Common(gguf: "output_norm.weight", hf: "transformer.rms_norm.weight", shape: [.width])],
        layer: [Common(gguf: "attn_norm.weight", hf: "rms_norm.weight", shape: [.width]),
                Common(gguf: "attn_q.weight", hf: "multi_head_attention.query.weight", shape: [.queryWidth, .width]),
                Common(gguf: "attn_k.weight", hf: "multi_head_attention.key.weight", shape: [.kvWidth, .width]),
                Common(gguf: "attn_v.weight", hf: "multi_head_attention.value.weight", shape: [.kvWidth, .width]),
                Common(gguf: "attn_output.weight", hf: "multi_head_attention.linear.weight", shape: [.width, .queryWidth]),
                Common(gguf: "attn_output_norm.weight", hf: "rms_norm_1.weight", shape: [.width]),
                Common(gguf: "ffn_norm.weight", hf: "rms_norm_2.weight", shape: [.width]),
                Common(gguf: "ffn_gate_inp.weight", hf: "router.weight", shape: [.experts, .width]),
                Common(gguf: "layer_output_norm.weight", hf: "rms_norm_3.weight", shape: [.width])],
        experts: [Expert(gguf: "ffn_gate_exps.weight", hf: "linear", splitAxis: 0),
                  Expert(gguf: "ffn_up_exps.weight", hf: "linear_v", splitAxis: 0),
                  Expert(gguf: "ffn_down_exps.weight", hf: "linear_1", splitAxis: 1)],
        hfLayer: { "transformer.decoder_layer.\($0).\($1)" },
        hfExpert: { "transformer.decoder_layer.\($0).moe.\($1).\($2).weight" })

    /// The port's output head, tied to the embedding (`_tied_weights_keys`); a saved copy is ignored.
    static let tiedHead = "lm_head.weight"

    /// `model-00001-of-00003.safetensors`, as `save_pretrained` names shards.
    static func file(_ number: Int, of count: Int) -> String {
        func digits(_ n: Int) -> String { String(repeating: "0", count: max(0, 5 - String(n).count)) + String(n) }
        return "model-\(digits(number))-of-\(digits(count)).safetensors"
    }
}

/// A Hugging Face port of Grok-1 (keyfan/grok-1-hf layout, see `Grok1HFPortLayout`) as a
/// ``TensorSource``: every `*.safetensors` file of the directory, `config.json` (no
/// `moe_intermediate_size`: the experts' width is `intermediate_size`) and, when present, the
/// SentencePiece `tokenizer.model`. Experts are stored whole, so every block of whole rows is a
/// zero-copy view; column slices are copies. Tensors keep their stored dtype.
public final class Grok1HFPort: TensorSource {
    public let path: String
    /// config.json as `grok.*` keys, the structural keys of a metadata-only file (no dense MLP,
    /// tied head) and the tokenizer as `tokenizer.ggml.*` when the port has one.
    public let metadataFile: GGUFFile
    public let config: GrokHFConfig
    public let files: [SafeTensorsFile]
    private let tensors: AssembledTensors

    public init(directory: String, temporaryDirectory: String = NSTemporaryDirectory()) throws {
        path = directory
        func inside(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        config = try GrokHFConfig(path: inside("config.json"))
        guard !config.isGrok2 else {
            throw CheckpointError(file: config.path, field: "moe_intermediate_size", expected: "absent (a Grok-1 port; this is Grok-2's key)", found: "present")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".safetensors") }.sorted()
        } catch {
            throw CheckpointError(file: directory, field: "directory", expected: "a readable Grok-1 port directory", found: error.localizedDescription)
        }
        guard !names.isEmpty else { throw CheckpointError(file: directory, field: "files", expected: "*.safetensors files", found: "none") }
        files = try names.map { try SafeTensorsFile(path: inside($0)) }

        var index = try TensorIndex(common: files, ranks: [], directory: directory, commonFiles: "a .safetensors file")
        if index.hasCommon(Grok1HFPortLayout.tiedHead) { index.skip(Grok1HFPortLayout.tiedHead) }
        tensors = AssembledTensors(try index.assemble(Grok1HFPortLayout.tensors, config: config), files: files)
        try index.checkAllUsed()

        var writer = GGUFWriter()
        for (key, value) in config.ggufMetadata { writer.set(key, value) }
        writer.set("general.name", .string((directory as NSString).lastPathComponent))
        writer.set(MetadataOnlyKeys.vocabulary, .uint32(UInt32(config.vocabularySize)))
        writer.set(MetadataOnlyKeys.denseMLP, .bool(false))
        writer.set(MetadataOnlyKeys.tiedEmbeddings, .bool(true))
        if FileManager.default.fileExists(atPath: inside("tokenizer.model")) {
            for (key, value) in try SentencePieceModel(path: inside("tokenizer.model")).ggufMetadata { writer.set(key, value) }
        }
        metadataFile = try writer.writeAndMapTemporary(in: temporaryDirectory, prefix: "grok1-port")
    }

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensors.tensor(name) }

    public func block(_ name: String, expert: Int?, rows: Range<Int>, columns: Range<Int>) throws -> UnsafeRawBufferPointer {
        let (info, _, _) = try checkedLayout(name, expert: expert, rows: rows, columns: columns)
        return tensors.block(info, expert: expert, rows: rows, columns: columns)
    }

    public func release(_ bytes: UnsafeRawBufferPointer) { tensors.release(bytes) }
}

/// Writes a Grok-1 GGUF (F32, F16 or BF16) as a Hugging Face port in keyfan/grok-1-hf's layout,
/// for tests and tools: the embedding and final norm in the first file, then `layersPerFile`
/// layers per file with every expert unstacked; `config.json`; and `tokenizer.model` when the
/// GGUF has a SentencePiece vocabulary. Bytes are copied unchanged.
public enum Grok1HFPortWriter {
    public static let layersPerFile = 2

    public static func write(from file: GGUFFile, to directory: String) throws {
        guard try file.string("general.architecture") == "grok", file.tensor("blk.0.ffn_gate.weight") == nil,
              let layers = try file.int("grok.block_count"), let experts = try file.int("grok.expert_count") else {
            throw CheckpointError(file: file.path, field: "general.architecture", expected: "a Grok-1 GGUF (\"grok\", no dense MLP, block and expert counts)", found: "another model")
        }
        func tensor(_ name: String) throws -> GGUFTensorInfo {
            guard let info = file.tensor(name) else { throw CheckpointError(file: file.path, field: "tensor \(quoted(name))", expected: "a tensor of that name", found: "none") }
            guard info.dtype.safetensorsName != nil else {
                throw CheckpointError(file: file.path, field: "tensor \(quoted(name)) dtype", expected: "F32, F16 or BF16", found: info.dtype.name)
            }
            return info
        }
        let layout = Grok1HFPortLayout.tensors
        let embedding = try tensor("token_embd.weight")
        let configText = try GrokHFConfig.jsonText(from: file, vocabularySize: embedding.dims[1], dtype: try tensor("blk.0.attn_q.weight").dtype)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func inside(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

        let groups = stride(from: 0, to: layers, by: layersPerFile).map { $0..<min($0 + layersPerFile, layers) }
        func add(_ writer: inout SafeTensorsWriter, _ gguf: String, _ hf: String, expert: Int? = nil) throws {
            let info = try tensor(gguf)
            let rows = info.dims.count > 1 ? info.dims[1] : 1
            let shape = info.dims.count == 1 ? info.shape : [rows, info.dims[0]]
            writer.add(name: hf, dtype: info.dtype, shape: shape) {
                Array(try! file.block(gguf, expert: expert, rows: 0..<rows, columns: 0..<info.dims[0]))
            }
        }
        var first = SafeTensorsWriter()
        first.setMetadata("format", "pt")
        for t in layout.global { try add(&first, t.gguf, t.hf) }
        try first.write(to: inside(Grok1HFPortLayout.file(1, of: groups.count + 1)))
        for (g, group) in groups.enumerated() {
            var writer = SafeTensorsWriter()
            writer.setMetadata("format", "pt")
            for l in group {
                for t in layout.layer { try add(&writer, CheckpointLayout.gguf(layer: l, t.gguf), layout.hfLayer(l, t.hf)) }
                for t in layout.experts {
                    for e in 0..<experts { try add(&writer, CheckpointLayout.gguf(layer: l, t.gguf), layout.hfExpert(l, e, t.hf), expert: e) }
                }
            }
            try writer.write(to: inside(Grok1HFPortLayout.file(g + 2, of: groups.count + 1)))
        }
        try Data(configText.utf8).write(to: URL(fileURLWithPath: inside("config.json")))
        if let tokenizer = try SentencePieceModel(gguf: file) {
            try Data(tokenizer.serialized).write(to: URL(fileURLWithPath: inside("tokenizer.model")))
        }
    }
}
