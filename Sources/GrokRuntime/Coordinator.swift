import Foundation
import GrokCheckpoint
import GrokComm
import GrokModel
import GrokTensor
import GrokTokenizer

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

    public init() {}
}

/// One run of `grok-coordinator` on one rank. SPMD: every rank loads and validates the model;
/// rank 0 reads and tokenizes the prompts and broadcasts them. Until the distributed layouts
/// arrive, ranks share the batch data-parallel (sequence s runs on rank s mod N, each rank holding
/// the whole model); rank 0 gathers the results and prints them. Any failure on any rank is
/// reported once, on rank 0, and every rank returns non-zero.
public final class CoordinatorRun {
    let configuration: RunConfiguration
    let comm: Communicator
    let standardOutput: (String) -> Void
    let standardError: (String) -> Void

    public init(_ configuration: RunConfiguration, communicator: Communicator,
                standardOutput: @escaping (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) },
                standardError: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.configuration = configuration
        self.comm = communicator
        self.standardOutput = standardOutput
        self.standardError = standardError
    }

    /// Runs to completion; returns the process exit code (the same on every rank).
    public func execute() -> Int32 {
        do {
            // 1. Every rank: open and validate the model.
            let loaded = try agree { () -> (GrokModel, (any Tokenizer)?) in
                let file = try configuration.modelPath.map { try GGUFFile(path: $0) } ?? ModelSource.embeddedDefault()
                let pool = ThreadPool(threads: configuration.threads)
                BLAS.setThreads(1)  // our pool parallelises; mpirun's binding would change OpenBLAS's default
                return (try GrokModel(file: file, pool: pool), try ModelSource.tokenizer(of: file))
            }
            let (model, tokenizer) = loaded
            // 2. Rank 0: prompts → token ids, checked against the vocabulary and the context.
            var prompts = try agree { comm.rank == 0 ? try readPrompts(model: model, tokenizer: tokenizer) : [] }
            prompts = try broadcastPrompts(prompts)
            // 3. Each rank generates its sequences.
            let mine = prompts.indices.filter { $0 % comm.size == comm.rank }
            let stream = comm.rank == 0 && prompts.count == 1 && !configuration.json
            var options = configuration.generation
            options.recordLogits = configuration.logitsOut != nil
            let generator = Generator(model: model, tokenizer: tokenizer)
            let (results, timings) = try agree { () -> ([SequenceResult], GenerationTimings) in
                if mine.isEmpty { return ([], GenerationTimings()) }   // more ranks than prompts
                return try generator.generate(prompts: mine.map { prompts[$0] }, options: options,
                                              onText: stream ? { _, text in self.standardOutput(text) } : nil)
            }
            // 4. Rank 0 gathers and prints.
            let all = try gather(results.enumerated().map { WireResult(sequence: mine[$0.offset], result: $0.element) })
            if comm.rank == 0 { try report(all, timings: timings, streamed: stream, model: model) }
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

    /// Runs `body` on every rank and makes every rank agree on its success: if any rank failed,
    /// each throws `RunFailure` carrying the lowest failing rank's one-line message.
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
                throw GenerationError("\(model.file.path): the model carries no tokenizer (tokenizer.ggml.*); give --tokens")
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
