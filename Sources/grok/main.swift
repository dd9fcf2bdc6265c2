// grok: offline tools — synthesize, inspect and benchmark models.
import ArgumentParser
import Foundation
import GrokCheckpoint
import GrokComm
import GrokModel
import GrokRuntime
import GrokTensor
import GrokTopology

struct Grok: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grok",
        abstract: "GrokCluster offline tools.",
        subcommands: [Synth.self, Inspect.self, Bench.self, TopologyCommand.self, Shard.self, Plan.self, Calibrate.self, Place.self])
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
    @Option(help: "Bias the routers so that expert popularity per layer follows Zipf with this exponent (hot expert shuffled per layer by --seed). Default: plain random routers.")
    var routerSkew: Double?
    @Option(help: "With skewed routers: inter-layer affinity in [0, 1) — tokens that chose expert i in layer l tend to choose a fixed partner expert in layer l+1.")
    var routerAffinity: Double?

    func run() throws {
        var routing: SkewedRouting.Options?
        if routerSkew != nil || routerAffinity != nil {
            let options = SkewedRouting.Options(skew: routerSkew ?? 0, affinity: routerAffinity ?? 0)
            do { try options.validate() } catch { throw ValidationError("\(error)") }
            routing = options
        }
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
            try Synthesizer.write(c, dtype: dtype, seed: seed, name: name ?? preset, to: output, routing: routing)
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
    @Option(help: "Instead of the dtype sweep: run the real runtime on this layout under mpirun and print measured figures beside grok plan's prediction.")
    var topology: String?
    @Option(help: "With --topology: the model (GGUF file or checkpoint directory).") var model: String?
    @Option(help: "With --topology: cluster profile for the prediction (grok calibrate).") var cluster: String?
    @Option(help: "With --topology: sequences decoded together.") var batch = 1
    @Option(help: "With --topology: tokens generated per sequence.") var tokens = 32
    @Option(help: "With --topology: ranks sharing one node (default: all of them, this machine).") var ranksPerNode: Int?
    @Option(help: "With --topology: predict with this routing trace of the workload (e.g. one --trace-routing wrote for another layout) instead of uniform routing.")
    var routingTrace: String?
    @Option(help: "With --topology: record the run's routing into this directory (grok-coordinator --trace-routing).")
    var traceRouting: String?

    func run() throws {
        if let topology { return try runLayout(topology) }
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

extension Bench {
    /// Measured (the runtime under mpirun) beside predicted (the planner) for one layout.
    func runLayout(_ topology: String) throws {
        guard let model else { throw ValidationError("--topology needs --model") }
        guard let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ValidationError("bench --topology needs mpirun (Launch/setup.sh installs it)")
        }
        let layout = try GrokTopology.Topology(contentsOf: topology)
        let threads = Int(self.threads.split(separator: ",").first ?? "1") ?? 1
        let profile = try cluster.map { try ClusterProfile(contentsOf: $0) } ?? .default
        let explained = try TopologyExplainer.model(model, dtype: nil)
        let routing = try routingTrace.map { try RoutingTrace(directory: $0) }
        if let routing { try Planner.check(routing: routing, config: explained.config, model: explained.name) }   // before the run
        let coordinator = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("grok-coordinator").path
        let environment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_btl": "self,vader",
                           "OMPI_MCA_btl_vader_single_copy_mechanism": "none", "OPENBLAS_NUM_THREADS": "1"]
        let measured = try LayoutBench.run(mpirun: mpirun, coordinator: coordinator, model: model, topology: topology,
                                           ranks: layout.worldSize, batch: batch, tokens: tokens, threads: threads,
                                           environment: environment, scratch: directory + "/grokcluster-layout-bench-\(getpid())",
                                           traceRouting: traceRouting)
        let planner = Planner(model: explained, topology: layout, profile: profile, threads: threads,
                              ranksPerNode: ranksPerNode ?? layout.worldSize, routing: routing)
        let context = measured.promptTokens / max(batch, 1) + tokens / 2
        let predicted = try planner.predict(batch: batch, context: context)
        func error(_ p: Double, _ m: Double) -> String { String(format: "%+.1f%%", 100 * (p - m) / m) }
        print("layout \(topology), model \(model), batch \(batch), \(threads) thread(s) per rank; cluster: \(profile.description)")
        print("routing (predicted): " + (planner.routing.map { "drawn from the trace \($0.source) (\($0.tokens) tokens)" } ?? "uniform top-\(planner.config.expertsPerToken)"))
        print("quantity                 predicted     measured     error")
        print(String(format: "decode step (ms)      %12.3f %12.3f  ", predicted.stepSeconds * 1e3, measured.stepSeconds * 1e3)
              + error(predicted.stepSeconds, measured.stepSeconds))
        print(String(format: "decode tokens/s       %12.2f %12.2f  ", predicted.tokensPerSecond, measured.tokensPerSecond)
              + error(predicted.tokensPerSecond, measured.tokensPerSecond))
        let share = (predicted.communicationSeconds + predicted.bubbleSeconds) / predicted.stepSeconds
        print(String(format: "communication share   %11.1f%% %11.1f%%", 100 * share, 100 * measured.communicationShare))
        print(String(format: "prefill (s)           %12.4f %12.4f  ", predicted.prefillSeconds * Double(measured.promptTokens) / Double(max(context, 1)),
                     measured.prefillSeconds) + "(\(measured.promptTokens) tokens; prediction scaled from one prompt)")
        // Rank 0's collectives per step (the predicted are for a decode step; measured average prefill and decode).
        let rank0 = predicted.ranks.first { $0.rank == 0 }!
        let kinds = Set(rank0.messages.keys).union(measured.messagesPerStep.keys).filter { $0 != "broadcast" }.sorted()
        let alltoall = measured.messagesPerStep["alltoall"]
        for kind in kinds {
            let p = rank0.messages[kind].map { $0 } ?? 0
            let m = kind == "alltoallv" ? alltoall ?? 0 : measured.messagesPerStep[kind] ?? 0
            if kind == "alltoall" { continue }
            print(String(format: "rank 0 %-13@ %10.1f %12.1f  messages per step", kind, p, m))
        }
        for (rank, peak) in measured.peakResidentBytes.enumerated() where rank < predicted.ranks.count {
            print(String(format: "rank %d memory (MB)  %12.1f %12.1f  (weights + KV + buffers; measured: peak RSS)", rank,
                         Double(predicted.ranks[rank].memoryBytes) / 1e6, Double(peak) / 1e6))
        }
        print("bottleneck (predicted): \(predicted.bottleneck)")
    }
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict memory, traffic and speed of a layout on a cluster before running it.",
        discussion: "Memory per rank (weights, KV cache, buffers), bytes read and FLOPs per decode step, the messages and bytes of every collective, the time per token split into compute, communication and pipeline bubble, tokens/s, prefill time, and the bottleneck. Without --cluster a named default profile is used.")
    @Option(help: "A GGUF file, a preset (grok-1, grok-2, …) or embedded.") var model: String
    @Option(help: "Layout file (not with --search).") var topology: String?
    @Flag(help: "Search layouts (node counts, stages, tensor parallelism, sliced or placed experts) for --goal instead of predicting one.")
    var search = false
    @Option(help: "With --search: fit | latency | throughput | fewest-nodes.") var goal = "latency"
    @Option(help: "With --search: most nodes to consider (default: the profile's nodes, else 64).") var maxNodes: Int?
    @Option(help: "With --search --goal fewest-nodes: the time per token to meet, in ms.") var maxLatencyMs: Double?
    @Option(help: "With --search: candidates to print.") var top = 5
    @Option(help: "With --search: write the best layout to this file.") var out: String?
    @Option(help: "Cluster profile (grok calibrate, or by hand: Launch/cluster-profile.md). Default: ClusterProfile.default.") var cluster: String?
    @Option(help: "Sequences decoded together.") var batch = 1
    @Option(help: "Positions in each sequence's KV cache (and the prompt length for the prefill figure).") var context = 512
    @Option(help: "Matrix dtype for a preset.") var dtype: DType?
    @Option(help: "Threads per rank (default: the node's cores ÷ ranks per node).") var threads: Int?
    @Option(help: "Ranks sharing one node (they share its memory bandwidth and memory).") var ranksPerNode = 1
    @Option(help: "The workload's routing trace (grok-coordinator --trace-routing DIR): the experts each step's tokens choose are drawn from it instead of uniformly.")
    var routingTrace: String?
    @Flag(help: "Print the prediction as JSON.") var json = false

    func validate() throws {
        if search == (topology != nil) { throw ValidationError("give --topology, or --search (not both)") }
        if PlanSearch.Goal(rawValue: goal) == nil {
            throw ValidationError("--goal: expected one of \(PlanSearch.Goal.allCases.map(\.rawValue).joined(separator: ", ")), got \(goal)")
        }
        if goal == "fewest-nodes" && maxLatencyMs == nil { throw ValidationError("--goal fewest-nodes needs --max-latency-ms") }
    }

    func run() throws {
        let profile = try cluster.map { try ClusterProfile(contentsOf: $0) } ?? .default
        let model = try TopologyExplainer.model(self.model, dtype: dtype)
        let routing = try routingTrace.map { try RoutingTrace(directory: $0) }
        if search { return try runSearch(model: model, profile: profile, routing: routing) }
        let layout = try GrokTopology.Topology(contentsOf: topology!)
        let planner = Planner(model: model, topology: layout, profile: profile,
                              threads: threads ?? max(1, profile.node.cores / max(ranksPerNode, 1)), ranksPerNode: ranksPerNode,
                              routing: routing)
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

extension Plan {
    func runSearch(model: TopologyExplainer.Model, profile: ClusterProfile, routing: RoutingTrace?) throws {
        let goal = PlanSearch.Goal(rawValue: self.goal)!
        let threads = self.threads ?? profile.node.cores
        let all = try PlanSearch.candidates(model: model, profile: profile, maxNodes: maxNodes ?? profile.nodes ?? 64, batch: batch,
                                        context: context, threads: threads, routing: routing)
        let ranked = PlanSearch.rank(all, goal: goal, maxLatency: maxLatencyMs.map { $0 / 1e3 })
        print("search: \(all.count) layouts of \(self.model) for goal \(goal.rawValue) at batch \(batch), context \(context); cluster: \(profile.description)")
        guard let best = ranked.first else {
            throw ValidationError("no layout \(all.isEmpty ? "is valid" : "fits in memory\(goal == .fewestNodes ? " and meets the latency" : "")") up to \(maxNodes ?? profile.nodes ?? 64) nodes")
        }
        print("nodes  ms/token  tokens/s  max GiB/rank  layout  —  bottleneck")
        for c in ranked.prefix(top) {
            print(String(format: "%5d %9.2f %9.2f %13.1f  ", c.nodes, c.prediction.stepSeconds * 1e3, c.prediction.tokensPerSecond,
                         Double(c.maxMemory) / 1073741824) + c.summary + "  —  " + c.prediction.bottleneck)
        }
        if let out {
            let reason = String(format: "Found by grok plan --search --goal %@ at batch %d: %.2f ms/token, %.2f tokens/s predicted",
                                goal.rawValue, batch, best.prediction.stepSeconds * 1e3, best.prediction.tokensPerSecond)
            try PlanSearch.json(best.topology, reason: reason).write(toFile: out, atomically: true, encoding: .utf8)
            print("wrote \(out)")
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

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a node (read bandwidth, kernel rates) and the collectives between the ranks of an MPI job; write a cluster profile for the planner.",
        discussion: """
            Run under mpirun with one rank per node and no core binding, e.g.
              mpirun --map-by ppr:1:node --bind-to none -np 16 grok calibrate --out cluster.json
            Rank 0 measures its node while the others wait; then every rank takes part in the collectives. Ranks on one host \
            measure shared memory, not a network. Without mpirun (or with --node-only) only the node is measured. \
            Schema and methods: Launch/cluster-profile.md.
            """)
    @Option(help: "Where rank 0 writes the profile (JSON).") var out: String
    @Flag(help: "Small buffers and few repetitions: seconds instead of a minute, rough figures (for tests).") var quick = false
    @Flag(help: "Measure the node only and keep the default profile's network (the only mode for a single process).") var nodeOnly = false
    @Option(help: "Largest message timed, in bytes (≥ 8; default 16 MiB, 1 MiB with --quick).") var maxBytes: Int?
    @Option(help: "Highest thread count measured: 1, 2, 4, … up to it (default: the node's cores).") var threadsMax: Int?

    func validate() throws {
        if let maxBytes, maxBytes < 8 || maxBytes > 1 << 30 { throw ValidationError("--max-bytes: expected 8…\(1 << 30), got \(maxBytes)") }
        if let threadsMax, threadsMax < 1 || threadsMax > 1024 { throw ValidationError("--threads-max: expected 1…1024, got \(threadsMax)") }
    }

    func run() throws {
        // Only this subcommand starts MPI, and only when mpirun (or srun) launched the process.
        let communicator: Communicator
        if MPICommunicator.isLaunchedByMPI {
            do { communicator = try MPICommunicator() } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                Foundation.exit(1)
            }
        } else {
            communicator = SingleProcessCommunicator()
        }
        let mpi = communicator as? MPICommunicator
        let rank = communicator.rank
        func stderr(_ text: String) { if rank == 0 { FileHandle.standardError.write(Data(text.utf8)) } }
        /// An error every rank met alike: rank 0 reports it, every rank ends with status 1.
        func fail(_ message: String) -> Never {
            stderr("error: \(message)\n")
            mpi?.finalize()
            Foundation.exit(1)
        }

        let cores = ProcessInfo.processInfo.activeProcessorCount
        var options = quick ? Calibration.Options.quick(maxThreads: threadsMax ?? cores) : Calibration.Options(maxThreads: threadsMax ?? cores)
        if let maxBytes { options.maxMessageBytes = maxBytes }
        let path = out
        do {
            // Rank 0 checks it can write --out before minutes of measurement; every rank learns the verdict.
            var problem: [UInt8] = []
            if rank == 0 {
                let directory = (path as NSString).deletingLastPathComponent
                let dir = directory.isEmpty ? "." : directory
                var isDirectory: ObjCBool = false
                if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) || !isDirectory.boolValue {
                    problem = Array("--out: no directory \(dir)".utf8)
                } else if !FileManager.default.isWritableFile(atPath: dir) {
                    problem = Array("--out: cannot write in \(dir)".utf8)
                }
            }
            try communicator.broadcast(&problem, root: 0)
            if !problem.isEmpty { fail(String(decoding: problem, as: UTF8.self)) }

            let (profile, points) = try Calibration.calibrate(communicator, options, nodeOnly: nodeOnly, log: stderr)
            var written: [UInt8] = [1]
            if rank == 0 {
                do {
                    try Calibration.json(profile).write(to: URL(fileURLWithPath: path))
                    print(profile.description)
                    print()
                    print(Calibration.summary(profile, points: points), terminator: "")
                    print("\nwrote \(path)")
                } catch {
                    FileHandle.standardError.write(Data("error: --out: cannot write \(path): \(error.localizedDescription)\n".utf8))
                    written = [0]
                }
            }
            try communicator.broadcast(&written, root: 0)
            mpi?.finalize()
            Foundation.exit(written == [1] ? 0 : 1)
        } catch let error as CalibrationError {
            fail(error.description)
        } catch {
            // A failed collective: this rank reports it and the job ends.
            FileHandle.standardError.write(Data("error: rank \(rank): \(error)\n".utf8))
            communicator.abort(code: 1)
        }
    }
}

struct Place: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Expert placement from a routing trace (grok-coordinator --trace-routing): write a layout, evaluate one, compare strategies.",
        discussion: """
            Strategies: \(PlacementStrategy.names). A trace is a directory of experts.npy, gates.npy, sequence.npy, \
            position.npy and meta.json. Replays cut the trace, in (sequence, position) order, into steps of --batch tokens \
            (default 1: every token is its own decode step) and do what the runtime does per step. See Launch/placement.md.
            """,
        subcommands: [Write.self, Evaluate.self, Compare.self], defaultSubcommand: Write.self)

    /// The model, width, cluster and batch of a replay.
    struct ModelOptions: ParsableArguments {
        @Option(help: "A GGUF file or preset the trace is for (default: the trace's model when it is a preset). Gives d and the experts' bytes.")
        var model: String?
        @Option(help: "Matrix dtype for a preset model.") var dtype: DType?
        @Option(help: "Hidden width d (bytes per row = d × 4); default: the model's.") var width: Int?
        @Option(help: "Cluster profile for the predicted MoE time (default: ClusterProfile.default).") var cluster: String?
        @Option(help: "Tokens per replayed step, in (sequence, position) order (1: every token its own decode step). Default: the runtime's own steps when the trace recorded them (step.npy), else 1.") var batch: Int?
        @Option(help: "Replay each sequence's first N tokens as one step (its prompt, as the coordinator prefills it), the rest in steps of --batch.")
        var prefill: Int?

        func resolve(_ trace: RoutingTrace) throws -> (TopologyExplainer.Model?, PlacementEvaluation.Options) {
            let model = try PlacementTool.model(self.model, dtype: dtype, trace: trace)
            let profile = try cluster.map { try ClusterProfile(contentsOf: $0) } ?? .default
            if let batch, batch < 1 { throw ValidationError("--batch: expected ≥ 1, got \(batch)") }
            guard let d = width ?? model?.config.modelWidth else {
                throw ValidationError("the trace's model \"\(trace.model)\" is not a preset: give --model (a GGUF file or preset) or --width")
            }
            if let prefill, prefill < 1 { throw ValidationError("--prefill: expected ≥ 1, got \(prefill)") }
            return (model, PlacementEvaluation.Options(batch: batch, width: d, model: model, profile: profile, prefill: prefill))
        }
    }

    /// Ranks, redundant slots and the memory cap of a placement.
    struct SlotOptions: ParsableArguments {
        @Option(help: "Ranks of the expert-parallel stage.") var ranks: Int
        @Option(help: "Redundant expert slots per layer, over all ranks (extra copies of hot experts).") var redundant: Int?
        @Option(help: "Redundant slots per rank per layer (instead of --redundant: ranks × this in total).") var redundantPerRank: Int?
        @Option(help: "Experts (copies included) a rank may hold per layer.") var maxExpertsPerRank: Int?
        @Option(help: "Affinity: load tolerance over the balanced share (0.10 = 10%).") var tolerance = 0.10

        func options() throws -> PlacementOptions {
            if redundant != nil && redundantPerRank != nil { throw ValidationError("give --redundant or --redundant-per-rank, not both") }
            guard ranks >= 1 else { throw ValidationError("--ranks: expected ≥ 1, got \(ranks)") }
            let slots = redundant ?? (redundantPerRank ?? 0) * ranks
            return PlacementOptions(ranks: ranks, redundantSlots: slots, maxExpertsPerRank: maxExpertsPerRank, affinityTolerance: tolerance)
        }
    }

    static func strategy(_ name: String) throws -> PlacementStrategy {
        guard let s = PlacementStrategy(rawValue: name) else {
            throw ValidationError("--strategy: expected one of \(PlacementStrategy.names), got \"\(name)\"")
        }
        return s
    }

    struct Write: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Place experts with a strategy and write a one-stage layout file (grok place --trace DIR --ranks R --strategy S --out T.json).")
        @Option(help: "Routing trace directory.") var trace: String
        @OptionGroup var slots: SlotOptions
        @Option(help: "Strategy: \(PlacementStrategy.names).") var strategy: String
        @Option(help: "Layout file to write.") var out: String
        @Option(help: "tp: attention tensor-parallel over the ranks; replicated: every rank holds all attention heads.") var stageLayout = "tp"
        @OptionGroup var replay: ModelOptions

        func run() throws {
            guard stageLayout == "tp" || stageLayout == "replicated" else {
                throw ValidationError("--stage-layout: expected tp or replicated, got \"\(stageLayout)\"")
            }
            let trace = try RoutingTrace(directory: self.trace)
            let strategy = try Place.strategy(self.strategy)
            let options = try slots.options()
            let (model, evaluation) = try replay.resolve(trace)
            let layout = try PlacementTool.layout(trace: trace, strategy: strategy, options: options, tensorParallel: stageLayout == "tp",
                                                  model: model, evaluation: evaluation)
            do { try layout.json.write(toFile: out, atomically: true, encoding: .utf8) } catch {
                throw ValidationError("--out: cannot write \(out)")
            }
            print(String(format: "wrote %@: %@ over %d ranks, expected imbalance %.3f, replayed imbalance %.3f at batch %d, %d/%d replicas used%@",
                         out, strategy.rawValue, options.ranks, layout.expectedImbalance, layout.evaluation.imbalance, evaluation.batch,
                         layout.evaluation.replicasUsed, layout.evaluation.replicasPlaced,
                         model == nil ? " (validated for the trace's layers and experts only: give --model to check heads)" : ", validated for \(model!.name)"))
        }
    }

    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay a trace against a layout's placement (no model run): expert rows per rank, imbalance, all-to-all bytes per rank pair, replicas used, predicted MoE time.")
        @Option(help: "Routing trace directory.") var trace: String
        @Option(help: "Layout file.") var topology: String
        @OptionGroup var replay: ModelOptions
        @Flag(help: "Print the evaluation as JSON.") var json = false
        @Option(help: "Write heatmaps (expert load per layer, rank-to-rank traffic) to this SVG file.") var svg: String?

        func run() throws {
            let trace = try RoutingTrace(directory: self.trace)
            let (model, options) = try replay.resolve(trace)
            let layout = try GrokTopology.Topology(contentsOf: topology)
            let evaluation = try PlacementEvaluation.evaluate(trace: trace, topology: layout, shape: model?.config.shape, options: options)
            print(json ? try PlacementReport.json(evaluation) : PlacementReport.text(evaluation), terminator: "")
            if let svg {
                do { try PlacementReport.svg(evaluation).write(toFile: svg, atomically: true, encoding: .utf8) } catch {
                    throw ValidationError("--svg: cannot write \(svg)")
                }
                if !json { print("wrote \(svg)") }
            }
        }
    }

    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every strategy side by side on one trace: imbalance, all-to-all bytes, replicas, predicted MoE time.")
        @Option(help: "Routing trace directory.") var trace: String
        @OptionGroup var slots: SlotOptions
        @Option(help: "Comma-separated strategies (default: all).") var strategies: String?
        @OptionGroup var replay: ModelOptions
        @Flag(help: "Print the comparison as JSON.") var json = false

        func run() throws {
            let trace = try RoutingTrace(directory: self.trace)
            let list = try strategies.map { try $0.split(separator: ",").map { try Place.strategy($0.trimmingCharacters(in: .whitespaces)) } }
                ?? PlacementStrategy.allCases
            let options = try slots.options()
            let (model, evaluation) = try replay.resolve(trace)
            let rows = PlacementTool.compare(trace: trace, strategies: list, options: options, evaluation: evaluation)
            if json { print(try PlacementReport.json(rows), terminator: ""); return }
            let header = "trace \(self.trace): \(trace.tokens) tokens" + (trace.model.isEmpty ? "" : " of \(trace.model)")
                + ", \(trace.layers) layers × \(trace.experts) experts, top-\(trace.expertsPerToken); \(options.ranks) ranks, \(options.redundantSlots) redundant slots per layer"
                + (options.maxExpertsPerRank.map { ", at most \($0) experts per rank" } ?? "")
                + "; " + (evaluation.prefill.map { "each sequence's first \($0) tokens as one step, then " } ?? "")
                + "steps of \(evaluation.batch) token\(evaluation.batch == 1 ? "" : "s"); d = \(evaluation.width)" + (model.map { ", model \($0.name)" } ?? "")
            print(PlacementReport.compareText(rows, header: header), terminator: "")
        }
    }
}

// One line per error (help text aside), like grok-coordinator.
do {
    var command = try Grok.parseAsRoot()
    try command.run()
} catch {
    // Under mpirun (grok calibrate) every rank parses the same arguments: rank 0 alone reports.
    let launcherRank = Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"]
        ?? ProcessInfo.processInfo.environment["PMI_RANK"] ?? "0") ?? 0
    let code = Grok.exitCode(for: error)
    if launcherRank != 0 {
        exit(code.rawValue)
    } else if code == .success {
        print(Grok.fullMessage(for: error))
    } else {
        FileHandle.standardError.write(Data("error: \(Grok.message(for: error))\n".utf8))
    }
    exit(code.rawValue)
}
