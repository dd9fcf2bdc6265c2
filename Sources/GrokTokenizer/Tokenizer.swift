// The public face of GrokTokenizer: the `Tokenizer` protocol, decoding, and streaming decoding.
//
// Two implementations sit behind `makeTokenizer(_:)`:
//   - `SentencePieceTokenizer` for `tokenizer.ggml.model = "llama"` (Grok-1: SentencePiece BPE with byte fallback)
//   - `ByteLevelBPETokenizer`  for `tokenizer.ggml.model = "gpt2"`  (Grok-2: byte-level BPE, pre-tokenizer "grok-2")

/// The GGUF `tokenizer.ggml.token_type` values (same numbering as llama.cpp and SentencePiece).
public enum TokenType: Int32, Sendable, CaseIterable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}

public protocol Tokenizer: Sendable {
    var vocabularySize: Int { get }
    var bosID: Int32? { get }
    var eosID: Int32? { get }
    /// Encodes plain text. User-defined pieces are always matched; control tokens written in the text are
    /// *not* recognised (they are encoded as ordinary characters). Use `encode(_:addBOS:parseSpecial:)` for that.
    func encode(_ text: String, addBOS: Bool) -> [Int32]
    /// The raw bytes a token stands for (byte pieces give their byte; "▁" gives a space; control tokens give []).
    func bytes(of id: Int32) -> [UInt8]
    /// The vocabulary string, for display/inspect ("" for an id out of range).
    func piece(of id: Int32) -> String

    // Requirements below have default implementations, so other conforming types need not provide them.

    /// Like `encode(_:addBOS:)`, but with `parseSpecial` true control (and unknown) tokens written literally in
    /// the text (e.g. "<|separator|>" in a Grok-2 chat prompt) become their ids.
    func encode(_ text: String, addBOS: Bool, parseSpecial: Bool) -> [Int32]
    /// True when encoding prepends a dummy "▁" (SentencePiece `add_dummy_prefix`), so that decoding a sequence
    /// from its start must drop the space that the first non-control token begins with.
    var stripsLeadingSpaceOnDecode: Bool { get }
    /// The token's type (normal, control, byte, ...).
    func tokenType(of id: Int32) -> TokenType
    /// The id whose vocabulary string is exactly `piece`, if any (e.g. "<|separator|>").
    func id(ofPiece piece: String) -> Int32?
    /// Whether `encode(_:addBOS:)` callers should add BOS by default (`tokenizer.ggml.add_bos_token`).
    var addsBOSByDefault: Bool { get }
}

extension Tokenizer {
    public func encode(_ text: String, addBOS: Bool, parseSpecial: Bool) -> [Int32] {
        encode(text, addBOS: addBOS)
    }
    public var stripsLeadingSpaceOnDecode: Bool { false }
    public func tokenType(of id: Int32) -> TokenType { .normal }
    public func id(ofPiece piece: String) -> Int32? {
        for i in 0..<vocabularySize where self.piece(of: Int32(i)) == piece { return Int32(i) }
        return nil
    }
    public var addsBOSByDefault: Bool { false }

    /// The concatenated bytes of `ids`, with the dummy-prefix space removed from the first token that has any
    /// bytes when `stripsLeadingSpaceOnDecode` (leading control tokens such as BOS are skipped over, as
    /// SentencePiece does).
    public func decodeBytes(_ ids: [Int32]) -> [UInt8] {
        var out: [UInt8] = []
        var atStart = stripsLeadingSpaceOnDecode
        for id in ids {
            let b = bytes(of: id)
            if atStart && !b.isEmpty {
                atStart = false
                if b[0] == 0x20 { out.append(contentsOf: b.dropFirst()); continue }
            }
            out.append(contentsOf: b)
        }
        return out
    }

    /// Lossy UTF-8 decoding of the concatenated bytes (invalid sequences become U+FFFD).
    public func decode(_ ids: [Int32]) -> String {
        String(decoding: decodeBytes(ids), as: UTF8.self)
    }
}

/// Turns a stream of token ids into text without ever splitting a multi-byte UTF-8 character:
/// push returns the longest valid UTF-8 prefix not yet emitted; invalid bytes that can never become
/// valid are emitted as U+FFFD; finish() flushes the rest.
///
/// The concatenation of everything returned by `push` and `finish` equals `tokenizer.decode(ids)` of the same ids
/// (including the removal of the dummy-prefix space from the first token for SentencePiece vocabularies).
/// When streaming a *continuation* of a prompt that was not pushed, use `init(tokenizer:stripLeadingSpace: false)`
/// so that the first generated word keeps its space.
public struct StreamingDecoder: Sendable {
    private let tokenizer: any Tokenizer
    private var pending: [UInt8] = []
    private var atStart: Bool

    public init(tokenizer: any Tokenizer) {
        self.init(tokenizer: tokenizer, stripLeadingSpace: tokenizer.stripsLeadingSpaceOnDecode)
    }

    public init(tokenizer: any Tokenizer, stripLeadingSpace: Bool) {
        self.tokenizer = tokenizer
        self.atStart = stripLeadingSpace
    }

    public mutating func push(_ id: Int32) -> String {
        var b = tokenizer.bytes(of: id)
        if atStart && !b.isEmpty {
            atStart = false
            if b[0] == 0x20 { b.removeFirst() }
        }
        return push(bytes: b)
    }

    /// Feeds raw bytes (for callers that already have them).
    public mutating func push(bytes: [UInt8]) -> String {
        if bytes.isEmpty && pending.isEmpty { return "" }
        pending.append(contentsOf: bytes)
        let cut = StreamingDecoder.completePrefixLength(pending)
        if cut == 0 { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The length of the prefix of `b` that can be decoded now: everything except a trailing sequence that is a
    /// proper prefix of some well-formed UTF-8 character (and so may still be completed by later bytes).
    /// Cutting there never changes the lossy decoding, because such a sequence starts with a lead byte, which
    /// always ends any ill-formed subsequence before it.
    static func completePrefixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        var i = n - 1
        var continuation = 0
        while i >= 0 && continuation <= 3 {
            let c = b[i]
            if c & 0xC0 == 0x80 {  // continuation byte: keep looking for its lead
                i -= 1
                continuation += 1
                continue
            }
            let need: Int
            switch c {
            case 0xC2...0xDF: need = 2
            case 0xE0...0xEF: need = 3
            case 0xF0...0xF4: need = 4
            default: return n  // ASCII or a byte that can never start a character
            }
            let have = n - i
            if have >= need { return n }  // complete (or over-long: invalid either way)
            if have >= 2 {
                let s = b[i + 1]
                let ok: Bool
                switch c {
                case 0xE0: ok = (0xA0...0xBF).contains(s)
                case 0xED: ok = (0x80...0x9F).contains(s)
                case 0xF0: ok = (0x90...0xBF).contains(s)
                case 0xF4: ok = (0x80...0x8F).contains(s)
                default: ok = (0x80...0xBF).contains(s)
                }
                if !ok { return n }
            }
            return i
        }
        return n
    }
}
