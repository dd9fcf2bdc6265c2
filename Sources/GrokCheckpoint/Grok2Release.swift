import Foundation
import GrokTensor

/// xAI's Grok-2 release directory (grok-architecture.md §3.6) as a ``TensorSource`` with
/// llama.cpp's GGUF names and dims (§5.3): `*-TP-common.safetensors` files hold every tensor but
/// the experts' whole; `*-TP-RRR.safetensors` files (one or more per rank, ranks 0..<R
/// consecutive) hold each expert's `w1`/`w3` rows and `w2` columns split R ways, presented as the
/// 3-D `ffn_{gate,up,down}_exps` tensors (a merged release, experts whole in common files and no
/// rank files, is read too). Also reads `config.json` and `tokenizer.tok.json`.
///
/// `block` returns rows inside one file as zero-copy views of the mapping; a block that spans
/// files (an expert's down-projection columns of several ranks, gate rows of several ranks) or
/// cuts columns is copied into memory this source owns, and the rows read are dropped from
/// resident memory. Tensors keep the dtype they are stored in (BF16 in the release; F16 and F32
/// too). `GGUFTensorInfo.offset` is 0: the tensors are assembled, not stored in one data section.
public final class Grok2Release: TensorSource {
    /// The release directory.
    public let path: String
    /// config.json's keys as `grok.*`, the structural keys `ModelConfig(gguf:)` reads from a
    /// metadata-only file, and tokenizer.tok.json as `tokenizer.ggml.*` (no tensors).
    public let metadataFile: GGUFFile
    public let config: GrokHFConfig
    /// How many TP rank file groups split the experts (8 in the release).
    public let rankCount: Int
    /// Every safetensors file, common files first.
    public let files: [SafeTensorsFile]

    private let tensors: AssembledTensors

    /// Opens the release in `directory`. The metadata GGUF is written under `temporaryDirectory`
    /// and unlinked once mapped.
    public init(directory: String, temporaryDirectory: String = NSTemporaryDirectory()) throws {
        path = directory
        func inside(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        let names = try Self.listing(directory)
        config = try GrokHFConfig(path: inside("config.json"))
        guard config.isGrok2 else {
            throw CheckpointError(file: config.path, field: "moe_intermediate_size", expected: "an integer (a Grok-2 config, §3.1)", found: "nothing (key absent)")
        }
        let vocabulary = try TiktokenVocabulary(path: inside("tokenizer.tok.json"))

        let commons = names.filter { $0.hasSuffix(Grok2ReleaseLayout.commonSuffix) }
        guard !commons.isEmpty else {
            throw CheckpointError(file: directory, field: "files", expected: "pytorch_model-NNNNN-TP-common.safetensors files (§3.6)", found: "none")
        }
        var byRank: [Int: [String]] = [:]
        for name in names where !name.hasSuffix(Grok2ReleaseLayout.commonSuffix) && name.hasSuffix(".safetensors") {
            guard let rank = Grok2ReleaseLayout.rank(ofFile: name) else {
                throw CheckpointError(file: directory, field: "file \(quoted(name))", expected: "*-TP-common.safetensors or *-TP-NNN.safetensors", found: "another name")
            }
            byRank[rank, default: []].append(name)
        }
        guard byRank.keys.sorted() == Array(0..<byRank.count) else {
            throw CheckpointError(file: directory, field: "TP rank files", expected: "ranks 000 to \(byRank.count - 1) with none missing",
                                  found: "ranks \(byRank.keys.sorted())")
        }
        rankCount = byRank.count
        func open(_ name: String) throws -> SafeTensorsFile { try SafeTensorsFile(path: inside(name)) }
        let commonFiles = try commons.map(open)
        let rankFiles = try (0..<rankCount).map { try byRank[$0]!.map(open) }
        files = commonFiles + rankFiles.flatMap { $0 }

        var index = try TensorIndex(common: commonFiles, ranks: rankFiles, directory: directory, commonFiles: "a *-TP-common.safetensors file")
        tensors = AssembledTensors(try index.assemble(Grok2ReleaseLayout.tensors, config: config), files: files)
        try index.checkAllUsed()

        var writer = GGUFWriter()
        for (key, value) in config.ggufMetadata { writer.set(key, value) }
        writer.set("general.name", .string((directory as NSString).lastPathComponent))
        writer.set(MetadataOnlyKeys.vocabulary, .uint32(UInt32(config.vocabularySize)))
        writer.set(MetadataOnlyKeys.denseMLP, .bool(true))
        writer.set(MetadataOnlyKeys.tiedEmbeddings, .bool(false))   // lm_head is separate (§3.1)
        for (key, value) in try vocabulary.ggufMetadata(tokenCount: config.vocabularySize, file: inside("tokenizer.tok.json")) {
            writer.set(key, value)
        }
        metadataFile = try writer.writeAndMapTemporary(in: temporaryDirectory, prefix: "grok2-release")
    }

    private static func listing(_ directory: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        } catch {
            throw CheckpointError(file: directory, field: "directory", expected: "a readable Grok-2 release directory", found: "\(error.localizedDescription)")
        }
    }

    // MARK: - TensorSource

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensors.tensor(name) }

    public func block(_ name: String, expert: Int?, rows: Range<Int>, columns: Range<Int>) throws -> UnsafeRawBufferPointer {
        let (info, _, _) = try checkedLayout(name, expert: expert, rows: rows, columns: columns)
        return tensors.block(info, expert: expert, rows: rows, columns: columns)
    }

    public func release(_ bytes: UnsafeRawBufferPointer) { tensors.release(bytes) }
}
