import XCTest
@testable import GrokTokenizer

/// Tokenizers shared by the tests (built once per process).
enum Fixtures {
    static let spm512: any Tokenizer = try! makeTokenizer(SyntheticVocabulary.sentencePiece(size: 512))
    static let spm4096: any Tokenizer = try! makeTokenizer(SyntheticVocabulary.sentencePiece(size: 4096))
    static let bpe512: any Tokenizer = try! makeTokenizer(SyntheticVocabulary.byteLevelBPE(size: 512))
    static let bpe4096: any Tokenizer = try! makeTokenizer(SyntheticVocabulary.byteLevelBPE(size: 4096))
    static let all: [(String, any Tokenizer)] = [("spm512", spm512), ("spm4096", spm4096),
                                                 ("bpe512", bpe512), ("bpe4096", bpe4096)]

    static let referenceGrok1Vocabulary = TokenizerVocabulary(
        model: "llama", pre: "default", tokens: ReferenceGrok1Vocabulary.tokens,
        scores: ReferenceGrok1Vocabulary.scores, tokenTypes: ReferenceGrok1Vocabulary.tokenTypes,
        bosID: 1, eosID: 2, unknownID: 3, paddingID: 0, addBOS: false)
    static let referenceGrok1: any Tokenizer = try! makeTokenizer(referenceGrok1Vocabulary)
}

/// SplitMix64: a tiny seeded generator so the "random" strings are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum Strings {
    /// Hand-picked inputs: ASCII, whitespace runs, digits, emoji, CJK, combining marks, RTL, the empty string.
    static let fixed: [String] = [
        "", " ", "  ", "\n", "\t", "a", "Hello world", "Hello, World!", "The quick brown fox jumps over the lazy dog.",
        "  two leading spaces", "trailing spaces   ", "a  b   c    d     e", "line one\nline two\n\nline four\n\n\n\n\n",
        "\ttab\t\ttabs\t\t\t", " \t \n \r\n mixed \u{0B}\u{0C} whitespace", "\r\n\r\n", "digits 0123456789 and 3.14159, 1,000,000",
        "2024-03-15T09:30:00Z", "emoji 🙂😀🎉👍🏽❤️🚀 and flags 🇫🇷🇯🇵 and family 👨‍👩‍👧‍👦",
        "中文日本語한국어 — CJK without spaces", "小灯塔矗立在港口的边缘。", "ありがとうございます",
        "combining: e\u{301} a\u{308} n\u{303} \u{301}leading mark", "precomposed: é ä ñ Å",
        "RTL: שלום עולם and مرحبا بالعالم", "mixed ltr עברית rtl 123",
        "it's they're we've I'm you'll he'd IT'S", "<|separator|>", "Human: hi<|separator|>\n\nAssistant:",
        "[BOS][EOS][PAD][UNK]", "<0x41> looks like a byte piece", "func f(x: Int) -> Int {\n    return x * 2\n}\n",
        "\u{0}\u{1}\u{7F} control characters", "\u{FEFF}BOM and \u{200B}zero width \u{200D}joiner",
        "math ∑∫√∞ ≤≥≠ ±×÷", "Ωmega ǅ ﬁ ligature", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 astral 𐍈 𝄞", "ideographic\u{3000}space and nbsp\u{A0}here",
        String(repeating: "a", count: 300), String(repeating: " ", count: 40), String(repeating: "\n", count: 25),
        String(repeating: "ab ", count: 50), String(repeating: "🙂", count: 20),
    ]

    /// Random strings drawn from a mix of scripts and whitespace (never U+2581, which SentencePiece reserves
    /// for the space).
    static func random(count: Int, seed: UInt64) -> [String] {
        var g = SeededGenerator(seed: seed)
        let pools: [[ClosedRange<UInt32>]] = [
            [0x20...0x7E], [0x20...0x20], [0x0A...0x0A, 0x09...0x09, 0x0D...0x0D], [0x30...0x39],
            [0xA0...0x24F], [0x300...0x36F], [0x370...0x52F], [0x590...0x6FF], [0x900...0x97F],
            [0x3040...0x30FF], [0x4E00...0x9FFF], [0xAC00...0xD7A3], [0x1F300...0x1FAFF],
            [0x0...0x1F], [0x2000...0x2BFF], [0xE000...0xFFFD], [0x10000...0x10FFFF],
        ]
        var out: [String] = []
        for _ in 0..<count {
            let length = Int.random(in: 0...40, using: &g)
            var v = String.UnicodeScalarView()
            while v.count < length {
                let pool = pools[Int.random(in: 0..<pools.count, using: &g)]
                let range = pool[Int.random(in: 0..<pool.count, using: &g)]
                let value = UInt32.random(in: range, using: &g)
                guard value != 0x2581, let u = Unicode.Scalar(value) else { continue }
                v.append(u)
            }
            out.append(String(v))
        }
        return out
    }
}
