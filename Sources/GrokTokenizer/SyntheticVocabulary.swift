// Deterministic synthetic vocabularies for test models (written into synthetic GGUFs by `grok synth`).
// Both are learned by a real BPE training loop over SyntheticCorpus, so encodings look like a real
// tokenizer's: frequent English words are single tokens, rare words and other scripts split into pieces.

public enum SyntheticVocabulary {
    /// The user-defined pieces of the synthetic Grok-1 style vocabulary (ids 4...), modelled on the real
    /// Grok-1 tokenizer's (which has newline runs x1..10, digits, tab runs x1..8, space runs x2..16,
    /// <|separator|>, <|mask|>, <|control1..20|>), shortened to fit small vocabularies.
    public static let sentencePieceUserDefined: [String] =
        ["\n", "\n\n", "\n\n\n", "\n\n\n\n"]
        + (0...9).map { String($0) }
        + ["\t", "\t\t", "  ", "   ", "    "]
        + ["<|separator|>", "<|mask|>", "<|control1|>", "<|control2|>", "<|control3|>"]

    /// Grok-1 style: ids 0-3 [PAD] [BOS] [EOS] [UNK] (control/control/control/unknown), then user-defined pieces
    /// like the real Grok-1 tokenizer (newline runs, digits 0-9, tab runs, space runs, <|separator|>, <|mask|>,
    /// a few <|controlN|>) with type 4, then the 256 byte pieces <0x00>..<0xFF> (type 6), then normal pieces with
    /// score -(id - firstNormal): first the merges learned on the corpus (in the order they were learned), then
    /// the single characters (most frequent first), as in a real SentencePiece BPE model. At most half of the
    /// normal pieces are single characters; characters left out use byte fallback. When the corpus has no pair
    /// left to merge, the rest is filled with further single Unicode characters.
    /// `size` must be at least 300.
    public static func sentencePiece(size: Int) -> TokenizerVocabulary {
        precondition(size >= 300, "SyntheticVocabulary.sentencePiece: size must be at least 300, got \(size)")
        var tokens = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]
        var types: [Int32] = [3, 3, 3, 2]
        for p in sentencePieceUserDefined { tokens.append(p); types.append(4) }
        for b in 0...255 { tokens.append(bytePieceName(UInt8(b))); types.append(6) }
        let firstNormal = tokens.count
        let budget = size - firstNormal

        // Training words, the way SentencePiece sees them: each line gets the dummy prefix, spaces become "▁",
        // user-defined pieces are cut out, and words start at "▁" or where the kind of character changes.
        var ud = PieceMatcher()
        for (i, p) in sentencePieceUserDefined.enumerated() {
            ud.insert(p.unicodeScalars.map { $0.value == 0x20 ? 0x2581 : $0.value }, id: Int32(i))
        }
        var wordCounts: [[UInt32]: Int] = [:]
        for line in SyntheticCorpus.text.split(separator: "\n", omittingEmptySubsequences: true) {
            var s: [UInt32] = [0x2581]
            for u in line.unicodeScalars { s.append(u.value == 0x20 ? 0x2581 : u.value) }
            var segments: [Segment] = []
            splitOnPieces(s, 0..<s.count, matcher: ud, into: &segments)
            for case .text(let r) in segments {
                var start = r.lowerBound
                for i in (r.lowerBound + 1)..<(r.upperBound + 1) {
                    let boundary = i == r.upperBound || s[i] == 0x2581
                        || (s[i - 1] != 0x2581 && wordClass(s[i - 1]) != wordClass(s[i]))
                    if boundary {
                        wordCounts[Array(s[start..<i]), default: 0] += 1
                        start = i
                    }
                }
            }
        }
        let words = wordCounts.keys.sorted { $0.lexicographicallyPrecedes($1) }

        // Characters by frequency; the most frequent ones (at most half the budget) become pieces.
        var charCounts: [UInt32: Int] = [:]
        for w in words { for c in w { charCounts[c, default: 0] += wordCounts[w]! } }
        let chars = charCounts.keys.sorted { (charCounts[$0]!, $1) > (charCounts[$1]!, $0) }
        let keptCount = min(chars.count, max(1, budget / 2))
        var symbolOf: [UInt32: Int32] = [:]
        for (i, c) in chars.enumerated() { symbolOf[c] = Int32(i) }
        var symbolText: [[UInt32]] = chars.map { [$0] }
        var symbolID: [[UInt32]: Int32] = [:]
        for (i, c) in chars.enumerated() { symbolID[[c]] = Int32(i) }
        let blocked = chars.indices.map { $0 >= keptCount }

        var trainer = BPETrainer(words: words.map { $0.map { symbolOf[$0]! } },
                                 counts: words.map { wordCounts[$0]! }, blocked: blocked)
        var learned: [[UInt32]] = []
        while learned.count < budget - keptCount {
            let step = trainer.step { l, r in
                let text = symbolText[Int(l)] + symbolText[Int(r)]
                if let existing = symbolID[text] { return existing }
                let id = Int32(symbolText.count)
                symbolText.append(text)
                symbolID[text] = id
                learned.append(text)
                return id
            }
            if step == nil { break }
        }

        var normal: [[UInt32]] = learned
        normal += chars.prefix(keptCount).map { [$0] }
        // Corpus exhausted: the remaining corpus characters, then further common Unicode characters.
        var present = Set(chars.prefix(keptCount))
        for p in sentencePieceUserDefined where p.unicodeScalars.count == 1 { present.insert(p.unicodeScalars.first!.value) }
        for c in chars.dropFirst(keptCount) where normal.count < budget {
            normal.append([c])
            present.insert(c)
        }
        var extra = extraCharacters.makeIterator()
        while normal.count < budget, let c = extra.next() {
            if present.insert(c).inserted { normal.append([c]) }
        }
        precondition(normal.count == budget, "SyntheticVocabulary.sentencePiece: ran out of characters")

        for p in normal {
            var v = String.UnicodeScalarView()
            for c in p { v.append(Unicode.Scalar(c)!) }
            tokens.append(String(v))
            types.append(1)
        }
        var scores = [Float](repeating: 0, count: tokens.count)
        for id in firstNormal..<tokens.count { scores[id] = -Float(id - firstNormal) }
        return TokenizerVocabulary(model: "llama", pre: "default", tokens: tokens, scores: scores,
                                   tokenTypes: types, merges: nil, bosID: 1, eosID: 2, unknownID: 3, paddingID: 0,
                                   addBOS: false, addSpacePrefix: true)
    }

    /// Grok-2 style byte-level BPE: "<|pad|>"=0, "<|separator|>"=1, "<|eos|>"=2, "<|mask|>"=3 (control; eos id 2
    /// as in Grok-2; no BOS), then the 256 byte tokens in GPT-2 byte-to-unicode order (type normal), then the
    /// merges learned by BPE training over the corpus pre-tokenized with the grok-2 scanner, up to `size`. When
    /// the corpus has no pair left to merge, the rest is filled with "<|reserved_N|>" control tokens.
    /// `size` must be at least 300.
    public static func byteLevelBPE(size: Int) -> TokenizerVocabulary {
        precondition(size >= 300, "SyntheticVocabulary.byteLevelBPE: size must be at least 300, got \(size)")
        var tokens = ["<|pad|>", "<|separator|>", "<|eos|>", "<|mask|>"]
        var types: [Int32] = [3, 3, 3, 3]
        var byteToken = [Int32](repeating: 0, count: 256)
        for b in GPT2Bytes.order {
            byteToken[Int(b)] = Int32(tokens.count)
            tokens.append(GPT2Bytes.string(for: [b]))
            types.append(1)
        }
        var tokenID: [String: Int32] = [:]
        for (i, t) in tokens.enumerated() { tokenID[t] = Int32(i) }

        let scalars = SyntheticCorpus.text.unicodeScalars.map { $0.value }
        var wordCounts: [[UInt8]: Int] = [:]
        grok2PreTokenize(scalars, 0..<scalars.count) { r in
            var bytes: [UInt8] = []
            for k in r { appendUTF8(scalars[k], to: &bytes) }
            wordCounts[bytes, default: 0] += 1
        }
        let words = wordCounts.keys.sorted { $0.lexicographicallyPrecedes($1) }
        var trainer = BPETrainer(words: words.map { $0.map { byteToken[Int($0)] } },
                                 counts: words.map { wordCounts[$0]! }, blocked: [])
        var merges: [String] = []
        while tokens.count < size {
            let step = trainer.step { l, r in
                let left = tokens[Int(l)], right = tokens[Int(r)]
                merges.append(left + " " + right)
                if let existing = tokenID[left + right] { return existing }
                let id = Int32(tokens.count)
                tokens.append(left + right)
                types.append(1)
                tokenID[left + right] = id
                return id
            }
            if step == nil { break }
        }
        var k = 0
        while tokens.count < size {
            tokens.append("<|reserved_\(k)|>")
            types.append(3)
            k += 1
        }
        return TokenizerVocabulary(model: "gpt2", pre: "grok-2", tokens: tokens, scores: nil, tokenTypes: types,
                                   merges: merges, bosID: nil, eosID: 2, unknownID: nil, paddingID: 0,
                                   addBOS: false, addSpacePrefix: false)
    }

    /// Word-splitting classes for SentencePiece training: letters and marks, numbers, whitespace, the rest.
    private static func wordClass(_ v: UInt32) -> Int {
        let c = ScalarClass.of(v)
        if c.contains(.letter) { return 1 }
        if let u = Unicode.Scalar(v) {
            switch u.properties.generalCategory {
            case .nonspacingMark, .spacingMark, .enclosingMark: return 1
            default: break
            }
        }
        if c.contains(.number) { return 2 }
        if c.contains(.space) { return 4 }
        return 3
    }

    /// Characters used to fill a SentencePiece vocabulary once the corpus is exhausted, in this order.
    private static var extraCharacters: [UInt32] {
        let ranges: [ClosedRange<UInt32>] = [
            0x21...0x7E,        // ASCII printable
            0xA1...0xFF,        // Latin-1 supplement
            0x100...0x17F,      // Latin Extended-A
            0x391...0x3C9,      // Greek
            0x410...0x44F,      // Cyrillic
            0x3041...0x3096,    // Hiragana
            0x30A1...0x30FA,    // Katakana
            0x4E00...0x9FFF,    // CJK unified ideographs
            0xAC00...0xD7A3,    // Hangul syllables
        ]
        return ranges.flatMap { Array($0) }.filter { Unicode.Scalar($0) != nil }
    }
}
