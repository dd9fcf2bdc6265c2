import Foundation
import GrokTensor

/// Writes a Grok-2 GGUF (e.g. `grok synth --preset grok-2-tiny --dtype bf16`) in the layout of
/// xAI's release (grok-architecture.md §3.6), for tests and tools: the embedding in
/// `pytorch_model-00001-TP-common.safetensors` (as in the release), head and final norm in 00002,
/// then for every `layersPerFile` layers one common file with their attention, norms, router and
/// dense MLP and one file per rank with their experts' pieces: `w1`/`w3` rows and `w2` columns
/// split `ranks` ways. Bytes are copied unchanged (the GGUF's dtype, which must be F32, F16 or
/// BF16). Also `config.json` (§3.1 keys) and `tokenizer.tok.json` (§3.7) from the metadata.
public enum Grok2ReleaseWriter {
    /// Layers per group of files: small, so a tiny model still has several files per rank.
    public static let layersPerFile = 2

    public static func write(from file: GGUFFile, to directory: String, ranks: Int = 8) throws {
        precondition(ranks > 0, "Grok2ReleaseWriter.write: ranks must be at least 1")
        func failure(_ field: String, _ expected: String, _ found: String) -> CheckpointError {
            CheckpointError(file: file.path, field: field, expected: expected, found: found)
        }
        guard try file.string("general.architecture") == "grok", file.tensor("blk.0.ffn_gate.weight") != nil else {
            throw failure("general.architecture", "a Grok-2 GGUF (\"grok\" with a dense MLP, blk.0.ffn_gate.weight)", "another model")
        }
        guard let layers = try file.int("grok.block_count"), let experts = try file.int("grok.expert_count") else {
            throw failure("metadata \"grok.block_count\"", "grok.block_count and grok.expert_count", "nothing")
        }
        func tensor(_ name: String) throws -> GGUFTensorInfo {
            guard let info = file.tensor(name) else { throw failure("tensor \(quoted(name))", "a tensor of that name", "none") }
            guard info.dtype.safetensorsName != nil else { throw failure("tensor \(quoted(name)) dtype", "F32, F16 or BF16", info.dtype.name) }
            return info
        }
        let embedding = try tensor("token_embd.weight")
        let tokenizer = try TiktokenVocabulary(gguf: file)
        let configText = try GrokHFConfig.jsonText(from: file, vocabularySize: embedding.dims[1], dtype: try tensor("blk.0.attn_q.weight").dtype)

        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func output(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        func whole(_ writer: inout SafeTensorsWriter, _ gguf: String, _ hf: String) throws {
            let info = try tensor(gguf)
            writer.add(name: hf, dtype: info.dtype, shape: info.shape) { Array(file.data(of: info)) }
        }
        func writeCommon(_ number: Int, _ tensors: [(gguf: String, hf: String)]) throws {
            var writer = SafeTensorsWriter()
            writer.setMetadata("format", "pt")
            for t in tensors { try whole(&writer, t.gguf, t.hf) }
            try writer.write(to: output(Grok2ReleaseLayout.commonFile(number)))
        }

        let global = Grok2ReleaseLayout.global.map { ($0.gguf, $0.hf) }
        try writeCommon(1, [global[0]])
        try writeCommon(2, Array(global.dropFirst()))
        var number = 3
        for first in stride(from: 0, to: layers, by: layersPerFile) {
            let group = first..<min(first + layersPerFile, layers)
            try writeCommon(number, group.flatMap { l in
                Grok2ReleaseLayout.layer.map { (Grok2ReleaseLayout.gguf(layer: l, $0.gguf), Grok2ReleaseLayout.hf(layer: l, $0.hf)) }
            })
            for rank in 0..<ranks {
                var writer = SafeTensorsWriter()
                writer.setMetadata("format", "pt")
                for l in group {
                    for t in Grok2ReleaseLayout.experts {
                        let info = try tensor(Grok2ReleaseLayout.gguf(layer: l, t.gguf))
                        for e in 0..<experts {
                            try addPiece(of: info, in: file, expert: e, rank: rank, of: ranks, axis: t.splitAxis,
                                         as: Grok2ReleaseLayout.hf(layer: l, expert: e, t.hf), to: &writer)
                        }
                    }
                }
                try writer.write(to: output(Grok2ReleaseLayout.rankFile(number + 1, rank: rank)))
            }
            number += 2
        }
        try Data(configText.utf8).write(to: URL(fileURLWithPath: output("config.json")))
        try Data(tokenizer.jsonText().utf8).write(to: URL(fileURLWithPath: output("tokenizer.tok.json")))
    }

    /// Rank `rank`'s piece of expert `expert` of the 3-D `info` (`[out, in]` per expert): rows
    /// (axis 0) or columns (axis 1) `rank·n/ranks ..< (rank+1)·n/ranks`.
    private static func addPiece(of info: GGUFTensorInfo, in file: GGUFFile, expert: Int, rank: Int, of ranks: Int, axis: Int,
                                 as name: String, to writer: inout SafeTensorsWriter) throws {
        let rows = info.dims[1], columns = info.dims[0], dtype = info.dtype
        let n = axis == 0 ? rows : columns
        guard n % ranks == 0 else {
            throw CheckpointError(file: file.path, field: "tensor \(quoted(info.name)) dims", expected: "a split dimension divisible by \(ranks) ranks", found: "\(info.dims)")
        }
        let part = n / ranks
        let shape = axis == 0 ? [part, columns] : [rows, part]
        writer.add(name: name, dtype: dtype, shape: shape) {
            let matrix = file.data(of: info).baseAddress! + expert * rows * dtype.rowBytes(columns)
            let rowBytes = dtype.rowBytes(columns), pieceRow = dtype.rowBytes(shape[1])
            let start = axis == 0 ? matrix + rank * part * rowBytes : matrix + dtype.rowBytes(rank * part)
            var bytes = [UInt8](repeating: 0, count: shape[0] * pieceRow)
            bytes.withUnsafeMutableBytes { out in
                for r in 0..<shape[0] { (out.baseAddress! + r * pieceRow).copyMemory(from: start + r * rowBytes, byteCount: pieceRow) }
            }
            return bytes
        }
    }
}
