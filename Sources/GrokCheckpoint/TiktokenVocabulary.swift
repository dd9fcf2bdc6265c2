import Foundation

/// Grok-2's `tokenizer.tok.json` (grok-architecture.md §3.7; read by SGLang's `TiktokenTokenizer`):
/// `regular_tokens` and `special_tokens` as `[{"bytes": [UInt8], "token": id}]` (a regular token's
/// id is its tiktoken merge rank), `word_split` "V1", optional `pat_str` and `vocab_size`.
///
/// It converts both ways with the `tokenizer.ggml.*` keys of a byte-level BPE GGUF (model "gpt2",
/// pre-tokenizer "grok-2"), the way llama.cpp's converter turns a tiktoken vocabulary into a GGUF
/// (`_set_vocab_qwen` in convert_hf_to_gguf.py): tokens in GPT-2's byte-to-unicode form, specials
/// as control tokens, ids no token has as `[PAD<id>]` of type unused, and each multi-byte token's
/// merge recovered as the two parts BPE over the lower-ranked tokens makes of its bytes.
public struct TiktokenVocabulary: Equatable, Sendable {
    /// Mergeable tokens: bytes and id (= rank).
    public var regular: [(bytes: [UInt8], id: Int)]
    /// Special tokens: text and id.
    public var special: [(text: String, id: Int)]
    /// `vocab_size`, when the file states it.
    public var vocabularySize: Int?

    /// The V1 word split (SGLang's `PAT_STR_B`), which `tokenizer.ggml.pre = "grok-2"` implements.
    public static let patternV1 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// The end-of-sequence special (SGLang: `eos_token_id = special_tokens["<|eos|>"]`, id 2 in Grok-2).
    public static let eos = "<|eos|>"
    public static let pad = "<|pad|>"
    /// GGUF token types (llama.cpp's numbering).
    static let normalType: Int32 = 1, controlType: Int32 = 3, unusedType: Int32 = 5

    public init(regular: [(bytes: [UInt8], id: Int)], special: [(text: String, id: Int)], vocabularySize: Int?) {
        self.regular = regular
        self.special = special
        self.vocabularySize = vocabularySize
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.regular.elementsEqual(b.regular) { $0.bytes == $1.bytes && $0.id == $1.id }
            && a.special.elementsEqual(b.special) { $0.text == $1.text && $0.id == $1.id }
            && a.vocabularySize == b.vocabularySize
    }

    // MARK: - tokenizer.tok.json

    /// Reads and checks `path`: the fields above, ids unique, regular tokens non-empty and unique.
    public init(path: String) throws {
        func failure(_ field: String, _ expected: String, _ found: String) -> CheckpointError {
            CheckpointError(file: path, field: field, expected: expected, found: found)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw failure("file", "a readable tokenizer.tok.json", "cannot read it")
        }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw failure("file", "a JSON object", "\(data.count) bytes that are not one")
        }
        guard let split = json["word_split"] as? String, split == "V1" else {
            throw failure("word_split", "\"V1\" (the only split SGLang knows)", "\(json["word_split"] ?? "nothing")")
        }
        if let pattern = json["pat_str"], pattern as? String != Self.patternV1 {
            throw failure("pat_str", "absent or the V1 pattern (the grok-2 pre-tokenizer)", "\(pattern)")
        }
        func entries(_ key: String) throws -> [(bytes: [UInt8], id: Int)] {
            guard let list = json[key] as? [[String: Any]] else { throw failure(key, "an array of {bytes, token}", "\(json[key] ?? "nothing")") }
            return try list.enumerated().map { i, entry in
                let raw = entry["bytes"] as? [NSNumber] ?? []
                let bytes = raw.compactMap { UInt8(exactly: $0.doubleValue) }
                guard !bytes.isEmpty, bytes.count == raw.count else {
                    throw failure("\(key)[\(i)] bytes", "a non-empty array of bytes 0...255", "\(entry["bytes"] ?? "nothing")")
                }
                guard let id = (entry["token"] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }), id >= 0 else {
                    throw failure("\(key)[\(i)] token", "an id ≥ 0", "\(entry["token"] ?? "nothing")")
                }
                return (bytes, id)
            }
        }
        regular = try entries("regular_tokens")
        special = try entries("special_tokens").enumerated().map { i, entry in
            guard let text = String(bytes: entry.bytes, encoding: .utf8) else {
                throw failure("special_tokens[\(i)] bytes", "UTF-8 text", "\(entry.bytes)")
            }
            return (text, entry.id)
        }
        vocabularySize = (json["vocab_size"] as? NSNumber).flatMap { Int(exactly: $0.doubleValue) }
        var ids: [Int: String] = [:], seen: Set<[UInt8]> = []
        for (label, id) in regular.map({ ("regular token \($0.bytes)", $0.id) }) + special.map({ ("special \(quoted($0.text))", $0.id) }) {
            if let first = ids.updateValue(label, forKey: id) { throw failure("token \(id)", "unique ids", "\(first) and \(label)") }
        }
        for token in regular where !seen.insert(token.bytes).inserted {
            throw failure("regular_tokens", "unique byte strings", "\(token.bytes) twice")
        }
    }

    /// The file's text: regular tokens by id, then specials, `word_split` "V1" and `vocab_size`.
    public func jsonText() -> String {
        func entries(_ list: [(bytes: [UInt8], id: Int)]) -> JSONText {
            .array(list.map { .object([("bytes", .array($0.bytes.map { .int(Int($0)) })), ("token", .int($0.id))]) })
        }
        var members: [(String, JSONText)] = [("regular_tokens", entries(regular)),
                                             ("special_tokens", entries(special.map { (Array($0.text.utf8), $0.id) })),
                                             ("word_split", .string("V1"))]
        if let vocabularySize { members.append(("vocab_size", .int(vocabularySize))) }
        return JSONText.object(members).rendered()
    }

    // MARK: - tokenizer.ggml.*

    /// The `tokenizer.ggml.*` keys for a model of `tokenCount` tokens (config.json's
    /// `vocab_size`), in the order llama.cpp writes them. `file` is named in errors.
    public func ggufMetadata(tokenCount: Int, file: String) throws -> [(key: String, value: GGUFValue)] {
        var tokens = (0..<tokenCount).map { "[PAD\($0)]" }
        var types = [Int32](repeating: Self.unusedType, count: tokenCount)
        for (id, text, type) in regular.map({ ($0.id, ByteLevelText.string($0.bytes), Self.normalType) })
            + special.map({ ($0.id, $0.text, Self.controlType) }) {
            guard id < tokenCount else {
                throw CheckpointError(file: file, field: "token \(id) (\(quoted(text)))", expected: "ids below the model's vocab_size \(tokenCount)", found: "\(id)")
            }
            tokens[id] = text
            types[id] = type
        }
        guard let eos = special.first(where: { $0.text == Self.eos })?.id else {
            throw CheckpointError(file: file, field: "special_tokens", expected: "a \(Self.eos) token (the end of sequence)", found: "none")
        }
        var keys: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("grok-2")),
            ("tokenizer.ggml.tokens", .array(tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(types.map { .int32($0) })),
            ("tokenizer.ggml.merges", .array(recoveredMerges().map { .string($0) })),
            ("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos))),
        ]
        if let pad = special.first(where: { $0.text == Self.pad })?.id { keys.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(pad)))) }
        keys += [("tokenizer.ggml.add_bos_token", .bool(false)), ("tokenizer.ggml.add_eos_token", .bool(false))]   // no BOS (§3.7)
        return keys
    }

    /// "left right" for every multi-byte regular token, by rank: the two parts BPE makes of its
    /// bytes using only lower-ranked tokens (llama.cpp's `QwenModel.bpe(..., max_rank=rank)`).
    /// A token BPE cannot build from two parts is left out, as llama.cpp's converter does.
    func recoveredMerges() -> [String] {
        var ranks: [[UInt8]: Int] = [:]
        for token in regular { ranks[token.bytes] = token.id }
        var merges: [String] = []
        for token in regular.sorted(by: { $0.id < $1.id }) where token.bytes.count > 1 {
            var parts = token.bytes.map { [$0] }
            while parts.count > 2 {   // two parts can only merge into the token itself, which is not below its rank
                var best: (index: Int, rank: Int)?
                for i in 0..<parts.count - 1 {
                    if let rank = ranks[parts[i] + parts[i + 1]], rank < token.id, rank < best?.rank ?? .max { best = (i, rank) }
                }
                guard let best else { break }
                parts[best.index] += parts[best.index + 1]
                parts.remove(at: best.index + 1)
            }
            if parts.count == 2 { merges.append(ByteLevelText.string(parts[0]) + " " + ByteLevelText.string(parts[1])) }
        }
        return merges
    }

    /// The vocabulary of a byte-level BPE GGUF: normal tokens become regular (bytes from GPT-2's
    /// byte-to-unicode form, rank = id), control tokens special, unused ones gaps. tiktoken ranks a
    /// pair by the id of the token it makes, so the GGUF's merges must create tokens in id order;
    /// a merge that repeats an earlier token is what tiktoken does anyway and is dropped.
    public init(gguf file: GGUFFile) throws {
        func failure(_ field: String, _ expected: String, _ found: String) -> CheckpointError {
            CheckpointError(file: file.path, field: field, expected: expected, found: found)
        }
        let model = try file.string("tokenizer.ggml.model")
        guard model == "gpt2" else { throw failure("metadata \"tokenizer.ggml.model\"", "\"gpt2\" (byte-level BPE, as Grok-2)", model ?? "nothing") }
        guard let tokens = try file.stringArray("tokenizer.ggml.tokens"), let types = try file.intArray("tokenizer.ggml.token_type"),
              let merges = try file.stringArray("tokenizer.ggml.merges"), types.count == tokens.count else {
            throw failure("metadata \"tokenizer.ggml.*\"", "tokens, token_type (one per token) and merges", "some missing")
        }
        var regular: [(bytes: [UInt8], id: Int)] = [], special: [(text: String, id: Int)] = []
        var ids: [String: Int] = [:]
        for (id, (token, type)) in zip(tokens, types).enumerated() {
            ids[token] = id
            switch Int32(type) {
            case Self.normalType:
                guard let bytes = ByteLevelText.bytes(token) else {
                    throw failure("metadata \"tokenizer.ggml.tokens\"[\(id)]", "a token in GPT-2's byte-to-unicode form", quoted(token))
                }
                regular.append((bytes, id))
            case Self.controlType: special.append((token, id))
            case Self.unusedType: break
            default:
                throw failure("metadata \"tokenizer.ggml.token_type\"[\(id)]", "normal (1), control (3) or unused (5)", "\(type)")
            }
        }
        var made = Set(regular.filter { $0.bytes.count == 1 }.map(\.id)), last = -1
        for (i, merge) in merges.enumerated() {
            guard let id = ids[merge.replacingOccurrences(of: " ", with: "")] else {
                throw failure("metadata \"tokenizer.ggml.merges\"[\(i)]", "a merge that makes a token", quoted(merge))
            }
            guard made.insert(id).inserted else { continue }
            guard id > last else {
                throw failure("metadata \"tokenizer.ggml.merges\"[\(i)]", "merges that make tokens in id order (tiktoken ranks are ids)",
                              "\(quoted(merge)) makes id \(id) after id \(last)")
            }
            last = id
        }
        // tiktoken's `explicit_n_vocab` must count every token: state it only when no id is a gap.
        self.init(regular: regular, special: special, vocabularySize: regular.count + special.count == tokens.count ? tokens.count : nil)
    }
}

/// GPT-2's reversible byte-to-unicode mapping (openai/gpt-2 `encoder.py` `bytes_to_unicode`):
/// printable Latin-1 bytes stand for themselves, the other 68 for U+0100 onwards. GrokTokenizer
/// has its own copy; this module cannot depend on it.
enum ByteLevelText {
    private static let scalarOf: [Unicode.Scalar] = {
        var next: UInt32 = 256
        return (0...255).map { b in
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) { return Unicode.Scalar(UInt8(b)) }
            defer { next += 1 }
            return Unicode.Scalar(next)!
        }
    }()
    private static let byteOf: [Unicode.Scalar: UInt8] =
        Dictionary(uniqueKeysWithValues: scalarOf.enumerated().map { ($1, UInt8($0)) })

    static func string(_ bytes: [UInt8]) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(scalarOf[Int(b)]) }
        return String(s)
    }

    /// The bytes of a byte-level token, or nil when it has a character outside the mapping.
    static func bytes(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        for u in token.unicodeScalars {
            guard let b = byteOf[u] else { return nil }
            out.append(b)
        }
        return out
    }
}
