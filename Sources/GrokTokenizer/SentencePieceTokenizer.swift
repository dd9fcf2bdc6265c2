// `tokenizer.ggml.model = "llama"`: SentencePiece BPE with byte fallback (Grok-1).
//
// Encoding a text:
//  1. With `parseSpecial`, control and unknown pieces written literally in the text are cut out first
//     (leftmost-longest); each remaining text run is encoded on its own.
//  2. A run is escaped: every U+0020 becomes "▁" (U+2581), and a "▁" is prepended (add_dummy_prefix) to the
//     first run of the text and to a run that follows a control token (as llama.cpp does).
//  3. User-defined pieces (type 4: newline runs, digits, tab/space runs, <|separator|> ...) are matched
//     greedily, longest first, in the escaped run (their own spaces are escaped the same way); they become one
//     token each and nothing merges across them. This follows SentencePiece, not llama.cpp: llama.cpp splits
//     them out of the raw text and then prepends another dummy space to the text after each of them, which
//     breaks the round trip ("a\nb" would decode as "a\n b"); SentencePiece itself adds the dummy prefix once.
//  4. What remains is split into UTF-8 characters and merged like llama.cpp's llm_tokenizer_spm: repeatedly
//     merge the adjacent pair whose concatenation is a mergeable piece with the highest score (ties: leftmost).
//     Mergeable pieces are the normal (type 1) and undefined (type 0) ones; control, unknown, unused, byte and
//     user-defined pieces never result from a merge.
//  5. A final symbol that is not a piece (a single character missing from the vocabulary) becomes the
//     byte-fallback pieces <0xXX> of its UTF-8 bytes.
//
// Vocabularies whose user-defined-looking pieces are typed normal (type 1), as in
// shared/reference/grok1-tiny-ref-f32.gguf ("\n", "\n\n", "\t", "  ", digits, "<|separator|>" all type 1), are
// taken at their word, exactly as llama.cpp does: those pieces take part in BPE like any normal piece. A
// one-character piece ("\n", "7") is then produced directly, "\n\n" by merging two "\n" (score 0 beats every
// learned merge), while "  " (literal spaces: the text's spaces have become "▁") and "<|separator|>" (its
// prefixes are not pieces) can never be formed.
//
// User-defined pieces are matched against the escaped text with their spaces escaped too, so a space-run
// piece works whether the file stores it as "  " or as "▁▁".
//
// Decoding: normal and user-defined pieces give their text with "▁" turned back into spaces, byte pieces
// their byte, control/unknown/unused pieces nothing. `decode` drops the dummy-prefix space from the first
// token that has any bytes, skipping leading control tokens such as BOS (as SentencePiece does; llama.cpp's
// detokenizer strips only when the very first token is not BOS), so decode(encode(s, addBOS: true)) == s.
//
// For speed a run is cut into independent chunks at positions no mergeable piece can span (the two scalars on
// either side never occur next to each other inside a mergeable piece), which gives the same result as merging
// the whole run, and chunks are memoised within one `encode` call.

public final class SentencePieceTokenizer: Tokenizer {
    let table: VocabularyTable
    public var vocabularySize: Int { table.count }
    public var bosID: Int32? { table.bosID }
    public var eosID: Int32? { table.eosID }
    public var unknownID: Int32? { table.unknownID }
    public var paddingID: Int32? { table.paddingID }
    public var addsBOSByDefault: Bool { table.addsBOS }
    public let addSpacePrefix: Bool

    private let scores: [Float]
    /// Scalar value -> merge symbol: a token id when the one-character piece is mergeable, otherwise a virtual
    /// id >= vocabularySize for characters that only occur as halves of a mergeable piece.
    private let charSymbols: [UInt32: Int32]
    /// (left symbol, right symbol) -> (score, merged piece), for every way of splitting every mergeable piece.
    private let pairTable: [UInt64: PairEntry]
    /// Pairs of scalars that occur next to each other inside some mergeable piece.
    private let adjacentScalars: Set<UInt64>
    private let userDefined: PieceMatcher
    private let specials: PieceMatcher

    public init(_ v: TokenizerVocabulary) throws {
        guard v.model == "llama" else { throw TokenizerError.unsupportedModel(v.model) }
        guard let scores = v.scores else {
            _ = try validateCommon(v)   // a broken vocabulary is reported before missing scores
            throw TokenizerError.missingField(field: "tokenizer.ggml.scores", model: "llama",
                                              need: "one merge score per token")
        }
        // "▁" stands for a space; a byte token not named <0xXX> stands for its own text.
        table = try VocabularyTable(v, bytePiece: bytePieceName, decode: { piece, type in
            if type == .byte { return Array(piece.utf8) }
            var out: [UInt8] = []
            for u in piece.unicodeScalars {
                if u.value == 0x2581 { out.append(0x20) } else { appendUTF8(u.value, to: &out) }
            }
            return out
        })
        let types = table.types, n = table.count
        addSpacePrefix = v.addSpacePrefix
        self.scores = scores

        // Merge tables over mergeable pieces.
        var scalarsOf: [[UInt32]] = []
        scalarsOf.reserveCapacity(n)
        var multi: [[UInt32]: Int32] = [:]
        var chars: [UInt32: Int32] = [:]
        for i in 0..<n {
            let s = v.tokens[i].unicodeScalars.map { $0.value }
            scalarsOf.append(s)
            guard types[i] == .normal || types[i] == .undefined, !s.isEmpty else { continue }
            if s.count == 1 { chars[s[0]] = Int32(i) } else { multi[s] = Int32(i) }
        }
        var nextVirtual = Int32(n)
        var table: [UInt64: PairEntry] = [:]
        var adjacent = Set<UInt64>()
        for i in 0..<n where types[i] == .normal || types[i] == .undefined {
            let s = scalarsOf[i]
            if s.count < 2 { continue }
            for k in 1..<s.count {
                adjacent.insert(UInt64(s[k - 1]) << 32 | UInt64(s[k]))
                var halves: [Int32] = []
                for part in [s[0..<k], s[k...]] {
                    if part.count == 1 {
                        let c = part[part.startIndex]
                        if let sym = chars[c] {
                            halves.append(sym)
                        } else {
                            chars[c] = nextVirtual
                            halves.append(nextVirtual)
                            nextVirtual += 1
                        }
                    } else if let sym = multi[Array(part)] {
                        halves.append(sym)
                    } else {
                        break
                    }
                }
                if halves.count == 2 {
                    table[pairKey(halves[0], halves[1])] = PairEntry(priority: Double(scores[i]), result: Int32(i))
                }
            }
        }
        charSymbols = chars
        pairTable = table
        adjacentScalars = adjacent

        var ud = PieceMatcher()
        var sp = PieceMatcher()
        for i in 0..<n where !scalarsOf[i].isEmpty {
            switch types[i] {
            case .userDefined:
                ud.insert(scalarsOf[i].map { $0 == 0x20 ? 0x2581 : $0 }, id: Int32(i))
            case .control, .unknown:
                sp.insert(scalarsOf[i], id: Int32(i))
            default:
                break
            }
        }
        userDefined = ud
        specials = sp
    }

    public var stripsLeadingSpaceOnDecode: Bool { addSpacePrefix }

    public func bytes(of id: Int32) -> [UInt8] { table.contains(id) ? table.tokenBytes[Int(id)] : [] }
    public func piece(of id: Int32) -> String { table.contains(id) ? table.pieces[Int(id)] : "" }
    public func tokenType(of id: Int32) -> TokenType { table.contains(id) ? table.types[Int(id)] : .undefined }
    public func id(ofPiece piece: String) -> Int32? { table.pieceIDs[piece] }

    public func score(of id: Int32) -> Float {
        table.contains(id) ? scores[Int(id)] : 0
    }

    public func encode(_ text: String, addBOS: Bool) -> [Int32] {
        encode(text, addBOS: addBOS, parseSpecial: false)
    }

    public func encode(_ text: String, addBOS: Bool, parseSpecial: Bool) -> [Int32] {
        var out: [Int32] = []
        if addBOS, let b = bosID { out.append(b) }
        if text.isEmpty { return out }
        let scalars = text.unicodeScalars.map { $0.value }
        var parts: [Segment] = []
        if parseSpecial {
            splitOnPieces(scalars, 0..<scalars.count, matcher: specials, into: &parts)
        } else {
            parts.append(.text(0..<scalars.count))
        }
        var state = EncodeState()
        var previousWasText = false
        for part in parts {
            switch part {
            case .token(let id):
                out.append(id)
                previousWasText = false
            case .text(let r):
                var escaped: [UInt32] = []
                escaped.reserveCapacity(r.count + 1)
                if addSpacePrefix && !previousWasText { escaped.append(0x2581) }
                for i in r { escaped.append(scalars[i] == 0x20 ? 0x2581 : scalars[i]) }
                encodeEscaped(escaped, into: &out, state: &state)
                previousWasText = true
            }
        }
        return out
    }

    private struct EncodeState {
        var workspace = MergeWorkspace()
        var cache: [[UInt32]: [Int32]] = [:]
        var segments: [Segment] = []
    }

    private func encodeEscaped(_ s: [UInt32], into out: inout [Int32], state: inout EncodeState) {
        state.segments.removeAll(keepingCapacity: true)
        splitOnPieces(s, 0..<s.count, matcher: userDefined, into: &state.segments)
        let segments = state.segments
        for seg in segments {
            switch seg {
            case .token(let id):
                out.append(id)
            case .text(let r):
                // Cut into chunks no merge can span, memoise each chunk.
                var start = r.lowerBound
                var i = r.lowerBound + 1
                while i <= r.upperBound {
                    if i == r.upperBound || !adjacentScalars.contains(UInt64(s[i - 1]) << 32 | UInt64(s[i])) {
                        let chunk = Array(s[start..<i])
                        if let cached = state.cache[chunk] {
                            out.append(contentsOf: cached)
                        } else {
                            let ids = mergeChunk(chunk, workspace: &state.workspace)
                            state.cache[chunk] = ids
                            out.append(contentsOf: ids)
                        }
                        start = i
                    }
                    i += 1
                }
            }
        }
    }

    private func mergeChunk(_ chunk: [UInt32], workspace w: inout MergeWorkspace) -> [Int32] {
        var initial: [Int32] = []
        initial.reserveCapacity(chunk.count)
        for c in chunk { initial.append(charSymbols[c] ?? -1) }
        w.run(initial, table: pairTable)
        var out: [Int32] = []
        var i: Int32 = 0
        let n = Int32(vocabularySize)
        var buf: [UInt8] = []
        while i >= 0 && Int(i) < chunk.count {
            let sym = w.symbols[Int(i)]
            if sym >= 0 && sym < n {
                out.append(sym)
            } else {
                // Not a piece: necessarily a single character (merges only produce pieces). Byte fallback.
                buf.removeAll(keepingCapacity: true)
                appendUTF8(chunk[Int(i)], to: &buf)
                for b in buf { out.append(table.byteTokens[Int(b)]) }
            }
            i = w.next[Int(i)]
        }
        return out
    }
}
