// grok: offline tools — synthesize, inspect and benchmark models.
import ArgumentParser
import Foundation
import GrokCheckpoint
import GrokModel
import GrokRuntime
import GrokTensor
import GrokTopology

struct Grok: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grok",
        abstract: "GrokCluster offline tools.",
        subcommands: [Synth.self, Inspect.self, Bench.self, TopologyCommand.self, Shard.self, Plan.self])
}

extension DType: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map { $0.name.lowercased() } }
}

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a synthetic Grok GGUF (llama.cpp's names and metadata, a real tokenizer vocabulary).")

    @Option(help: "Shape preset: \(ModelConfig.presets.keys.sorted().joined(separator: ", ")).")
    var preset = "grok-1-tiny"
    @Option(help: "Matrix dtype: f32, f16, bf16, q8_0, q4_0.")
    var dtype: DType = .f32
    @Option(help: "Seed for the weights.")
    var seed: UInt64 = 1
    @Option(name: [.short, .long], help: "Output GGUF path.")
    var output: String
    @Option(help: "Model name written to general.name (default: the preset).")
    var name: String?
    @Option(help: "Override: architecture grok-1 or grok-2.") var arch: String?
    @Option(help: "Override: vocabulary size.") var vocab: Int?
    @Option(help: "Override: model width.") var width: Int?
    @Option(help: "Override: layers.") var layers: Int?
    @Option(help: "Override: query heads.") var heads: Int?
    @Option(help: "Override: KV heads.") var kvHeads: Int?
    @Option(help: "Override: head dimension.") var headDim: Int?
    @Option(help: "Override: experts.") var experts: Int?
    @Option(help: "Override: experts per token.") var expertsPerToken: Int?
    @Option(help: "Override: expert FFN width.") var expertFFN: Int?
    @Option(help: "Override: Grok-2 dense MLP width.") var denseFFN: Int?
    @Option(help: "Override: context length.") var context: Int?

    func run() throws {
        guard var c = ModelConfig.preset(preset) else {
            throw ValidationError("--preset: expected one of \(ModelConfig.presets.keys.sorted().joined(separator: ", ")), got \"\(preset)\"")
        }
        if let arch {
            guard let a = GrokArchitecture(rawValue: arch) else { throw ValidationError("--arch: expected grok-1 or grok-2, got \"\(arch)\"") }
            if a != c.architecture {
                let base = a == .grok1 ? Grok1.tiny : Grok2.tiny
                (c.architecture, c.gelu, c.tiedEmbeddings, c.routerSoftCap, c.finalSoftCap, c.attentionTemperatureLength, c.outputScale)
                    = (a, base.gelu, base.tiedEmbeddings, base.routerSoftCap, base.finalSoftCap, base.attentionTemperatureLength, base.outputScale)
                c.denseFFNWidth = a == .grok1 ? 0 : (denseFFN ?? 2 * c.expertFFNWidth)
            }
        }
        if let vocab { c.vocabularySize = vocab }
        if let width { c.modelWidth = width }
        if let layers { c.layerCount = layers }
        if let heads { c.queryHeads = heads }
        if let kvHeads { c.kvHeads = kvHeads }
        if let headDim { c.headDim = headDim }
        if let experts { c.expertCount = experts }
        if let expertsPerToken { c.expertsPerToken = expertsPerToken }
        if let expertFFN { c.expertFFNWidth = expertFFN }
        if let denseFFN { c.denseFFNWidth = denseFFN }
        if let context { c.contextLength = context }
        do {
            try Synthesizer.write(c, dtype: dtype, seed: seed, name: name ?? preset, to: output)
        } catch let error as ModelConfigError {
            throw ValidationError(error.description)
        }
        let file = try GGUFFile(path: output)
        print("wrote \(output): \(c.architecture.rawValue), \(c.parameterCount) parameters, \(dtype.name), \(file.fileSize) bytes")
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a GGUF's metadata, tensors, parameter count and bytes.")
    @Argument(help: "GGUF file.") var file: String
    @Flag(help: "Print whole arrays (e.g. every token).") var all = false

    func run() throws {
        print(Inspector.describe(try GGUFFile(path: file), allTokens: all), terminator: "")
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prefill and decode speed of a ~1 GB synthetic model per dtype, against the memory-bandwidth floor.")
    @Option(help: "Dtypes, comma-separated.") var dtypes = "f32,bf16,q8_0,f16,q4_0"
    @Option(help: "Thread counts, comma-separated.") var threads = "1,2"
    @Option(help: "Approximate model file size in bytes.") var bytes = 1_000_000_000
    @Option(help: "Prompt tokens for the prefill measurement.") var prompt = 64
    @Option(help: "Decode steps measured.") var decode = 16
    @Option(help: "Where the synthetic models are written (reused across runs).")
    var directory = NSTemporaryDirectory()

    func run() throws {
        let types = try dtypes.split(separator: ",").map { s -> DType in
            guard let t = DType(name: String(s)) else { throw ValidationError("--dtypes: unknown dtype \"\(s)\"") }
            return t
        }
        let counts = try threads.split(separator: ",").map { s -> Int in
            guard let n = Int(s), n >= 1 else { throw ValidationError("--threads: expected positive integers, got \"\(s)\"") }
            return n
        }
        BLAS.setThreads(1)
        print(Benchmark.header)
        for t in types {
            for n in counts {
                let row = try Benchmark.run(dtype: t, threads: n, targetBytes: bytes, directory: directory,
                                            promptTokens: prompt, decodeTokens: decode) {
                    FileHandle.standardError.write(Data($0.utf8))
                }
                print(Benchmark.format(row))
            }
        }
    }
}

struct Shard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cut a model into one shard file per rank of a layout (each holding exactly that rank's blocks), with a manifest.",
        discussion: "Streams block by block: memory stays near one block whatever the model's size. Each chunk is checksummed (XXH64) and, unless --no-compress, zstd-compressed.")
    @Option(help: "Source model: a GGUF file, the official Grok-1 ckpt-0 directory, a Grok-2 safetensors release or a Hugging Face Grok-1 port directory.") var model: String
    @Option(help: "Layout file (Topologies/*.json).") var topology: String
    @Option(help: "Output directory (created).") var out: String
    @Option(help: "zstd compression level (1-19).") var zstdLevel = 3
    @Flag(help: "Store chunks uncompressed, so ranks map their shard in place.") var noCompress = false
    @Option(help: "Threads for checksums and compression.") var threads = 2
    @Option(help: "Re-encode every matrix into this dtype (f32, f16, bf16, q8_0, q4_0); norms and routers stay as they are. Default: keep the source's dtypes (lossless).")
    var dtype: DType?

    func validate() throws {
        if !(1...19).contains(zstdLevel) { throw ValidationError("--zstd-level: expected 1…19, got \(zstdLevel)") }
        if threads < 1 { throw ValidationError("--threads: expected ≥ 1, got \(threads)") }
    }

    func run() throws {
        let source = try ModelSource.open(model)
        let layout = try GrokTopology.Topology(contentsOf: topology)
        let json = try String(contentsOfFile: topology, encoding: .utf8)
        let manifest = try Shards.write(source: source, topology: layout, topologyJSON: json, to: out,
                                        zstdLevel: noCompress ? nil : zstdLevel, convert: dtype, pool: ThreadPool(threads: threads),
                                        progress: ProgressBar(label: "shard"))
        let weights = manifest.ranks.map(\.weightBytes).reduce(0, +), stored = manifest.ranks.map(\.fileBytes).reduce(0, +)
        print(String(format: "wrote %d shards to %@: %.3f GB of weights in %.3f GB of files (ratio %.2f); peak resident memory %.0f MB",
                     manifest.ranks.count, out, Double(weights) / 1e9, Double(stored) / 1e9, Double(weights) / Double(max(stored, 1)),
                     Double(ProcessMemory.peakResidentBytes()) / 1e6))
    }
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict memory, traffic and speed of a layout on a cluster before running it.",
        discussion: "Memory per rank (weights, KV cache, buffers), bytes read and FLOPs per decode step, the messages and bytes of every collective, the time per token split into compute, communication and pipeline bubble, tokens/s, prefill time, and the bottleneck. Without --cluster a named default profile is used.")
    @Option(help: "A GGUF file, a preset (grok-1, grok-2, …) or embedded.") var model: String
    @Option(help: "Layout file.") var topology: String
    @Option(help: "Cluster profile (grok calibrate, or by hand: Launch/cluster-profile.md). Default: ClusterProfile.default.") var cluster: String?
    @Option(help: "Sequences decoded together.") var batch = 1
    @Option(help: "Positions in each sequence's KV cache (and the prompt length for the prefill figure).") var context = 512
    @Option(help: "Matrix dtype for a preset.") var dtype: DType?
    @Option(help: "Threads per rank (default: the node's cores ÷ ranks per node).") var threads: Int?
    @Option(help: "Ranks sharing one node (they share its memory bandwidth and memory).") var ranksPerNode = 1
    @Flag(help: "Print the prediction as JSON.") var json = false

    func run() throws {
        let profile = try cluster.map { try ClusterProfile(contentsOf: $0) } ?? .default
        let model = try TopologyExplainer.model(self.model, dtype: dtype)
        let layout = try GrokTopology.Topology(contentsOf: topology)
        let planner = Planner(model: model, topology: layout, profile: profile,
                              threads: threads ?? max(1, profile.node.cores / max(ranksPerNode, 1)), ranksPerNode: ranksPerNode)
        let prediction = try planner.predict(batch: batch, context: context)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(prediction), as: UTF8.self))
        } else {
            print(PlanReport.text(prediction, planner: planner, modelName: self.model), terminator: "")
        }
    }
}

struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology", abstract: "Work with topology files (parallel layouts; see Topologies/README.md).",
        subcommands: [Explain.self])

    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a topology against a model and show what every rank holds, with the bytes of its weights.")
        @Argument(help: "Topology JSON file.") var topology: String
        @Option(help: "A GGUF file, a preset (\(ModelConfig.presets.keys.sorted().joined(separator: ", "))), or embedded (grok-coordinator's default model).")
        var model: String
        @Option(help: "Matrix dtype for a preset (default q8_0 for grok-1/grok-2, f32 for the others).")
        var dtype: DType?
        @Flag(help: "Print the explanation as JSON.") var json = false

        func run() throws {
            let layout = try GrokTopology.Topology(contentsOf: topology)
            let explanation = try TopologyExplainer.explain(layout, model: try TopologyExplainer.model(model, dtype: dtype))
            print(json ? try TopologyExplainer.json(explanation) : TopologyExplainer.text(explanation), terminator: "")
        }
    }
}

// One line per error (help text aside), like grok-coordinator.
do {
    var command = try Grok.parseAsRoot()
    try command.run()
} catch {
    let code = Grok.exitCode(for: error)
    if code == .success {
        print(Grok.fullMessage(for: error))
    } else {
        FileHandle.standardError.write(Data("error: \(Grok.message(for: error))\n".utf8))
    }
    exit(code.rawValue)
}
