// What a GGUF file carries about its tokenizer, its validation, and `makeTokenizer`.

/// What a GGUF carries (`tokenizer.ggml.*`).
public struct TokenizerVocabulary: Sendable, Equatable {
    public var model: String            // "llama" | "gpt2"
    public var pre: String?             // e.g. "grok-2", "default"
    public var tokens: [String]
    public var scores: [Float]?
    public var tokenTypes: [Int32]?
    public var merges: [String]?
    public var bosID: Int32?, eosID: Int32?, unknownID: Int32?, paddingID: Int32?
    public var addBOS: Bool
    /// `tokenizer.ggml.add_space_prefix` (llama only; absent in most GGUFs, where llama.cpp's default is true).
    public var addSpacePrefix: Bool

    public init(model: String, pre: String? = nil, tokens: [String], scores: [Float]? = nil,
                tokenTypes: [Int32]? = nil, merges: [String]? = nil,
                bosID: Int32? = nil, eosID: Int32? = nil, unknownID: Int32? = nil, paddingID: Int32? = nil,
                addBOS: Bool = false, addSpacePrefix: Bool = true) {
        self.model = model
        self.pre = pre
        self.tokens = tokens
        self.scores = scores
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.bosID = bosID
        self.eosID = eosID
        self.unknownID = unknownID
        self.paddingID = paddingID
        self.addBOS = addBOS
        self.addSpacePrefix = addSpacePrefix
    }
}

/// Why a vocabulary cannot be used. `description` is one line naming the GGUF field and what was expected.
public enum TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    case unsupportedModel(String)
    case unsupportedPreTokenizer(model: String, pre: String)
    case emptyVocabulary
    case missingField(field: String, model: String, need: String)
    case countMismatch(field: String, expected: Int, found: Int)
    case idOutOfRange(field: String, id: Int32, vocabularySize: Int)
    case missingBOS
    case invalidTokenType(index: Int, value: Int32)
    case duplicatePiece(piece: String, firstID: Int, secondID: Int)
    case missingBytePiece(byte: UInt8, expectedPiece: String)
    case invalidMerge(index: Int, merge: String, reason: String)

    public var description: String {
        switch self {
        case .unsupportedModel(let m):
            return "tokenizer.ggml.model: expected \"llama\" or \"gpt2\", found \(quoted(m))"
        case .unsupportedPreTokenizer(let model, let pre):
            return "tokenizer.ggml.pre: expected \"grok-2\" (or absent) for model \(quoted(model)), found \(quoted(pre))"
        case .emptyVocabulary:
            return "tokenizer.ggml.tokens: expected at least 1 entry, found 0"
        case .missingField(let field, let model, let need):
            return "\(field): missing; model \(quoted(model)) needs \(need)"
        case .countMismatch(let field, let expected, let found):
            return "\(field): expected \(expected) entries, found \(found)"
        case .idOutOfRange(let field, let id, let n):
            return "\(field): expected an id in 0..<\(n), found \(id)"
        case .missingBOS:
            return "tokenizer.ggml.bos_token_id: expected an id because tokenizer.ggml.add_bos_token is true, found none"
        case .invalidTokenType(let index, let value):
            return "tokenizer.ggml.token_type[\(index)]: expected a type in 0...6, found \(value)"
        case .duplicatePiece(let piece, let first, let second):
            return "tokenizer.ggml.tokens[\(second)]: expected unique pieces, found \(quoted(piece)) again (first at \(first))"
        case .missingBytePiece(let byte, let expected):
            let hex = String(byte, radix: 16, uppercase: true)
            return "tokenizer.ggml.tokens: expected a piece \(quoted(expected)) for byte 0x\(hex.count == 1 ? "0" + hex : hex), found none"
        case .invalidMerge(let index, let merge, let reason):
            return "tokenizer.ggml.merges[\(index)]: expected \"left right\" naming two tokens whose concatenation is a token, found \(quoted(merge)) (\(reason))"
        }
    }
}

/// Escapes a string for a one-line message.
func quoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default:
            if u.value < 0x20 || u.value == 0x7F {
                out += "\\u{\(String(u.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

/// Validates `v` and builds the matching tokenizer.
public func makeTokenizer(_ v: TokenizerVocabulary) throws -> any Tokenizer {
    switch v.model {
    case "llama": return try SentencePieceTokenizer(v)
    case "gpt2": return try ByteLevelBPETokenizer(v)
    default: throw TokenizerError.unsupportedModel(v.model)
    }
}

/// Checks shared by both models; returns the resolved token types (inferred when the GGUF has none).
/// What both tokenizer models index the same way: the validated token types, the special ids,
/// piece → id, each token's decoded bytes, and the token of every single byte (byte fallback or
/// byte-level BPE).
struct VocabularyTable: Sendable {
    let pieces: [String]
    let types: [TokenType]
    let pieceIDs: [String: Int32]
    let tokenBytes: [[UInt8]]       // control, unknown and unused tokens decode to nothing
    let byteTokens: [Int32]         // byte value -> id of its single-byte token
    let bosID: Int32?, eosID: Int32?, unknownID: Int32?, paddingID: Int32?
    let addsBOS: Bool

    /// `bytePiece(b)` is the vocabulary string of byte b's token; `decode(piece, type)` gives the
    /// bytes of a normal, user-defined or undefined token (and of a byte token not named <0xXX>).
    init(_ v: TokenizerVocabulary, bytePiece: (UInt8) -> String, decode: (String, TokenType) -> [UInt8]) throws {
        let types = try validateCommon(v)
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(v.tokens.count)
        for (i, t) in v.tokens.enumerated() where !t.isEmpty { ids[t] = Int32(i) }
        byteTokens = try (0..<256).map { b in
            let name = bytePiece(UInt8(b))
            guard let id = ids[name] else { throw TokenizerError.missingBytePiece(byte: UInt8(b), expectedPiece: name) }
            return id
        }
        tokenBytes = zip(v.tokens, types).map { piece, type in
            switch type {
            case .control, .unknown, .unused: return []
            case .byte: return parseBytePiece(piece).map { [$0] } ?? decode(piece, type)
            case .normal, .undefined, .userDefined: return decode(piece, type)
            }
        }
        pieces = v.tokens
        self.types = types
        pieceIDs = ids
        bosID = v.bosID
        eosID = v.eosID
        unknownID = v.unknownID
        paddingID = v.paddingID
        addsBOS = v.addBOS
    }

    var count: Int { pieces.count }
    func contains(_ id: Int32) -> Bool { id >= 0 && Int(id) < pieces.count }
}

func validateCommon(_ v: TokenizerVocabulary) throws -> [TokenType] {
    let n = v.tokens.count
    if n == 0 { throw TokenizerError.emptyVocabulary }
    if n > Int(Int32.max) { throw TokenizerError.countMismatch(field: "tokenizer.ggml.tokens", expected: Int(Int32.max), found: n) }
    if let s = v.scores, s.count != n {
        throw TokenizerError.countMismatch(field: "tokenizer.ggml.scores", expected: n, found: s.count)
    }
    if let t = v.tokenTypes, t.count != n {
        throw TokenizerError.countMismatch(field: "tokenizer.ggml.token_type", expected: n, found: t.count)
    }
    let ids: [(String, Int32?)] = [("tokenizer.ggml.bos_token_id", v.bosID), ("tokenizer.ggml.eos_token_id", v.eosID),
                                   ("tokenizer.ggml.unknown_token_id", v.unknownID),
                                   ("tokenizer.ggml.padding_token_id", v.paddingID)]
    for (field, id) in ids {
        if let id = id, id < 0 || Int(id) >= n {
            throw TokenizerError.idOutOfRange(field: field, id: id, vocabularySize: n)
        }
    }
    if v.addBOS && v.bosID == nil { throw TokenizerError.missingBOS }

    var seen: [String: Int] = [:]
    seen.reserveCapacity(n)
    for (i, t) in v.tokens.enumerated() where !t.isEmpty {
        if let first = seen.updateValue(i, forKey: t) {
            throw TokenizerError.duplicatePiece(piece: t, firstID: first, secondID: i)
        }
    }

    if let raw = v.tokenTypes {
        var types: [TokenType] = []
        types.reserveCapacity(n)
        for (i, r) in raw.enumerated() {
            guard let t = TokenType(rawValue: r) else { throw TokenizerError.invalidTokenType(index: i, value: r) }
            types.append(t)
        }
        return types
    }
    // No token types in the file: infer them the way the converters would have written them.
    var types = [TokenType](repeating: .normal, count: n)
    if v.model == "llama" {
        for (i, t) in v.tokens.enumerated() where parseBytePiece(t) != nil { types[i] = .byte }
    }
    for id in [v.bosID, v.eosID, v.paddingID].compactMap({ $0 }) { types[Int(id)] = .control }
    if let u = v.unknownID { types[Int(u)] = .unknown }
    return types
}

/// "<0x41>" -> 0x41 (exactly six characters, two upper- or lower-case hex digits).
func parseBytePiece(_ s: String) -> UInt8? {
    let u = Array(s.utf8)
    guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    guard let h = hex(u[3]), let l = hex(u[4]) else { return nil }
    return h << 4 | l
}

func bytePieceName(_ b: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return "<0x\(digits[Int(b >> 4)])\(digits[Int(b & 15)])>"
}

/// Appends the UTF-8 encoding of scalar value `v` (assumed valid).
@inline(__always)
func appendUTF8(_ v: UInt32, to out: inout [UInt8]) {
    switch v {
    case 0..<0x80:
        out.append(UInt8(v))
    case 0x80..<0x800:
        out.append(UInt8(0xC0 | (v >> 6)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    case 0x800..<0x10000:
        out.append(UInt8(0xE0 | (v >> 12)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    default:
        out.append(UInt8(0xF0 | (v >> 18)))
        out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    }
}

@inline(__always)
func pairKey(_ l: Int32, _ r: Int32) -> UInt64 {
    UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
}
