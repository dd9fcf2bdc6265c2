import Foundation
import GrokCheckpoint
import GrokComm
import GrokModel
import GrokTensor
import GrokTokenizer
import GrokTopology

/// Where the prompts come from.
public enum PromptSource: Sendable {
    case text(String)
    case file(String)        // one prompt per line, generated as a batch
    case tokens([Int32])
}

/// Everything one coordinator run needs, already parsed (the executable maps its flags to this).
public struct RunConfiguration: Sendable {
    public var modelPath: String?
    public var prompt: PromptSource = .text("The answer to life, the universe and everything is")
    public var generation = GenerationOptions()
    public var threads = 1
    public var json = false
    public var logitsOut: String?
    /// Prepend BOS; nil follows the file's `tokenizer.ggml.add_bos_token` (the Grok-1 runner adds none).
    public var addBOS: Bool?
    /// Layout file (Topologies/*.json): every rank holds its shard and the ranks run one model.
    /// Without one, each rank holds the whole model and the prompts are shared out (data parallel).
    public var topologyPath: String?
    /// A shard directory (`grok shard`): each rank loads only its own shard file.
    public var shardsPath: String?
    /// The rank that holds the shards (or the model, which it cuts) and sends each rank its own.
    public var distributeFrom: Int?
    /// Online rebalancing: every N steps, re-place experts from the routing seen (strategy,
    /// spare slots per layer).
    public var rebalanceEvery: Int?
    public var rebalanceStrategy = "eplb"
    public var rebalanceRedundant = 0
    /// Where received shards are kept (default: a temporary directory removed after loading).
    public var shardCache: String?
    /// Print per-rank statistics at the end (stderr), and/or write them as JSON.
    public var stats = false
    public var statsJSON: String?
    /// Write the routing trace (every token's experts and gates in every layer) to this directory.
    public var traceRoutingPath: String?

    public init() {}
}

/// One run of `grok-coordinator` on one rank. SPMD: every rank validates the layout and loads its
/// shard of the model; rank 0 reads and tokenizes the prompts.
///
/// - With a topology, the ranks run one model together: rank 0 drives the generation loop
///   (`ClusterModel`: it broadcasts each step, gathers the logits and samples) while the other
///   ranks serve its steps (`ClusterWorker`).
/// - Without one, each rank holds the whole model and the prompts are shared out data-parallel
///   (sequence s on rank s mod N); rank 0 gathers the results.
///
/// Any failure on any rank is reported once, on rank 0, and every rank returns non-zero; a failed
/// collective ends the job.
public final class CoordinatorRun {
    let configuration: RunConfiguration
    let comm: Communicator
    let stats = CommunicationStats()
    let standardOutput: (String) -> Void
    let standardError: (String) -> Void

    public init(_ configuration: RunConfiguration, communicator: Communicator,
                standardOutput: @escaping (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) },
                standardError: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.configuration = configuration
        self.comm = InstrumentedCommunicator(communicator, stats: stats)
        self.standardOutput = standardOutput
        self.standardError = standardError
    }

    /// Runs to completion; returns the process exit code (the same on every rank).
    public func execute() -> Int32 {
        do {
            // 1. Every rank: open the model's metadata, check the layout against it and the world,
            //    then load only this rank's share (from the model, or from its shard).
            var shardsPath = configuration.shardsPath
            var temporary: String?
            if let root = configuration.distributeFrom {
                guard root >= 0 && root < comm.size else {
                    throw RunFailure(message: "--distribute-from: rank \(root) is not in the world of \(comm.size) ranks")
                }
                let prepared = try agree { comm.rank == root ? try prepareDistribution() : "" }
                let cache = configuration.shardCache ?? NSTemporaryDirectory() + "grokcluster-shards-\(getpid())"
                if configuration.shardCache == nil && comm.rank != root { temporary = cache }
                if configuration.shardsPath == nil && comm.rank == root { temporary = prepared }   // shards cut for this run
                shardsPath = try ShardDistribution.run(comm, root: root, directory: prepared, cache: cache,
                                                       rootCaches: configuration.shardCache != nil, progress: comm.rank == root ? ProgressBar(label: "distribute") : nil)
            }
            defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
            let opened = try agree { try openModel(shardsPath: shardsPath) }
            if let cores = CoordinatorRun.allowedCores(), cores < configuration.threads {
                standardError("warning: rank \(comm.rank): --threads \(configuration.threads) but this process may only run on \(cores) core\(cores == 1 ? "" : "s") (mpirun binds up to 2 ranks to one core each: add --bind-to none)\n")
            }
            let pool = ThreadPool(threads: configuration.threads)
            BLAS.setThreads(1)  // our pool parallelises; mpirun's binding would change OpenBLAS's default
            let loadStart = Date()
            let loaded = try agree { () -> (GrokModel, (any Tokenizer)?) in
                let source: TensorSource
                if let shards = opened.shards, let plan = opened.plan {
                    source = try loadTogether(total: shards.manifest.ranks.map(\.fileBytes).reduce(0, +)) { progress in
                        try Shards.open(shards.directory, manifest: shards.manifest, metadata: opened.metadata, rank: self.comm.rank,
                                        plan: plan, config: try ModelConfig(gguf: opened.metadata), pool: pool, progress: progress)
                    }
                } else {
                    source = opened.source!
                }
                return (try GrokModel(source: source, plan: opened.plan, pool: pool), try ModelSource.tokenizer(of: opened.metadata))
            }
            let plan = opened.plan
            let loadSeconds = Date().timeIntervalSince(loadStart)
            let (model, tokenizer) = loaded
            if plan != nil { try agree { try model.connect(comm) } }
            // 2. Rank 0: prompts → token ids, checked against the vocabulary and the context.
            var prompts = try agree { comm.rank == 0 ? try readPrompts(model: model, tokenizer: tokenizer) : [] }
            prompts = try broadcastPrompts(prompts)
            var options = configuration.generation
            options.recordLogits = configuration.logitsOut != nil
            if let directory = configuration.traceRoutingPath {
                try agree { if comm.rank == 0 { try RoutingTraceFile.prepare(directory) } }
                model.routingTrace = RoutingRecorder(expertsPerToken: model.config.expertsPerToken)
            }
            stats.reset()
            let started = Date()
            // 3. Generate.
            let (all, timings, timer): ([WireResult], GenerationTimings, ForwardTimer)
            if plan != nil {
                (all, timings, timer) = try generateTogether(model, tokenizer, prompts, options)
            } else {
                (all, timings, timer) = try generateDataParallel(model, tokenizer, prompts, options)
            }
            let wall = Date().timeIntervalSince(started)
            if let directory = configuration.traceRoutingPath {
                // Data parallel: slot s of this rank is sequence mine[s]; one model: slots are sequences.
                let mine = prompts.indices.filter { $0 % comm.size == comm.rank }
                try writeRoutingTrace(model, to: directory, sequenceOf: plan != nil ? { $0 } : { mine[$0] })
            }
            // 4. Rank 0 prints.
            let stream = comm.rank == 0 && prompts.count == 1 && !configuration.json
            if comm.rank == 0 { try report(all, timings: timings, streamed: stream, model: model) }
            if configuration.stats || configuration.statsJSON != nil {
                try reportStats(model: model, timer: timer, wallSeconds: wall, loadSeconds: loadSeconds)
            }
            return 0
        } catch let failure as RunFailure {
            if comm.rank == 0 { standardError("error: \(failure.message)\n") }
            return 1
        } catch {
            // A failed collective: the job cannot continue in step; end every rank.
            standardError("error: rank \(comm.rank): \(error)\n")
            comm.abort(code: 1)
        }
    }

    /// What step 1 opens on every rank: the model's metadata and, for a whole-model source, the
    /// source; the layout's plan for this rank; a shard directory's manifest.
    private struct Opened {
        var metadata: GGUFFile
        var source: TensorSource?
        var plan: RankPlan?
        var shards: (directory: String, manifest: ShardManifest)?
    }

    /// On the distributing rank: the shard directory to send, checked; or, given a model, shards
    /// cut from it for the launch topology (zstd level 1) in a temporary directory.
    private func prepareDistribution() throws -> String {
        if let directory = configuration.shardsPath {
            _ = try Shards.readManifest(directory)
            return directory
        }
        guard let path = configuration.topologyPath else {
            throw RunFailure(message: "--distribute-from with --model needs --topology (the layout to cut the model for)")
        }
        let source = try configuration.modelPath.map { try ModelSource.open($0) } ?? ModelSource.embeddedDefault()
        let directory = NSTemporaryDirectory() + "grokcluster-cut-\(getpid())"
        try Shards.write(source: source, topology: try Topology(contentsOf: path), topologyJSON: try String(contentsOfFile: path, encoding: .utf8),
                         to: directory, zstdLevel: 1, pool: ThreadPool(threads: configuration.threads), progress: ProgressBar(label: "cut"))
        return directory
    }

    private func openModel(shardsPath: String?) throws -> Opened {
        let given = try configuration.topologyPath.map { try Topology(contentsOf: $0) }
        if let directory = shardsPath {
            let (manifest, metadata) = try Shards.readManifest(directory)
            let config = try ModelConfig(gguf: metadata)
            let topology = try Shards.topology(of: manifest, directory: directory, config: config, given: given)
            try topology.validate(shape: config.shape, worldSize: comm.size, source: given?.source ?? "\(directory)/manifest.json")
            return Opened(metadata: metadata, source: nil, plan: topology.plan(rank: comm.rank, shape: config.shape),
                          shards: (directory, manifest))
        }
        let source = try configuration.modelPath.map { try ModelSource.open($0) } ?? ModelSource.embeddedDefault()
        var plan: RankPlan?
        if let given, let path = configuration.topologyPath {
            let shape = try ModelConfig(gguf: source.metadataFile).shape
            try given.validate(shape: shape, worldSize: comm.size, source: path)
            plan = given.plan(rank: comm.rank, shape: shape)
        }
        return Opened(metadata: source.metadataFile, source: source, plan: plan, shards: nil)
    }

    /// Runs `body` (this rank's loading) on a thread while every rank reports its progress to
    /// rank 0 five times a second (an allreduce of bytes done and of ranks finished), which shows
    /// one bar for the whole cluster. Returns or rethrows `body`'s outcome once every rank is done.
    private func loadTogether<T>(total: Int, _ body: @escaping (@escaping @Sendable (Int) -> Void) throws -> T) throws -> T {
        let state = LoadState<T>()
        let finished = DispatchSemaphore(value: 0)
        let worker = Thread {
            let outcome = Result { try body { n in state.lock.lock(); state.bytes += n; state.lock.unlock() } }
            state.lock.lock(); state.outcome = outcome; state.lock.unlock()
            finished.signal()
        }
        worker.stackSize = 16 << 20
        worker.start()
        let bar = comm.rank == 0 ? ProgressBar(label: "load") : nil
        bar?.start(total: total)
        while true {
            usleep(200_000)
            state.lock.lock()
            var report: [Float] = [Float(state.bytes) / 1e6, state.outcome == nil ? 0 : 1]   // MB done, finished
            state.lock.unlock()
            try comm.allreduceSum(&report, count: 2)
            bar?.update(done: Int(Double(report[0]) * 1e6))
            if Int(report[1]) == comm.size { break }
        }
        finished.wait()
        bar?.update(done: total)
        bar?.finish()
        return try state.outcome!.get()
    }

    /// One model over every rank: rank 0 runs the generator, the others serve its steps.
    private func generateTogether(_ model: GrokModel, _ tokenizer: (any Tokenizer)?, _ prompts: [[Int32]],
                                  _ options: GenerationOptions) throws -> ([WireResult], GenerationTimings, ForwardTimer) {
        let stream = comm.rank == 0 && prompts.count == 1 && !configuration.json
        return try agree {
            if comm.rank != 0 {
                return ([], GenerationTimings(), try ClusterWorker.serve(model, world: comm))
            }
            let cluster = ClusterModel(model: model, world: comm)
            if let every = configuration.rebalanceEvery {
                guard let strategy = PlacementStrategy(rawValue: configuration.rebalanceStrategy) else {
                    throw GenerationError("--rebalance-strategy: unknown strategy \(configuration.rebalanceStrategy)")
                }
                cluster.rebalance = Rebalancer(every: every, strategy: strategy, redundant: configuration.rebalanceRedundant,
                                               log: { self.standardError($0) })
            }
            let generated: (results: [SequenceResult], timings: GenerationTimings)
            do {
                generated = try Generator(model: cluster, tokenizer: tokenizer).generate(
                    prompts: prompts, options: options, onText: stream ? { _, text in self.standardOutput(text) } : nil)
            } catch {
                try cluster.finish()
                throw error
            }
            try cluster.finish()
            let results = generated.results.enumerated().map { WireResult(sequence: $0.offset, result: $0.element) }
            return (results, generated.timings, cluster.timer)
        }
    }

    /// Whole model on every rank; sequence s runs on rank s mod N; rank 0 gathers the results.
    private func generateDataParallel(_ model: GrokModel, _ tokenizer: (any Tokenizer)?, _ prompts: [[Int32]],
                                      _ options: GenerationOptions) throws -> ([WireResult], GenerationTimings, ForwardTimer) {
        let mine = prompts.indices.filter { $0 % comm.size == comm.rank }
        let stream = comm.rank == 0 && prompts.count == 1 && !configuration.json
        let timer = ForwardTimer()
        let generator = Generator(model: TimedModel(model: model, timer: timer), tokenizer: tokenizer)
        let (results, timings) = try agree { () -> ([SequenceResult], GenerationTimings) in
            if mine.isEmpty { return ([], GenerationTimings()) }   // more ranks than prompts
            return try generator.generate(prompts: mine.map { prompts[$0] }, options: options,
                                          onText: stream ? { _, text in self.standardOutput(text) } : nil)
        }
        let all = try gather(results.enumerated().map { WireResult(sequence: mine[$0.offset], result: $0.element) })
        return (all, timings, timer)
    }

    /// Runs `body` on every rank and makes every rank agree on its success: if any rank failed,
    /// each throws `RunFailure` carrying the lowest failing rank's one-line message.
    @discardableResult
    private func agree<T>(_ body: () throws -> T) throws -> T {
        var value: T?
        var message = ""
        do { value = try body() } catch { message = "\(error)" }
        let messages = try comm.allgatherBytes(Array(message.utf8))
        if let (rank, first) = messages.enumerated().first(where: { !$0.element.isEmpty }) {
            let text = String(decoding: first, as: UTF8.self)
            throw RunFailure(message: comm.size > 1 && rank != 0 ? "rank \(rank): \(text)" : text)
        }
        return value!
    }

    private func readPrompts(model: GrokModel, tokenizer: (any Tokenizer)?) throws -> [[Int32]] {
        func encode(_ text: String) throws -> [Int32] {
            guard let tokenizer else {
                throw GenerationError("\(model.source.path): the model carries no tokenizer (tokenizer.ggml.*); give --tokens")
            }
            // Special tokens written in the prompt (e.g. Grok-2's <|separator|>) become their ids, as in llama.cpp.
            return tokenizer.encode(text, addBOS: configuration.addBOS ?? tokenizer.addsBOSByDefault, parseSpecial: true)
        }
        let prompts: [[Int32]]
        switch configuration.prompt {
        case .text(let text):
            prompts = [try encode(text)]
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw GenerationError("--prompt-file: cannot read \(path)")
            }
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
            guard !lines.isEmpty else { throw GenerationError("--prompt-file: \(path) has no prompts (one per line)") }
            prompts = try lines.map { try encode(String($0)) }
        case .tokens(let ids):
            prompts = [ids]
        }
        // Checked here, on rank 0 and before the prompts are shared, so that the message numbers
        // prompts as the user wrote them.
        try Generator.check(prompts, against: model.config)
        return prompts
    }

    private func broadcastPrompts(_ prompts: [[Int32]]) throws -> [[Int32]] {
        var lengths = prompts.map { Int64($0.count) }
        try comm.broadcast(&lengths, root: 0)
        var flat = prompts.flatMap { $0 }
        try comm.broadcast(&flat, root: 0)
        var out: [[Int32]] = [], offset = 0
        for n in lengths.map(Int.init) { out.append(Array(flat[offset..<(offset + n)])); offset += n }
        return out
    }

    private func gather(_ mine: [WireResult]) throws -> [WireResult] {
        let encoded = try Array(JSONEncoder().encode(mine))
        let parts = try comm.allgatherBytes(encoded)
        return try parts.flatMap { try JSONDecoder().decode([WireResult].self, from: Data($0)) }.sorted { $0.sequence < $1.sequence }
    }

    private func report(_ results: [WireResult], timings: GenerationTimings, streamed: Bool, model: GrokModel) throws {
        if let path = configuration.logitsOut {
            let rows = results.map(\.logitRows).reduce(0, +)
            do {
                try NPY.write(results.flatMap(\.logits), shape: [rows, model.config.vocabularySize], to: path)
            } catch {
                throw RunFailure(message: "--logits-out: cannot write \(path): \(error.localizedDescription)")
            }
        }
        if configuration.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for r in results {
                let line = JSONLine(sequence: r.sequence, prompt_tokens: r.promptTokens, generated_tokens: r.generatedTokens,
                                    text: r.text, stop_reason: r.stopReason,
                                    timings: .init(prefill_seconds: timings.prefillSeconds, decode_seconds: timings.decodeSeconds,
                                                   prefill_tokens_per_second: timings.prefillTokensPerSecond,
                                                   decode_tokens_per_second: timings.decodeTokensPerSecond))
                standardOutput(String(decoding: try encoder.encode(line), as: UTF8.self) + "\n")
            }
        } else if streamed {
            standardOutput("\n")
        } else {
            for r in results { standardOutput("[\(r.sequence + 1)] \(r.text)\n") }
        }
        standardError(String(format: "prefill: %d tokens in %.3f s (%.1f tok/s); decode: %d tokens in %.3f s (%.1f tok/s); ranks: %d\n",
                             timings.promptTokens, timings.prefillSeconds, timings.prefillTokensPerSecond,
                             timings.generatedTokens, timings.decodeSeconds, timings.decodeTokensPerSecond, comm.size))
    }
}

/// What a loading thread shares with the thread reporting its progress.
private final class LoadState<T>: @unchecked Sendable {
    let lock = NSLock()
    var bytes = 0
    var outcome: Result<T, Error>?
}

/// A failure every rank agreed on; printed once by rank 0.
struct RunFailure: Error {
    let message: String
}

/// A sequence's result as it travels from its rank to rank 0.
struct WireResult: Codable {
    var sequence: Int
    var promptTokens: [Int32]
    var generatedTokens: [Int32]
    var text: String
    var stopReason: StopReason
    var logits: [Float]
    var logitRows: Int

    init(sequence: Int, result: SequenceResult) {
        self.sequence = sequence
        promptTokens = result.promptTokens
        generatedTokens = result.generatedTokens
        text = result.text
        stopReason = result.stopReason
        logits = result.logits
        logitRows = result.logitRows
    }
}

/// `--json`: one object per sequence.
struct JSONLine: Encodable {
    struct Timings: Encodable {
        var prefill_seconds: Double
        var decode_seconds: Double
        var prefill_tokens_per_second: Double
        var decode_tokens_per_second: Double
    }
    var sequence: Int
    var prompt_tokens: [Int32]
    var generated_tokens: [Int32]
    var text: String
    var stop_reason: StopReason
    var timings: Timings
}

extension CoordinatorRun {
    /// Cores this process may run on (its CPU affinity mask, `Cpus_allowed` in /proc/self/status
    /// on Linux), or nil where that is not known.
    static func allowedCores() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else { return nil }
        let mask = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
        return mask.reduce(0) { $0 + Int(String($1), radix: 16)!.nonzeroBitCount }
    }

    /// Gathers every rank's routing records to rank 0, which merges them and writes the trace.
    func writeRoutingTrace(_ model: GrokModel, to directory: String, sequenceOf: (Int) -> Int) throws {
        guard let recorder = model.routingTrace else { return }
        let parts = try comm.allgatherBytes(RoutingTraceFile.encode(recorder, sequenceOf: sequenceOf))
        try agree {
            guard comm.rank == 0 else { return }
            let trace = try RoutingTraceFile.merge(parts, model: configuration.modelPath ?? configuration.shardsPath ?? "embedded",
                                                   layers: model.config.layerCount, experts: model.config.expertCount,
                                                   expertsPerToken: model.config.expertsPerToken)
            do {
                try trace.write(to: directory)
            } catch {
                throw GenerationError("--trace-routing: cannot write \(directory): \(error.localizedDescription)")
            }
        }
    }

    /// Gathers every rank's statistics to rank 0 and prints / writes them.
    func reportStats(model: GrokModel, timer: ForwardTimer, wallSeconds: Double, loadSeconds: Double) throws {
        let mine = RankStats(rank: comm.rank, model: model, stats: stats, timer: timer, kvCacheBytes: timer.kvCacheBytes,
                             wallSeconds: wallSeconds, loadSeconds: loadSeconds)
        let parts = try comm.allgatherBytes(Array(try JSONEncoder().encode(mine)))
        guard comm.rank == 0 else { return }
        let all = try parts.map { try JSONDecoder().decode(RankStats.self, from: Data($0)) }
        if configuration.stats { standardError(RankStats.table(all)) }
        if let path = configuration.statsJSON {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do {
                try encoder.encode(all).write(to: URL(fileURLWithPath: path))
            } catch {
                throw RunFailure(message: "--stats-json: cannot write \(path): \(error.localizedDescription)")
            }
        }
    }
}
