import Foundation

/// How the next token is chosen from a row of logits. `temperature == 0` is greedy (argmax).
/// Otherwise, in this order (vLLM's and Hugging Face's): repetition penalty, temperature, top-k,
/// top-p (nucleus), min-p (relative to the most likely token), then a draw from the rest.
public struct SamplerOptions: Sendable, Equatable, Codable {
    public var temperature: Float = 0.8
    public var topK: Int = 40              // 0 = off
    public var topP: Float = 0.95          // 1 = off
    public var minP: Float = 0.05          // 0 = off
    public var repetitionPenalty: Float = 1.0   // 1 = off; CTRL rule: positive logits ÷ p, negative × p
    public var repetitionWindow: Int = 64       // last n tokens (prompt and generated) penalised
    public var seed: UInt64 = 0

    public init() {}

    /// Argmax with no penalty.
    public static var greedy: SamplerOptions { var o = SamplerOptions(); o.temperature = 0; return o }

    /// Throws a one-line message naming the bad option.
    public func validate() throws {
        func bad(_ flag: String, _ expected: String, _ value: Any) -> SamplerError {
            SamplerError(description: "--\(flag): expected \(expected), got \(value)")
        }
        guard temperature >= 0 && temperature.isFinite else { throw bad("temperature", "a number ≥ 0", temperature) }
        guard topK >= 0 else { throw bad("top-k", "an integer ≥ 0", topK) }
        guard topP > 0 && topP <= 1 else { throw bad("top-p", "a number in (0, 1]", topP) }
        guard minP >= 0 && minP < 1 else { throw bad("min-p", "a number in [0, 1)", minP) }
        guard repetitionPenalty > 0 && repetitionPenalty.isFinite else { throw bad("repeat-penalty", "a number > 0", repetitionPenalty) }
        guard repetitionWindow >= 0 else { throw bad("repeat-last-n", "an integer ≥ 0", repetitionWindow) }
    }
}

public struct SamplerError: Error, CustomStringConvertible {
    public let description: String
}

/// A seeded sampler; one per sequence so that a batch gives each sequence the draws it would get alone.
public struct Sampler {
    public let options: SamplerOptions
    private var rng: SplitMix64

    public init(options: SamplerOptions, stream: UInt64 = 0) {
        self.options = options
        rng = SplitMix64(seed: options.seed &+ stream &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Picks the next token from `logits` given the tokens seen so far (for the penalty).
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>, history: [Int32]) -> Int32 {
        var values = Array(logits)
        if options.repetitionPenalty != 1 {
            for token in Set(history.suffix(options.repetitionWindow)) where Int(token) < values.count {
                let i = Int(token)
                values[i] = values[i] > 0 ? values[i] / options.repetitionPenalty : values[i] * options.repetitionPenalty
            }
        }
        if options.temperature == 0 { return Int32(Sampler.argmax(values)) }

        // Candidates sorted by logit, best first (ties: lower id first); with top-k only the k best
        // are kept while scanning, instead of sorting the whole vocabulary every token.
        func better(_ a: Int, _ b: Int) -> Bool { values[a] > values[b] || (values[a] == values[b] && a < b) }
        var order: [Int]
        if options.topK > 0 && options.topK < values.count {
            order = []
            order.reserveCapacity(options.topK + 1)
            for i in values.indices where order.count < options.topK || better(i, order[order.count - 1]) {
                let at = order.firstIndex { better(i, $0) } ?? order.count
                order.insert(i, at: at)
                if order.count > options.topK { order.removeLast() }
            }
        } else {
            order = Array(values.indices).sorted(by: better)
        }
        let top = values[order[0]] / options.temperature
        var probabilities = order.map { exp(values[$0] / options.temperature - top) }
        let total = probabilities.reduce(0, +)
        probabilities = probabilities.map { $0 / total }
        if options.topP < 1 {
            var cumulative: Float = 0, keep = 0
            while keep < probabilities.count { cumulative += probabilities[keep]; keep += 1; if cumulative >= options.topP { break } }
            order.removeLast(order.count - keep); probabilities.removeLast(probabilities.count - keep)
        }
        if options.minP > 0 {
            let threshold = probabilities[0] * options.minP
            let keep = probabilities.firstIndex { $0 < threshold } ?? probabilities.count
            order.removeLast(order.count - keep); probabilities.removeLast(probabilities.count - keep)
        }
        let mass = probabilities.reduce(0, +)
        var draw = Float(Double(rng.next() >> 11) / Double(1 << 53)) * mass
        for (i, p) in probabilities.enumerated() {
            draw -= p
            if draw < 0 { return Int32(order[i]) }
        }
        return Int32(order[order.count - 1])
    }

    /// Index of the largest value; ties go to the lowest index.
    public static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and the same sequence on every platform.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
