import Foundation

/// A SentencePiece `tokenizer.model`: the `ModelProto` protobuf (sentencepiece_model.proto), with
/// the fields a Grok-1 style BPE tokenizer needs, read and written by a small protobuf codec.
///
/// Read: `pieces` (piece 1, score 2, type 3), `trainer_spec` (model_type 3, unk/bos/eos/pad ids
/// 40-43) and `normalizer_spec.add_dummy_prefix` (3); every other field is skipped. Written: the
/// same, plus `trainer_spec.vocab_size`, `byte_fallback` and the special pieces' texts, and an
/// identity normalizer that keeps whitespace as it is (the Grok-1 tokenizer's settings,
/// grok-architecture.md §2.11).
public struct SentencePieceModel: Equatable, Sendable {
    public struct Piece: Equatable, Sendable {
        public var text: String
        public var score: Float
        /// 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte (also GGUF's token types).
        public var type: Int32

        public init(text: String, score: Float, type: Int32) {
            self.text = text
            self.score = score
            self.type = type
        }
    }

    public var pieces: [Piece]
    /// Special ids from `trainer_spec`; nil where the model has none (-1).
    public var unknownID: Int32?, bosID: Int32?, eosID: Int32?, paddingID: Int32?
    /// `normalizer_spec.add_dummy_prefix`: a space is put before the text.
    public var addDummyPrefix: Bool

    /// `trainer_spec.model_type` of BPE, the only kind read (1 is unigram).
    static let bpe: UInt64 = 2

    public init(pieces: [Piece], unknownID: Int32?, bosID: Int32?, eosID: Int32?, paddingID: Int32?, addDummyPrefix: Bool) {
        self.pieces = pieces
        self.unknownID = unknownID
        self.bosID = bosID
        self.eosID = eosID
        self.paddingID = paddingID
        self.addDummyPrefix = addDummyPrefix
    }

    /// Reads `tokenizer.model` at `path`.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError(file: path, field: "file", expected: "a readable tokenizer.model", found: "cannot read it")
        }
        try self.init(bytes: [UInt8](data), file: path)
    }

    /// Parses a serialized `ModelProto`; `file` names it in errors.
    public init(bytes: [UInt8], file: String) throws {
        var pieces: [Piece] = []
        var modelType: UInt64 = 1
        var ids: [UInt64: Int32] = [40: 0, 41: 1, 42: 2, 43: -1]   // proto defaults: unk 0, bos 1, eos 2, pad -1
        var addDummyPrefix = true
        var model = ProtobufReader(bytes: bytes[...], file: file, message: "ModelProto")
        while let (field, value) = try model.next() {
            switch (field, value) {
            case (1, .bytes(let raw)):
                var reader = ProtobufReader(bytes: raw, file: file, message: "pieces[\(pieces.count)]")
                var piece = Piece(text: "", score: 0, type: 1)
                while let (f, v) = try reader.next() {
                    switch (f, v) {
                    case (1, .bytes(let text)): piece.text = try reader.text(text, field: "piece")
                    case (2, .fixed32(let bits)): piece.score = Float(bitPattern: bits)
                    case (3, .varint(let type)):
                        guard (1...6).contains(type) else { throw reader.failure("type", "1...6", "\(type)") }
                        piece.type = Int32(type)
                    default: break
                    }
                }
                pieces.append(piece)
            case (2, .bytes(let raw)):
                var reader = ProtobufReader(bytes: raw, file: file, message: "trainer_spec")
                while let (f, v) = try reader.next() {
                    if f == 3, case .varint(let type) = v { modelType = type }
                    if (40...43).contains(f), case .varint(let id) = v { ids[f] = Int32(truncatingIfNeeded: id) }   // int32: negatives are 10-byte varints
                }
            case (3, .bytes(let raw)):
                var reader = ProtobufReader(bytes: raw, file: file, message: "normalizer_spec")
                while let (f, v) = try reader.next() {
                    if f == 3, case .varint(let flag) = v { addDummyPrefix = flag != 0 }
                }
            default: break
            }
        }
        guard modelType == Self.bpe else {
            throw model.failure("trainer_spec.model_type", "2 (BPE, as the Grok-1 tokenizer)", "\(modelType)")
        }
        guard !pieces.isEmpty else { throw model.failure("pieces", "at least one piece", "none") }
        for (field, id) in ids.sorted(by: { $0.key < $1.key }) where id < -1 || Int(id) >= pieces.count {
            throw model.failure("trainer_spec field \(field)", "-1 or a piece id below \(pieces.count)", "\(id)")
        }
        func special(_ field: UInt64) -> Int32? { ids[field]! >= 0 ? ids[field]! : nil }
        self.init(pieces: pieces, unknownID: special(40), bosID: special(41), eosID: special(42), paddingID: special(43),
                  addDummyPrefix: addDummyPrefix)
    }

    /// The serialized `ModelProto`.
    public var serialized: [UInt8] {
        var model = ProtobufWriter()
        for piece in pieces {
            var p = ProtobufWriter()
            p.bytes(1, Array(piece.text.utf8))
            p.fixed32(2, piece.score.bitPattern)
            p.varint(3, UInt64(piece.type))
            model.bytes(1, p.output)
        }
        var trainer = ProtobufWriter()
        trainer.varint(3, Self.bpe)
        trainer.varint(4, UInt64(pieces.count))
        trainer.varint(35, pieces.contains { $0.type == 6 } ? 1 : 0)   // byte_fallback
        for (field, id) in [(40, unknownID), (41, bosID), (42, eosID), (43, paddingID)] {
            trainer.varint(field, UInt64(bitPattern: Int64(id ?? -1)))
            // unk/bos/eos/pad_piece (45-48): the SentencePiece library finds the special pieces by text.
            if let id { trainer.bytes(field + 5, Array(pieces[Int(id)].text.utf8)) }
        }
        model.bytes(2, trainer.output)
        var normalizer = ProtobufWriter()
        normalizer.bytes(1, Array("identity".utf8))
        normalizer.varint(3, addDummyPrefix ? 1 : 0)
        normalizer.varint(4, 0)   // remove_extra_whitespaces
        normalizer.varint(5, 1)   // escape_whitespaces (" " → "▁")
        model.bytes(3, normalizer.output)
        return model.output
    }

    // MARK: - GGUF

    /// The `tokenizer.ggml.*` keys of a Grok-1 GGUF: llama.cpp's SentencePiece ("llama") model, no
    /// BOS added (the Grok-1 runner encodes without one, §2.10).
    public var ggufMetadata: [(key: String, value: GGUFValue)] {
        var keys: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.pre", .string("default")),
            ("tokenizer.ggml.tokens", .array(pieces.map { .string($0.text) })),
            ("tokenizer.ggml.scores", .array(pieces.map { .float32($0.score) })),
            ("tokenizer.ggml.token_type", .array(pieces.map { .int32($0.type) })),
        ]
        for (key, id) in [("bos", bosID), ("eos", eosID), ("unknown", unknownID), ("padding", paddingID)] {
            if let id { keys.append(("tokenizer.ggml.\(key)_token_id", .uint32(UInt32(id)))) }
        }
        keys += [("tokenizer.ggml.add_bos_token", .bool(false)), ("tokenizer.ggml.add_space_prefix", .bool(addDummyPrefix)),
                 ("tokenizer.ggml.add_eos_token", .bool(false))]
        return keys
    }

    /// The SentencePiece model a GGUF's `tokenizer.ggml.*` keys describe, or nil when it has none.
    /// Absent scores are 0, absent token types normal.
    public init?(gguf file: GGUFFile) throws {
        guard let model = try file.string("tokenizer.ggml.model") else { return nil }
        guard model == "llama" else {
            throw CheckpointError(file: file.path, field: "metadata \"tokenizer.ggml.model\"",
                                  expected: "\"llama\" (a SentencePiece vocabulary, as Grok-1's)", found: quoted(model))
        }
        guard let tokens = try file.stringArray("tokenizer.ggml.tokens") else {
            throw CheckpointError(file: file.path, field: "metadata \"tokenizer.ggml.tokens\"", expected: "an array of strings", found: "nothing (key absent)")
        }
        let scores = try file.floatArray("tokenizer.ggml.scores") ?? []
        let types = try file.intArray("tokenizer.ggml.token_type") ?? []
        for (key, count) in [("scores", scores.count), ("token_type", types.count)] where count != 0 && count != tokens.count {
            throw CheckpointError(file: file.path, field: "metadata \"tokenizer.ggml.\(key)\"", expected: "\(tokens.count) entries", found: "\(count)")
        }
        func id(_ key: String) throws -> Int32? { try file.int("tokenizer.ggml.\(key)_token_id").map { Int32(truncatingIfNeeded: $0) } }
        self.init(pieces: tokens.indices.map { Piece(text: tokens[$0], score: scores.isEmpty ? 0 : scores[$0],
                                                      type: types.isEmpty ? 1 : Int32(truncatingIfNeeded: types[$0])) },
                  unknownID: try id("unknown"), bosID: try id("bos"), eosID: try id("eos"), paddingID: try id("padding"),
                  addDummyPrefix: try file.bool("tokenizer.ggml.add_space_prefix") ?? true)
    }
}

// MARK: - Protobuf

/// A protobuf field value by wire type (groups are refused).
private enum ProtobufValue {
    case varint(UInt64)
    case fixed64(UInt64)
    case bytes(ArraySlice<UInt8>)
    case fixed32(UInt32)
}

/// Reads the fields of one message, bounds-checked.
private struct ProtobufReader {
    let bytes: ArraySlice<UInt8>
    let file: String
    let message: String
    var position: Int

    init(bytes: ArraySlice<UInt8>, file: String, message: String) {
        self.bytes = bytes
        self.file = file
        self.message = message
        position = bytes.startIndex
    }

    func failure(_ field: String, _ expected: String, _ found: String) -> CheckpointError {
        CheckpointError(file: file, field: "\(message) \(field)", expected: expected, found: found)
    }

    /// The next (field number, value), or nil at the end of the message.
    mutating func next() throws -> (UInt64, ProtobufValue)? {
        guard position < bytes.endIndex else { return nil }
        let offset = position - bytes.startIndex
        let key = try varint()
        switch key & 7 {
        case 0: return (key >> 3, .varint(try varint()))
        case 1: return (key >> 3, .fixed64(UInt64(littleEndian: try take(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })))
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.endIndex - position) else {
                throw failure("field \(key >> 3) at offset \(offset)", "\(length) bytes", "\(bytes.endIndex - position) left (truncated?)")
            }
            return (key >> 3, .bytes(try take(Int(length))))
        case 5: return (key >> 3, .fixed32(UInt32(littleEndian: try take(4).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })))
        default: throw failure("field \(key >> 3) at offset \(offset)", "wire type 0, 1, 2 or 5", "\(key & 7)")
        }
    }

    func text(_ raw: ArraySlice<UInt8>, field: String) throws -> String {
        let text = String(decoding: raw, as: UTF8.self)
        guard text.utf8.elementsEqual(raw) else { throw failure(field, "UTF-8 text", "\(raw.count) bytes that are not") }
        return text
    }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count <= bytes.endIndex - position else { throw failure("at offset \(position - bytes.startIndex)", "\(count) more bytes", "the end (truncated?)") }
        defer { position += count }
        return bytes[position..<position + count]
    }

    private mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            let byte = try take(1).first!
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
        }
        throw failure("at offset \(position - bytes.startIndex)", "a varint of at most 10 bytes", "a longer one")
    }
}

/// Writes the fields of one message.
private struct ProtobufWriter {
    var output: [UInt8] = []

    mutating func varint(_ field: Int, _ value: UInt64) {
        raw(UInt64(field) << 3)
        raw(value)
    }

    mutating func fixed32(_ field: Int, _ value: UInt32) {
        raw(UInt64(field) << 3 | 5)
        withUnsafeBytes(of: value.littleEndian) { output.append(contentsOf: $0) }
    }

    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        raw(UInt64(field) << 3 | 2)
        raw(UInt64(value.count))
        output.append(contentsOf: value)
    }

    private mutating func raw(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            output.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        output.append(UInt8(v))
    }
}
