// grok-coordinator: the program mpirun launches on every rank. Rank 0 reads the prompts,
// tokenizes, samples and prints; every rank loads the model and runs its share.
import ArgumentParser
import Foundation
import GrokComm
import GrokRuntime
import GrokTensor

struct Coordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grok-coordinator",
        abstract: "Generate text with a Grok-1 or Grok-2 GGUF model; launched by mpirun on every rank.",
        discussion: "With no --model it runs an embedded default: a tiny Grok-1 synthesized deterministically.")

    @Option(help: "The model: a GGUF file (llama.cpp's grok layout), the official Grok-1 ckpt-0 directory, a Grok-2 safetensors release or a Hugging Face Grok-1 port directory. Default: the embedded tiny model.")
    var model: String?
    @Option(help: "Layout file (see Topologies/README.md): each rank holds its shard and all ranks run one model. Without it, every rank holds the whole model and prompts are shared out.")
    var topology: String?
    @Option(help: "Shard directory written by `grok shard`: each rank loads only its own shard (the layout is the one it was cut for; --topology, if given, must match).")
    var shards: String?
    @Option(help: "For nodes without shared storage: this rank reads --shards (or cuts --model for --topology) and sends every rank its shard over MPI.")
    var distributeFrom: Int?
    @Option(help: "With --distribute-from: keep the received shard here (a --shards directory for the next start). Default: a temporary directory, removed.")
    var shardCache: String?
    @Option(help: "Prompt text.")
    var prompt: String?
    @Option(help: "File with one prompt per line, generated together as a batch.")
    var promptFile: String?
    @Option(help: "Prompt as comma-separated token ids, e.g. 1,2,3.")
    var tokens: String?
    @Option(help: "Tokens to generate per sequence.")
    var maxTokens = 64
    @Option(help: "Sampling temperature; 0 = greedy.")
    var temperature: Float = 0.8
    @Option(help: "Top-k (0 = off).")
    var topK = 40
    @Option(help: "Top-p, nucleus (1 = off).")
    var topP: Float = 0.95
    @Option(help: "Min-p relative to the most likely token (0 = off).")
    var minP: Float = 0.05
    @Option(help: "Repetition penalty (1 = off).")
    var repeatPenalty: Float = 1.0
    @Option(help: "Tokens considered by the repetition penalty.")
    var repeatLastN = 64
    @Option(help: "Stop when the generated text contains this string (repeatable).")
    var stop: [String] = []
    @Flag(help: "Do not stop at the end-of-sequence token.")
    var ignoreEOS = false
    @Option(help: "Random seed (default: random; printed with --json).")
    var seed: UInt64?
    @Option(help: "Threads per rank.")
    var threads = 1
    @Option(help: "Prepend the BOS token (default: the file's tokenizer.ggml.add_bos_token).")
    var addBOS: Bool?
    @Flag(help: "Print one JSON object per sequence at the end instead of streaming text.")
    var json = false
    @Option(help: "Write every processed position's logits as a float32 .npy [rows, vocabulary].")
    var logitsOut: String?
    @Flag(help: "At the end, print per-rank time in compute and each collective, bytes and messages sent, tokens per local expert and peak memory (stderr).")
    var stats = false
    @Option(help: "Write the per-rank statistics as JSON to this file.")
    var statsJSON: String?
    @Option(help: "With --topology: every N forward steps, re-place the experts of expert-parallel stages from the routing seen since the last time, moving weights between ranks over MPI (reports moved bytes and imbalance before/after on stderr).")
    var rebalanceEvery: Int?
    @Option(help: "Strategy for --rebalance-every (a grok place strategy).") var rebalanceStrategy = "eplb"
    @Option(help: "Spare expert slots per layer for --rebalance-every (EPLB's redundant experts).") var rebalanceRedundant = 0
    @Option(help: "Write the routing trace to this directory: every processed token's experts and gates in every layer, as NumPy files (Launch/routing-trace.md).")
    var traceRouting: String?

    func validate() throws {
        let sources = [prompt != nil, promptFile != nil, tokens != nil].filter { $0 }.count
        if sources > 1 { throw ValidationError("give only one of --prompt, --prompt-file, --tokens") }
        if let rebalanceEvery, rebalanceEvery < 1 { throw ValidationError("--rebalance-every: expected ≥ 1, got \(rebalanceEvery)") }
        if rebalanceEvery != nil && topology == nil && shards == nil { throw ValidationError("--rebalance-every needs --topology (expert-parallel stages)") }
        if shards != nil && model != nil { throw ValidationError("give --model or --shards, not both (a shard directory carries its model)") }
        if maxTokens < 0 { throw ValidationError("--max-tokens: expected an integer ≥ 0, got \(maxTokens)") }
        if threads < 1 || threads > 512 { throw ValidationError("--threads: expected 1…512, got \(threads)") }
        if let tokens, parseTokens(tokens) == nil {
            throw ValidationError("--tokens: expected comma-separated non-negative integers, got \"\(tokens)\"")
        }
    }

    func parseTokens(_ text: String) -> [Int32]? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { Int32($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
        return parts.map { $0! }
    }

    func runConfiguration() -> RunConfiguration {
        var c = RunConfiguration()
        c.modelPath = model
        if let prompt { c.prompt = .text(prompt) }
        if let promptFile { c.prompt = .file(promptFile) }
        if let tokens { c.prompt = .tokens(parseTokens(tokens)!) }
        c.generation.maxTokens = maxTokens
        c.generation.sampler.temperature = temperature
        c.generation.sampler.topK = topK
        c.generation.sampler.topP = topP
        c.generation.sampler.minP = minP
        c.generation.sampler.repetitionPenalty = repeatPenalty
        c.generation.sampler.repetitionWindow = repeatLastN
        c.generation.sampler.seed = seed ?? UInt64.random(in: 0...UInt64.max)
        c.generation.stopStrings = stop
        c.generation.stopOnEOS = !ignoreEOS
        c.threads = threads
        c.json = json
        c.logitsOut = logitsOut
        c.addBOS = addBOS
        c.topologyPath = topology
        c.shardsPath = shards
        c.distributeFrom = distributeFrom
        c.shardCache = shardCache
        c.stats = stats
        c.statsJSON = statsJSON
        c.rebalanceEvery = rebalanceEvery
        c.rebalanceStrategy = rebalanceStrategy
        c.rebalanceRedundant = rebalanceRedundant
        c.traceRoutingPath = traceRouting
        return c
    }
}

/// The rank mpirun gave this process, read before MPI_Init so that a bad flag is reported by
/// rank 0 alone.
let launcherRank = Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"]
    ?? ProcessInfo.processInfo.environment["PMI_RANK"] ?? "0") ?? 0

let command: Coordinator
do {
    let parsed = try Coordinator.parseAsRoot()
    guard let coordinator = parsed as? Coordinator else {   // `help`: ArgumentParser's own help command
        if launcherRank == 0 { print(Coordinator.helpMessage()) }
        exit(0)
    }
    command = coordinator
} catch {
    let code = Coordinator.exitCode(for: error)
    if launcherRank == 0 {
        if code == .success {
            print(Coordinator.fullMessage(for: error))
        } else {
            FileHandle.standardError.write(Data("error: \(Coordinator.message(for: error))\n".utf8))
        }
    }
    exit(code.rawValue)
}

let communicator: Communicator
if MPICommunicator.isLaunchedByMPI {
    do {
        communicator = try MPICommunicator()
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        exit(1)
    }
} else {
    communicator = SingleProcessCommunicator()
}
let status = CoordinatorRun(command.runConfiguration(), communicator: communicator).execute()
(communicator as? MPICommunicator)?.finalize()
exit(status)
