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
    public let vocabularySize: Int
    public let bosID: Int32?
    public let eosID: Int32?
    public let unknownID: Int32?
    public let paddingID: Int32?
    public let addsBOSByDefault: Bool

    private let pieces: [String]
    private let types: [TokenType]
    private let tokenBytes: [[UInt8]]
    private let pieceIDs: [String: Int32]
    /// Byte value -> id of its single-byte token.
    private let byteTokens: [Int32]
    /// (left token, right token) -> (-rank, merged token).
    private let pairTable: [UInt64: PairEntry]
    private let userDefined: PieceMatcher
    private let specials: PieceMatcher

    public init(_ v: TokenizerVocabulary) throws {
        guard v.model == "gpt2" else { throw TokenizerError.unsupportedModel(v.model) }
        if let pre = v.pre, pre != "grok-2" {
            throw TokenizerError.unsupportedPreTokenizer(model: v.model, pre: pre)
        }
        let types = try validateCommon(v)
        guard let merges = v.merges else {
            throw TokenizerError.missingField(field: "tokenizer.ggml.merges", model: "gpt2",
                                              need: "the BPE merge list (\"left right\" in priority order)")
        }
        let n = v.tokens.count
        vocabularySize = n
        bosID = v.bosID
        eosID = v.eosID
        unknownID = v.unknownID
        paddingID = v.paddingID
        addsBOSByDefault = v.addBOS
        pieces = v.tokens
        self.types = types

        var ids: [String: Int32] = [:]
        ids.reserveCapacity(n)
        for (i, t) in v.tokens.enumerated() where !t.isEmpty { ids[t] = Int32(i) }
        pieceIDs = ids

        var bt = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let name = GPT2Bytes.string(for: [UInt8(b)])
            guard let id = ids[name] else { throw TokenizerError.missingBytePiece(byte: UInt8(b), expectedPiece: name) }
            bt[b] = id
        }
        byteTokens = bt

        var table: [UInt64: PairEntry] = [:]
        table.reserveCapacity(merges.count)
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
            if table[key] == nil { table[key] = PairEntry(priority: -Double(rank), result: result) }
        }
        pairTable = table

        var tb: [[UInt8]] = []
        tb.reserveCapacity(n)
        var ud = PieceMatcher()
        var sp = PieceMatcher()
        for i in 0..<n {
            let t = v.tokens[i]
            switch types[i] {
            case .control, .unknown, .unused:
                tb.append([])
            case .userDefined:
                tb.append(Array(t.utf8))
            case .byte:
                if let b = parseBytePiece(t) { tb.append([b]) } else { tb.append(GPT2Bytes.bytes(for: t)) }
            case .normal, .undefined:
                tb.append(GPT2Bytes.bytes(for: t))
            }
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
        tokenBytes = tb
        userDefined = ud
        specials = sp
    }

    public func bytes(of id: Int32) -> [UInt8] {
        guard id >= 0 && Int(id) < vocabularySize else { return [] }
        return tokenBytes[Int(id)]
    }

    public func piece(of id: Int32) -> String {
        guard id >= 0 && Int(id) < vocabularySize else { return "" }
        return pieces[Int(id)]
    }

    public func tokenType(of id: Int32) -> TokenType {
        guard id >= 0 && Int(id) < vocabularySize else { return .undefined }
        return types[Int(id)]
    }

    public func id(ofPiece piece: String) -> Int32? { pieceIDs[piece] }

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
        w.run(bytes.map { byteTokens[Int($0)] }, table: pairTable)
        var out: [Int32] = []
        var i: Int32 = 0
        while i >= 0 && Int(i) < bytes.count {
            out.append(w.symbols[Int(i)])
            i = w.next[Int(i)]
        }
        return out
    }
}
