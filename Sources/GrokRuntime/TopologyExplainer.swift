import Foundation
import GrokCheckpoint
import GrokModel
import GrokTensor
import GrokTopology

// MARK: - Bytes a rank holds

/// Bytes of the weights one rank holds under a plan, by kind: exactly the bytes of the slices the
/// plan names (rows of Q/K/V for its heads, the matching columns of attn_output, its experts or
/// expert slices, its dense-MLP slice, its vocabulary rows) plus norms and router in full.
public struct ShardBytes: Sendable, Equatable, Codable {
    /// attn_q/k/v rows of the rank's heads and the matching attn_output columns.
    public var attention = 0
    /// ffn_gate_exps/ffn_up_exps rows and ffn_down_exps columns of the held experts (or slices).
    public var experts = 0
    /// Grok-2's dense MLP: ffn_gate/ffn_up rows and ffn_down columns of `denseColumns`.
    public var dense = 0
    /// token_embd rows (first stage). When the head is tied (Grok-1), rows the output head also
    /// uses are counted here once.
    public var embedding = 0
    /// Output-head rows (last stage): output.weight, or token_embd rows the embedding does not
    /// already count when tied.
    public var output = 0
    /// ffn_gate_inp of every layer held, whole.
    public var router = 0
    /// Layer norms of every layer held, whole; output_norm on the last stage.
    public var norms = 0

    public init() {}

    public var total: Int { attention + experts + dense + embedding + output + router + norms }

    /// The bytes `plan` holds of a model whose tensor dtypes `dtypeOf` gives (by GGUF name).
    /// Throws when a column slice of a quantized tensor does not fall on its blocks.
    public static func perRank(config c: ModelConfig, plan: RankPlan,
                               dtypeOf: (String) throws -> DType) throws -> ShardBytes {
        let d = c.modelWidth, hd = c.headDim
        var b = ShardBytes()
        /// `count` rows of `width` elements, whose first element is column `start` of the tensor.
        func rows(_ name: String, _ count: Int, width: Int, start: Int = 0) throws -> Int {
            guard count > 0 && width > 0 else { return 0 }
            let t = try dtypeOf(name)
            if width % t.blockSize != 0 || start % t.blockSize != 0 {
                throw ShardBytesError(description: "rank \(plan.rank) holds columns \(Topology.span(start ..< start + width)) of \(name), which is \(t.name): a slice must start and end on its blocks of \(t.blockSize)")
            }
            return count * t.rowBytes(width)
        }
        for l in plan.layers {
            let p = "blk.\(l)."
            let postNorm = p + (c.architecture == .grok1 ? Grok1.postFeedForwardNorm : Grok2.postFeedForwardNorm) + ".weight"
            for norm in [p + "attn_norm.weight", p + "attn_output_norm.weight", p + "ffn_norm.weight", postNorm] {
                b.norms += try rows(norm, 1, width: d)
            }
            let q = plan.queryHeads, kv = plan.kvHeads
            b.attention += try rows(p + "attn_q.weight", q.count * hd, width: d)
            b.attention += try rows(p + "attn_k.weight", kv.count * hd, width: d)
            b.attention += try rows(p + "attn_v.weight", kv.count * hd, width: d)
            b.attention += try rows(p + "attn_output.weight", d, width: q.count * hd, start: q.lowerBound * hd)
            b.router += try rows(p + "ffn_gate_inp.weight", c.expertCount, width: d)
            let held = plan.experts[l]?.count ?? 0, f = plan.expertColumns
            b.experts += try rows(p + "ffn_gate_exps.weight", held * f.count, width: d)
            b.experts += try rows(p + "ffn_up_exps.weight", held * f.count, width: d)
            b.experts += try rows(p + "ffn_down_exps.weight", held * d, width: f.count, start: f.lowerBound)
            if c.denseFFNWidth > 0 {
                let g = plan.denseColumns
                b.dense += try rows(p + "ffn_gate.weight", g.count, width: d)
                b.dense += try rows(p + "ffn_up.weight", g.count, width: d)
                b.dense += try rows(p + "ffn_down.weight", d, width: g.count, start: g.lowerBound)
            }
        }
        if plan.isLastStage { b.norms += try rows("output_norm.weight", 1, width: d) }
        b.embedding = try rows("token_embd.weight", plan.embeddingRows.count, width: d)
        if c.tiedEmbeddings {
            let e = plan.embeddingRows, o = plan.outputRows
            let overlap = max(0, min(e.upperBound, o.upperBound) - max(e.lowerBound, o.lowerBound))
            b.output = try rows("token_embd.weight", o.count - overlap, width: d)
        } else {
            b.output = try rows("output.weight", plan.outputRows.count, width: d)
        }
        return b
    }

    /// Every tensor a model of `config` has: GGUF name and ggml dims (fastest-varying first), as
    /// llama.cpp's converter writes them.
    public static func tensors(of c: ModelConfig) -> [(name: String, dims: [Int])] {
        let d = c.modelWidth, V = c.vocabularySize, E = c.expertCount, F = c.expertFFNWidth
        var out: [(name: String, dims: [Int])] = [("token_embd.weight", [d, V]), ("output_norm.weight", [d])]
        if !c.tiedEmbeddings { out.append(("output.weight", [d, V])) }
        let postNorm = c.architecture == .grok1 ? Grok1.postFeedForwardNorm : Grok2.postFeedForwardNorm
        for l in 0..<c.layerCount {
            let p = "blk.\(l)."
            out += [(p + "attn_norm.weight", [d]), (p + "attn_q.weight", [d, c.queryWidth]),
                    (p + "attn_k.weight", [d, c.kvWidth]), (p + "attn_v.weight", [d, c.kvWidth]),
                    (p + "attn_output.weight", [c.queryWidth, d]), (p + "attn_output_norm.weight", [d]),
                    (p + "ffn_norm.weight", [d]), (p + "ffn_gate_inp.weight", [d, E]),
                    (p + "ffn_gate_exps.weight", [d, F, E]), (p + "ffn_up_exps.weight", [d, F, E]),
                    (p + "ffn_down_exps.weight", [F, d, E])]
            if c.denseFFNWidth > 0 {
                out += [(p + "ffn_gate.weight", [d, c.denseFFNWidth]), (p + "ffn_up.weight", [d, c.denseFFNWidth]),
                        (p + "ffn_down.weight", [c.denseFFNWidth, d])]
            }
            out.append((p + postNorm + ".weight", [d]))
        }
        return out
    }

    /// Bytes of one copy of every tensor of the model.
    public static func model(config: ModelConfig, dtypeOf: (String) throws -> DType) throws -> Int {
        try tensors(of: config).reduce(0) { sum, t in
            try sum + dtypeOf(t.name).rowBytes(t.dims[0]) * t.dims.dropFirst().reduce(1, *)
        }
    }
}

/// A plan whose slice of a quantized tensor cuts through its blocks.
public struct ShardBytesError: Error, CustomStringConvertible {
    public let description: String
}

// MARK: - grok topology explain

/// `grok topology explain`: validates a topology against a model (a GGUF file or a preset) and
/// describes what every rank holds, with the bytes of its weights.
public enum TopologyExplainer {
    /// The model a topology is explained for: its configuration and each tensor's dtype.
    public struct Model: Sendable {
        public var name: String
        /// "file" or "preset".
        public var origin: String
        public var config: ModelConfig
        public var dtypes: [String: DType]

        public init(name: String, origin: String, config: ModelConfig, dtypes: [String: DType]) {
            self.name = name
            self.origin = origin
            self.config = config
            self.dtypes = dtypes
        }

        public func dtype(of tensor: String) throws -> DType {
            guard let t = dtypes[tensor] else { throw ExplainError(description: "\(name): no tensor \"\(tensor)\"") }
            return t
        }

        /// A preset with matrices in `matrixType` and norms and router in F32 (as `grok synth` writes).
        public static func preset(_ name: String, config: ModelConfig, matrixType: DType) throws -> Model {
            let c = config
            for (what, width) in [("model width", c.modelWidth), ("expert width", c.expertFFNWidth),
                                  ("dense MLP width", c.denseFFNWidth), ("query width", c.queryWidth), ("KV width", c.kvWidth)]
                where width % matrixType.blockSize != 0 {
                throw ExplainError(description: "--dtype: \(matrixType.name) stores rows in blocks of \(matrixType.blockSize), but \(name)'s \(what) is \(width)")
            }
            var dtypes: [String: DType] = [:]
            for t in ShardBytes.tensors(of: c) {
                dtypes[t.name] = t.dims.count == 1 || t.name.hasSuffix("ffn_gate_inp.weight") ? .f32 : matrixType
            }
            return Model(name: name, origin: "preset", config: c, dtypes: dtypes)
        }

        /// A GGUF file: its configuration, and every tensor the configuration implies, checked
        /// for presence and dims.
        public static func file(_ path: String) throws -> Model {
            let file = try GGUFFile(path: path)
            let c = try ModelConfig(gguf: file)
            var dtypes: [String: DType] = [:]
            for t in ShardBytes.tensors(of: c) { dtypes[t.name] = try file.require(t.name, dims: t.dims).dtype }
            return Model(name: path, origin: "file", config: c, dtypes: dtypes)
        }
    }

    /// The presets' matrix dtype when `--dtype` is not given: Q8_0 for the real models, F32 for
    /// the small test shapes.
    public static func defaultDType(preset: String) -> DType {
        preset == "grok-1" || preset == "grok-2" ? .q8_0 : .f32
    }

    /// `--model` as a GGUF path (when such a file exists) or a preset name; `dtype` only for presets.
    public static func model(_ argument: String, dtype: DType?) throws -> Model {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory), !isDirectory.boolValue {
            if let dtype {
                throw ExplainError(description: "--dtype \(dtype.name.lowercased()): only for presets; the tensors of \(argument) have their own dtypes")
            }
            return try .file(argument)
        }
        if argument == "embedded" {   // grok-coordinator's default model: F32, synthesized in memory
            return try .preset(argument, config: ModelSource.embeddedConfig, matrixType: dtype ?? .f32)
        }
        guard let config = ModelConfig.preset(argument) else {
            throw ExplainError(description: "--model: \"\(argument)\" is neither a file nor a preset (\(ModelConfig.presets.keys.sorted().joined(separator: ", ")), or embedded)")
        }
        return try .preset(argument, config: config, matrixType: dtype ?? defaultDType(preset: argument))
    }

    /// Validates `topology` against `model` (no world size: any `mpirun -np` equal to the file's)
    /// and derives every rank's plan and bytes.
    public static func explain(_ topology: Topology, model: Model) throws -> TopologyExplanation {
        let c = model.config, shape = c.shape
        try topology.validate(shape: shape, worldSize: nil)
        let plans = topology.plans(shape: shape)
        let stagePlans = plans.first?.stages ?? []

        var ranks: [TopologyExplanation.RankInfo] = []
        for plan in plans {
            let bytes: ShardBytes
            do {
                bytes = try ShardBytes.perRank(config: c, plan: plan, dtypeOf: model.dtype(of:))
            } catch let e as ShardBytesError {
                throw TopologyError(source: topology.source, message: e.description)
            }
            let stage = plan.stagePlan
            var experts: [String: [Int]] = [:], replicated: [String: [Int]] = [:]
            for l in plan.layers {
                experts["\(l)"] = plan.experts[l] ?? []
                if stage.expertMode == .parallel {
                    let shared = (plan.experts[l] ?? []).filter { stage.placement[l]![$0].count > 1 }
                    if !shared.isEmpty { replicated["\(l)"] = shared }
                }
            }
            ranks.append(.init(
                rank: plan.rank, stage: plan.stage, stageRank: stage.ranks.firstIndex(of: plan.rank)!,
                layers: .init(plan.layers), queryHeads: .init(plan.queryHeads), kvHeads: .init(plan.kvHeads),
                denseColumns: .init(plan.denseColumns), experts: experts, replicatedExperts: replicated,
                expertColumns: .init(plan.expertColumns), embeddingRows: .init(plan.embeddingRows),
                outputRows: .init(plan.outputRows), bytes: bytes, totalBytes: bytes.total,
                kvCacheBytesPerToken: plan.layers.count * 2 * plan.kvHeads.count * c.headDim * MemoryLayout<Float>.size))
        }

        let stages = stagePlans.map { s -> TopologyExplanation.StageInfo in
            let T = s.tensorParallelSize, Hkv = c.kvHeads
            let written = topology.stages[s.index].experts
            var placement: String
            switch s.expertMode {
            case .slice:
                placement = "over \(s.ranks.count) ranks, \(c.expertFFNWidth / s.ranks.count) of the \(c.expertFFNWidth) columns of every expert each"
            case .parallel:
                if s.ranks.count == 1 {
                    placement = "all \(c.expertCount) experts on the one rank"
                } else if written.placement != nil {
                    placement = "explicit placement"
                } else {
                    placement = written.rule.rawValue
                }
                let overridden = written.layerPlacements.keys.sorted()
                if !overridden.isEmpty { placement += ", layer\(overridden.count == 1 ? "" : "s") \(Topology.list(overridden)) overridden" }
                let copies = s.layers.flatMap { l in s.placement[l]!.map(\.count) }
                let extra = copies.reduce(0, +) - copies.count
                if extra > 0 { placement += ", \(extra) replica\(extra == 1 ? "" : "s")" }
            }
            return .init(index: s.index, layers: .init(s.layers), ranks: s.ranks, tensorParallelSize: T,
                         kvHeadsPerRank: max(1, Hkv / T), kvReplication: T > Hkv ? T / Hkv : 1,
                         expertMode: s.expertMode, expertPlacement: placement)
        }

        let totals = ranks.map(\.totalBytes)
        let busiest = ranks.max { $0.totalBytes < $1.totalBytes }!
        var dtypeCounts: [String: Int] = [:]
        for t in model.dtypes.values { dtypeCounts[t.name, default: 0] += 1 }
        let modelBytes = try ShardBytes.model(config: c, dtypeOf: model.dtype(of:))
        return TopologyExplanation(
            topology: topology.source, description: topology.description, writtenFor: topology.model,
            worldSize: topology.worldSize, microBatches: topology.effectiveMicroBatches,
            model: .init(name: model.name, origin: model.origin, architecture: c.architecture.rawValue,
                         layers: c.layerCount, width: c.modelWidth, queryHeads: c.queryHeads, kvHeads: c.kvHeads,
                         headDim: c.headDim, experts: c.expertCount, expertWidth: c.expertFFNWidth,
                         denseWidth: c.denseFFNWidth, vocabulary: c.vocabularySize, tiedEmbeddings: c.tiedEmbeddings,
                         tensorsByDType: dtypeCounts, bytes: modelBytes),
            stages: stages, ranks: ranks,
            totals: .init(bytes: totals.reduce(0, +), maxBytes: busiest.totalBytes, maxRank: busiest.rank,
                          meanBytes: Double(totals.reduce(0, +)) / Double(totals.count), minBytes: totals.min()!,
                          modelBytes: modelBytes, maxKVCacheBytesPerToken: ranks.map(\.kvCacheBytesPerToken).max()!))
    }

    /// The explanation as pretty-printed JSON (ranges as half-open `[start, end]` pairs).
    public static func json(_ e: TopologyExplanation) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(e), as: UTF8.self) + "\n"
    }

    /// The explanation as text: layout, stages, a table per rank, bytes by kind, totals.
    public static func text(_ e: TopologyExplanation) -> String {
        let m = e.model
        var out = "topology \(e.topology)\n"
        if !e.description.isEmpty { out += wrap(e.description, indent: "  ", width: 100) }
        if let hint = e.writtenFor { out += "  written for: \(hint)\(hint == m.name ? "" : " (explained here for \(m.name))")\n" }
        let types = m.tensorsByDType.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        out += "\nmodel \(m.name) (\(m.origin)): \(m.architecture), \(m.layers) layers, width \(m.width), "
        out += "heads \(m.queryHeads) query / \(m.kvHeads) KV × \(m.headDim), \(m.experts) experts × \(m.expertWidth)"
        out += m.denseWidth > 0 ? ", dense MLP \(m.denseWidth)" : ""
        out += ", vocabulary \(m.vocabulary)\(m.tiedEmbeddings ? " (tied head)" : "")\n"
        out += "  tensors: \(types); \(bytes(m.bytes)) of weights\n"

        out += "\n\(e.worldSize) rank\(e.worldSize == 1 ? "" : "s") in \(e.stages.count) stage\(e.stages.count == 1 ? "" : "s")"
        out += e.stages.count > 1 ? ", \(e.microBatches) micro-batch\(e.microBatches == 1 ? "" : "es")\n" : "\n"
        out += table(["stage", "layers", "ranks", "TP", "KV heads per rank", "experts"], e.stages.map { s in
            [ "\(s.index)", s.layers.text, Topology.list(s.ranks),
              s.tensorParallelSize == 1 && s.ranks.count > 1 ? "1 (attention replicated)" : "\(s.tensorParallelSize)",
              s.kvReplication > 1 ? "1, each KV head on \(s.kvReplication) ranks" : "\(s.kvHeadsPerRank)",
              "\(s.expertMode.rawValue): \(s.expertPlacement)"]
        })

        let unit = Unit(for: e.totals.maxBytes)
        let anyReplica = e.ranks.contains { !$0.replicatedExperts.isEmpty }
        out += "\nranks\n"
        out += table(["rank", "stage", "layers", "q heads", "kv heads", "dense cols", "experts", "expert cols",
                      "embedding rows", "output rows", "weights \(unit.name)", "KV cache/token"],
                     e.ranks.map { r in
            [ "\(r.rank)", "\(r.stage)", r.layers.text, r.queryHeads.text, r.kvHeads.text,
              m.denseWidth == 0 ? "-" : r.denseColumns.count == m.denseWidth ? "all" : r.denseColumns.text, expertSummary(r),
              r.expertColumns.count == m.expertWidth ? "all" : r.expertColumns.text,
              r.embeddingRows.text, r.outputRows.text, unit.format(r.totalBytes), bytes(r.kvCacheBytesPerToken)]
        }, rightAligned: [10])
        if anyReplica { out += "  * replicated: another rank of the stage holds the same expert of that layer\n" }

        out += "\nbytes by kind (\(unit.name))\n"
        out += table(["rank", "attention", "experts", "dense", "embedding", "output", "router", "norms", "total"],
                     e.ranks.map { r in
            let b = r.bytes
            return ["\(r.rank)"] + [b.attention, b.experts, b.dense, b.embedding, b.output, b.router, b.norms, b.total].map(unit.format)
        }, rightAligned: Set(1...8))

        let t = e.totals
        out += "\nweights: \(bytes(t.bytes, decimal: true)) over \(e.worldSize) rank\(e.worldSize == 1 ? "" : "s"), "
        out += String(format: "%.3f", Double(t.bytes) / Double(t.modelBytes))
        out += "× one copy of the model (\(bytes(t.modelBytes, decimal: true)); what several ranks hold counts on each)\n"
        out += "busiest rank \(t.maxRank): \(bytes(t.maxBytes)); mean \(bytes(Int(t.meanBytes.rounded()))); least \(bytes(t.minBytes))\n"
        out += "KV cache (f32): \(bytes(t.maxKVCacheBytesPerToken)) per token of context per sequence on the busiest rank\n"
        return out
    }

    /// Held experts, compact: `e0-3 (all layers)` when every layer of the stage holds the same,
    /// else per layer `L0 e0-1 | L1 e2-3`; `*` marks replicated experts.
    static func expertSummary(_ r: TopologyExplanation.RankInfo) -> String {
        func ids(_ layer: String) -> String {
            let held = r.experts[layer] ?? [], shared = Set(r.replicatedExperts[layer] ?? [])
            if held.isEmpty { return "none" }
            var parts: [String] = []
            var k = 0
            while k < held.count {
                var j = k
                while j + 1 < held.count && held[j + 1] == held[j] + 1 && shared.contains(held[j + 1]) == shared.contains(held[k]) { j += 1 }
                let mark = shared.contains(held[k]) ? "*" : ""
                parts.append(j == k ? "\(held[k])\(mark)" : "\(held[k])-\(held[j])\(mark)")
                k = j + 1
            }
            return "e" + parts.joined(separator: ",")
        }
        let layers = Array(r.layers.start ..< r.layers.end)
        let perLayer = layers.map { ids("\($0)") }
        if Set(perLayer).count <= 1 { return (perLayer.first ?? "none") + (layers.count > 1 ? " (all layers)" : "") }
        return zip(layers, perLayer).map { "L\($0) \($1)" }.joined(separator: " | ")
    }

    /// One unit for a whole column of byte counts.
    struct Unit {
        let name: String
        let scale: Double
        init(for bytes: Int) {
            (name, scale) = bytes >= 1 << 30 ? ("GiB", Double(1 << 30)) : bytes >= 1 << 20 ? ("MiB", Double(1 << 20))
                : bytes >= 1 << 10 ? ("KiB", 1024) : ("B", 1)
        }
        /// `-` for zero, so that a kind a rank does not hold stands out.
        func format(_ bytes: Int) -> String {
            bytes == 0 ? "-" : scale == 1 ? "\(bytes)" : String(format: "%.2f", Double(bytes) / scale)
        }
    }

    /// `15.05 MiB`, `312.39 GiB (335.43 GB)` with `decimal` for sizes of a gigabyte or more.
    static func bytes(_ n: Int, decimal: Bool = false) -> String {
        let u = Unit(for: n)
        let text = u.scale == 1 ? "\(n) B" : String(format: "%.2f ", Double(n) / u.scale) + u.name
        return decimal && n >= 1_000_000_000 ? text + String(format: " (%.2f GB)", Double(n) / 1e9) : text
    }

    static func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { $0[c].count }.max()! }
        return all.map { row in
            "  " + row.indices.map { c in
                let pad = String(repeating: " ", count: widths[c] - row[c].count)
                return rightAligned.contains(c) ? pad + row[c] : (c == row.count - 1 ? row[c] : row[c] + pad)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    static func wrap(_ text: String, indent: String, width: Int) -> String {
        var out = "", line = ""
        for word in text.split(whereSeparator: \.isWhitespace) {
            if !line.isEmpty && indent.count + line.count + 1 + word.count > width {
                out += indent + line + "\n"
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        return line.isEmpty ? out : out + indent + line + "\n"
    }
}

/// An explain argument that cannot be used (one line).
public struct ExplainError: Error, CustomStringConvertible {
    public let description: String
}

/// What `grok topology explain` prints, as a value (and as its `--json` output).
public struct TopologyExplanation: Sendable, Codable, Equatable {
    /// A half-open range, encoded as `[start, end]`.
    public struct Span: Sendable, Codable, Equatable {
        public var start: Int
        public var end: Int
        public init(_ r: Range<Int>) { (start, end) = (r.lowerBound, r.upperBound) }
        public var count: Int { end - start }
        public var text: String { Topology.span(start ..< end) }
        public init(from decoder: Decoder) throws {
            var c = try decoder.unkeyedContainer()
            (start, end) = (try c.decode(Int.self), try c.decode(Int.self))
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.unkeyedContainer()
            try c.encode(start)
            try c.encode(end)
        }
    }

    public struct ModelInfo: Sendable, Codable, Equatable {
        public var name: String
        public var origin: String
        public var architecture: String
        public var layers: Int
        public var width: Int
        public var queryHeads: Int
        public var kvHeads: Int
        public var headDim: Int
        public var experts: Int
        public var expertWidth: Int
        public var denseWidth: Int
        public var vocabulary: Int
        public var tiedEmbeddings: Bool
        /// Number of tensors per dtype name.
        public var tensorsByDType: [String: Int]
        /// Bytes of one copy of every tensor.
        public var bytes: Int
    }

    public struct StageInfo: Sendable, Codable, Equatable {
        public var index: Int
        public var layers: Span
        public var ranks: [Int]
        public var tensorParallelSize: Int
        public var kvHeadsPerRank: Int
        /// Ranks holding each KV head (> 1 when the tensor-parallel size exceeds the KV heads).
        public var kvReplication: Int
        public var expertMode: ExpertMode
        public var expertPlacement: String
    }

    public struct RankInfo: Sendable, Codable, Equatable {
        public var rank: Int
        public var stage: Int
        public var stageRank: Int
        public var layers: Span
        public var queryHeads: Span
        public var kvHeads: Span
        public var denseColumns: Span
        /// Layer (as a string key) → held expert ids.
        public var experts: [String: [Int]]
        /// Layer → held experts another rank also holds (parallel mode).
        public var replicatedExperts: [String: [Int]]
        public var expertColumns: Span
        public var embeddingRows: Span
        public var outputRows: Span
        public var bytes: ShardBytes
        public var totalBytes: Int
        /// f32 K and V of the rank's KV heads over its layers, per token of one sequence.
        public var kvCacheBytesPerToken: Int
    }

    public struct Totals: Sendable, Codable, Equatable {
        public var bytes: Int
        public var maxBytes: Int
        public var maxRank: Int
        public var meanBytes: Double
        public var minBytes: Int
        public var modelBytes: Int
        public var maxKVCacheBytesPerToken: Int
    }

    public var topology: String
    public var description: String
    public var writtenFor: String?
    public var worldSize: Int
    public var microBatches: Int
    public var model: ModelInfo
    public var stages: [StageInfo]
    public var ranks: [RankInfo]
    public var totals: Totals
}
