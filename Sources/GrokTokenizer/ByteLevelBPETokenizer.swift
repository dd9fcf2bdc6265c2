// `tokenizer.ggml.model = "gpt2"`, `tokenizer.ggml.pre = "grok-2"`: byte-level BPE (Grok-2).
//
// Encoding a text:
//  1. Whole pieces are cut out first, leftmost-longest: user-defined pieces (type 4) always, control and
//     unknown pieces (type 3/2, e.g. "<|separator|>") only with `parseSpecial`. Their text is the raw text.
//  2. Each remaining run is pre-tokenized with the grok-2 scanner (Grok2PreTokenizer.swift).
//  3. Each pre-token's UTF-8 bytes become the byte tokens (GPT-2 byte-to-unicode strings), which are merged
//     by merge rank (lowest rank first, ties leftmost), as llama.cpp's llm_tokenizer_bpe and tiktoken do.
// Pre-tokens are memoised within one `encode` call.

public final class ByteLevelBPETokenizer: Tokenizer {
    let table: VocabularyTable
    public var vocabularySize: Int { table.count }
    public var bosID: Int32? { table.bosID }
    public var eosID: Int32? { table.eosID }
    public var unknownID: Int32? { table.unknownID }
    public var paddingID: Int32? { table.paddingID }
    public var addsBOSByDefault: Bool { table.addsBOS }
    /// (left token, right token) -> (-rank, merged token).
    private let pairTable: [UInt64: PairEntry]
    private let userDefined: PieceMatcher
    private let specials: PieceMatcher

    public init(_ v: TokenizerVocabulary) throws {
        guard v.model == "gpt2" else { throw TokenizerError.unsupportedModel(v.model) }
        if let pre = v.pre, pre != "grok-2" {
            throw TokenizerError.unsupportedPreTokenizer(model: v.model, pre: pre)
        }
        guard let merges = v.merges else {
            _ = try validateCommon(v)   // a broken vocabulary is reported before a missing merge list
            throw TokenizerError.missingField(field: "tokenizer.ggml.merges", model: "gpt2",
                                              need: "the BPE merge list (\"left right\" in priority order)")
        }
        // User-defined pieces stand for their own text; the others are GPT-2 byte-to-unicode strings.
        table = try VocabularyTable(v, bytePiece: { GPT2Bytes.string(for: [$0]) },
                                    decode: { piece, type in type == .userDefined ? Array(piece.utf8) : GPT2Bytes.bytes(for: piece) })
        let ids = table.pieceIDs, types = table.types, n = table.count

        var pairs: [UInt64: PairEntry] = [:]
        pairs.reserveCapacity(merges.count)
        for (rank, m) in merges.enumerated() {
            let parts = m.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.invalidMerge(index: rank, merge: m, reason: "not two non-empty parts separated by one space")
            }
            let left = String(parts[0]), right = String(parts[1])
            guard let l = ids[left] else {
                throw TokenizerError.invalidMerge(index: rank, merge: m, reason: "\(quoted(left)) is not a token")
            }
            guard let r = ids[right] else {
                throw TokenizerError.invalidMerge(index: rank, merge: m, reason: "\(quoted(right)) is not a token")
            }
            guard let result = ids[left + right] else {
                throw TokenizerError.invalidMerge(index: rank, merge: m, reason: "\(quoted(left + right)) is not a token")
            }
            let key = pairKey(l, r)
            if pairs[key] == nil { pairs[key] = PairEntry(priority: -Double(rank), result: result) }
        }
        pairTable = pairs

        var ud = PieceMatcher()
        var sp = PieceMatcher()
        for i in 0..<n {
            let t = v.tokens[i]
            if t.isEmpty { continue }
            let scalars = t.unicodeScalars.map { $0.value }
            switch types[i] {
            case .userDefined:
                ud.insert(scalars, id: Int32(i))
                sp.insert(scalars, id: Int32(i))
            case .control, .unknown:
                sp.insert(scalars, id: Int32(i))
            default:
                break
            }
        }
        userDefined = ud
        specials = sp
    }

    public func bytes(of id: Int32) -> [UInt8] { table.contains(id) ? table.tokenBytes[Int(id)] : [] }
    public func piece(of id: Int32) -> String { table.contains(id) ? table.pieces[Int(id)] : "" }
    public func tokenType(of id: Int32) -> TokenType { table.contains(id) ? table.types[Int(id)] : .undefined }
    public func id(ofPiece piece: String) -> Int32? { table.pieceIDs[piece] }

    public func encode(_ text: String, addBOS: Bool) -> [Int32] {
        encode(text, addBOS: addBOS, parseSpecial: false)
    }

    public func encode(_ text: String, addBOS: Bool, parseSpecial: Bool) -> [Int32] {
        var out: [Int32] = []
        if addBOS, let b = bosID { out.append(b) }
        if text.isEmpty { return out }
        let scalars = text.unicodeScalars.map { $0.value }
        var parts: [Segment] = []
        splitOnPieces(scalars, 0..<scalars.count, matcher: parseSpecial ? specials : userDefined, into: &parts)
        var workspace = MergeWorkspace()
        var cache: [[UInt32]: [Int32]] = [:]
        var bytes: [UInt8] = []
        for part in parts {
            switch part {
            case .token(let id):
                out.append(id)
            case .text(let r):
                grok2PreTokenize(scalars, r) { word in
                    let key = Array(scalars[word])
                    if let cached = cache[key] {
                        out.append(contentsOf: cached)
                        return
                    }
                    bytes.removeAll(keepingCapacity: true)
                    for v in key { appendUTF8(v, to: &bytes) }
                    let ids = mergeWord(bytes, workspace: &workspace)
                    cache[key] = ids
                    out.append(contentsOf: ids)
                }
            }
        }
        return out
    }

    /// Splits `text` into grok-2 pre-tokens (for inspection and tests).
    public static func preTokenize(_ text: String) -> [String] {
        let scalars = text.unicodeScalars.map { $0.value }
        var words: [String] = []
        grok2PreTokenize(scalars, 0..<scalars.count) { r in
            var v = String.UnicodeScalarView()
            for k in r { v.append(Unicode.Scalar(scalars[k])!) }
            words.append(String(v))
        }
        return words
    }

    private func mergeWord(_ bytes: [UInt8], workspace w: inout MergeWorkspace) -> [Int32] {
        w.run(bytes.map { table.byteTokens[Int($0)] }, table: pairTable)
        var out: [Int32] = []
        var i: Int32 = 0
        while i >= 0 && Int(i) < bytes.count {
            out.append(w.symbols[Int(i)])
            i = w.next[Int(i)]
        }
        return out
    }
}
