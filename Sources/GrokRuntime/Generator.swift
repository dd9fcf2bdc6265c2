import Foundation
import GrokModel
import GrokTensor
import GrokTokenizer

/// What to generate: limits and stopping rules shared by every sequence of a batch.
public struct GenerationOptions: Sendable {
    public var maxTokens: Int = 64
    public var sampler = SamplerOptions()
    public var stopOnEOS = true
    public var stopStrings: [String] = []
    /// Tokens per prefill forward pass (prompts are processed in chunks of this many tokens).
    public var prefillChunk = 512
    /// Keep every processed position's logits (for `--logits-out`).
    public var recordLogits = false

    public init() {}
}

/// Why a sequence ended.
public enum StopReason: String, Sendable, Codable {
    case eos, stop, length, context
}

/// One finished sequence.
public struct SequenceResult: Sendable {
    public var promptTokens: [Int32]
    public var generatedTokens: [Int32] = []
    public var text = ""
    public var stopReason = StopReason.length
    /// Logits of every position processed, in order: the prompt's T positions, then each
    /// generated token fed back `[rows, vocabulary]`; only with `recordLogits`.
    public var logits: [Float] = []
    public var logitRows = 0
}

/// Wall-clock figures of one `generate` call.
public struct GenerationTimings: Sendable, Codable {
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    public var promptTokens = 0
    public var generatedTokens = 0
    public var decodeSteps = 0
    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(generatedTokens) / decodeSeconds : 0 }
}

public struct GenerationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The generation loop: a batched prefill of every prompt, then decode steps that feed one token
/// per unfinished sequence through the model together.
public final class Generator {
    public let model: LanguageModel
    public let tokenizer: (any Tokenizer)?

    public init(model: LanguageModel, tokenizer: (any Tokenizer)?) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Every prompt is non-empty, within the vocabulary and no longer than the context; the first
    /// violation is thrown as one line naming the prompt (numbered from 1).
    public static func check(_ prompts: [[Int32]], against config: ModelConfig) throws {
        guard !prompts.isEmpty else { throw GenerationError("no prompt: give --prompt, --prompt-file or --tokens") }
        for (i, p) in prompts.enumerated() {
            if let bad = p.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
                throw GenerationError("prompt \(i + 1): token id \(bad) is outside the vocabulary (0..<\(config.vocabularySize))")
            }
            guard !p.isEmpty else { throw GenerationError("prompt \(i + 1) is empty (0 tokens)") }
            guard p.count <= config.contextLength else {
                throw GenerationError("prompt \(i + 1) has \(p.count) tokens, longer than the model's context length \(config.contextLength)")
            }
        }
    }

    /// Generates for every prompt. `onText(sequence, text)` receives each sequence's text as it
    /// becomes final (never a partial UTF-8 character, never part of a stop string).
    public func generate(prompts: [[Int32]], options: GenerationOptions,
                         onText: ((Int, String) -> Void)? = nil) throws -> (results: [SequenceResult], timings: GenerationTimings) {
        try options.sampler.validate()
        guard options.maxTokens >= 0 else { throw GenerationError("--max-tokens: expected an integer ≥ 0, got \(options.maxTokens)") }
        try Generator.check(prompts, against: model.config)
        let context = model.config.contextLength
        let capacity = min(context, prompts.map(\.count).max()! + options.maxTokens)
        let cache = try model.makeCache(slots: prompts.count, capacity: capacity)
        let vocabulary = model.config.vocabularySize
        var results = prompts.map { SequenceResult(promptTokens: $0) }
        var samplers = prompts.indices.map { Sampler(options: options.sampler, stream: UInt64($0)) }
        var texts = prompts.indices.map { _ in TextStream(tokenizer: tokenizer, stops: options.stopStrings) }
        var timings = GenerationTimings()
        timings.promptTokens = prompts.map(\.count).reduce(0, +)

        // Prefill, in chunks of whole batches of positions; the last position of each prompt gives
        // its first sampled token.
        var lastLogits = [[Float]](repeating: [], count: prompts.count)
        let start = Date()
        var pending = prompts.indices.flatMap { s in prompts[s].indices.map { (s, $0) } }[...]
        while !pending.isEmpty {
            let chunk = pending.prefix(options.prefillChunk)
            pending = pending.dropFirst(chunk.count)
            let batch = ForwardBatch(tokens: chunk.map { prompts[$0.0][$0.1] }, slots: chunk.map(\.0), positions: chunk.map(\.1))
            let rows = options.recordLogits ? Array(0..<chunk.count)
                : chunk.indices.filter { chunk[$0].1 == prompts[chunk[$0].0].count - 1 }.map { $0 - chunk.startIndex }
            let logits = try model.forward(batch, cache: cache, logitRows: rows)
            for (i, row) in rows.enumerated() {
                let (s, position) = chunk[chunk.startIndex + row]
                let values = Array(UnsafeBufferPointer(start: logits[row: i], count: vocabulary))
                if options.recordLogits { results[s].logits += values; results[s].logitRows += 1 }
                if position == prompts[s].count - 1 { lastLogits[s] = values }
            }
        }
        timings.prefillSeconds = Date().timeIntervalSince(start)

        // Decode: sample from the last logits, feed the token back, until each sequence stops.
        let decodeStart = Date()
        var active = Array(prompts.indices)
        if options.maxTokens == 0 { active = [] }
        while !active.isEmpty {
            var fed: [Int] = []
            for s in active {
                let history = prompts[s] + results[s].generatedTokens
                let token = lastLogits[s].withUnsafeBufferPointer { samplers[s].sample($0, history: history) }
                results[s].generatedTokens.append(token)
                timings.generatedTokens += 1
                var reason: StopReason?
                if options.stopOnEOS, let eos = tokenizer?.eosID, token == eos {
                    reason = .eos
                } else if texts[s].push(token) {
                    reason = .stop
                } else if results[s].generatedTokens.count >= options.maxTokens {
                    reason = .length
                } else if prompts[s].count + results[s].generatedTokens.count >= cache.capacity {
                    reason = .context
                }
                let emitted = reason == nil ? texts[s].takeReady() : texts[s].finish()
                if !emitted.isEmpty { onText?(s, emitted) }
                if let reason { results[s].stopReason = reason } else { fed.append(s) }
            }
            active = fed
            if active.isEmpty { break }
            let batch = ForwardBatch(tokens: active.map { results[$0].generatedTokens.last! }, slots: active,
                                     positions: active.map { prompts[$0].count + results[$0].generatedTokens.count - 1 })
            let logits = try model.forward(batch, cache: cache, logitRows: Array(active.indices))
            timings.decodeSteps += 1
            for (i, s) in active.enumerated() {
                lastLogits[s] = Array(UnsafeBufferPointer(start: logits[row: i], count: vocabulary))
                if options.recordLogits { results[s].logits += lastLogits[s]; results[s].logitRows += 1 }
            }
        }
        timings.decodeSeconds = Date().timeIntervalSince(decodeStart)
        for s in results.indices { results[s].text = texts[s].text }
        return (results, timings)
    }
}

/// A sequence's generated text: decodes tokens without splitting UTF-8 characters and holds back
/// any tail that could still become a stop string.
struct TextStream {
    private var decoder: StreamingDecoder?
    private let stops: [String]
    private(set) var text = ""       // final text (truncated at a stop string)
    private var pending = ""         // decoded but not yet released
    private var stopped = false

    init(tokenizer: (any Tokenizer)?, stops: [String]) {
        decoder = tokenizer.map { StreamingDecoder(tokenizer: $0, stripLeadingSpace: false) }  // a continuation keeps its first space
        self.stops = stops.filter { !$0.isEmpty }
    }

    /// Adds a token; returns true when the text now contains a stop string.
    mutating func push(_ token: Int32) -> Bool {
        guard !stopped, decoder != nil else { return false }
        pending += decoder!.push(token)
        for stop in stops {
            if let range = pending.range(of: stop) {
                pending = String(pending[..<range.lowerBound])
                stopped = true
                return true
            }
        }
        return false
    }

    /// Releases the text that can no longer be the start of a stop string.
    mutating func takeReady() -> String {
        let hold = stops.map { $0.count - 1 }.max() ?? 0
        var keep = 0
        for length in stride(from: min(hold, pending.count), to: 0, by: -1) {
            let tail = String(pending.suffix(length))
            if stops.contains(where: { $0.hasPrefix(tail) }) { keep = length; break }
        }
        let ready = String(pending.dropLast(keep))
        pending = String(pending.suffix(keep))
        text += ready
        return ready
    }

    /// Releases everything (the sequence has ended).
    mutating func finish() -> String {
        if !stopped, decoder != nil { pending += decoder!.finish() }
        let rest = pending
        pending = ""
        text += rest
        return rest
    }
}
