import XCTest
@testable import GrokTokenizer

/// Encodings pinned for the size-512 synthetic vocabularies. They were computed once, cross-checked against an
/// independent Python implementation (llama.cpp's SPM merge loop; Python `regex` with the grok-2 pattern plus
/// GPT-2's bpe()), and read by hand: digits are one token each, "\n\n" and the 4-space run are single
/// user-defined tokens in the SentencePiece vocabulary, characters outside the vocabulary fall back to bytes,
/// and "<|separator|>" is one token in the SentencePiece vocabulary (user-defined) but plain text in the
/// byte-level one (control, only matched with parseSpecial).
final class KnownEncodingTests: XCTestCase {
    private func check(_ tok: any Tokenizer, _ cases: [(String, [Int32], [String])],
                       file: StaticString = #filePath, line: UInt = #line) {
        for (text, ids, pieces) in cases {
            let got = tok.encode(text, addBOS: false)
            XCTAssertEqual(got, ids, quoted(text), file: file, line: line)
            XCTAssertEqual(got.map { tok.piece(of: $0) }, pieces, quoted(text), file: file, line: line)
            XCTAssertEqual(tok.decode(got), text, file: file, line: line)
        }
    }

    func testSentencePiece512() {
        check(Fixtures.spm512, [
            ("Hello world", [398, 458, 331, 407, 404, 301, 296, 350], ["▁", "H", "el", "l", "o", "▁w", "or", "ld"]),
            ("The keeper climbed the stairs.\n\n",
             [335, 288, 345, 399, 399, 415, 290, 300, 407, 367, 414, 310, 293, 324, 360, 402, 406, 413, 5],
             ["▁T", "he", "▁k", "e", "e", "p", "er", "▁c", "l", "im", "b", "ed", "▁the", "▁st", "ai", "r", "s", ".", "\n\n"]),
            ("x = 42", [375, 319, 398, 12, 10], ["▁x", "▁=", "▁", "4", "2"]),
            ("café 中文 🙂", [300, 400, 417, 482, 398, 256, 212, 201, 258, 178, 163, 398, 268, 187, 181, 158],
             ["▁c", "a", "f", "é", "▁", "<0xE4>", "<0xB8>", "<0xAD>", "<0xE6>", "<0x96>", "<0x87>", "▁",
              "<0xF0>", "<0x9F>", "<0x99>", "<0x82>"]),
            ("it's  ok\tnow", [303, 401, 440, 406, 20, 404, 421, 18, 403, 404, 422],
             ["▁i", "t", "'", "s", "  ", "o", "k", "\t", "n", "o", "w"]),
            ("<|separator|>", [398, 23], ["▁", "<|separator|>"]),
            ("def f(n):\n    return n * 10\n",
             [292, 399, 417, 299, 426, 403, 427, 424, 4, 22, 285, 363, 403, 304, 359, 398, 9, 8, 4],
             ["▁d", "e", "f", "▁f", "(", "n", ")", ":", "\n", "    ", "re", "tur", "n", "▁n", "▁*", "▁", "1", "0", "\n"]),
        ])
    }

    func testByteLevel512() {
        check(Fixtures.bpe512, [
            ("Hello world", [43, 320, 79, 82, 282, 276, 354], ["H", "el", "l", "o", "Ġw", "or", "ld"]),
            ("The keeper climbed the stairs.\n\n",
             [506, 360, 442, 452, 278, 79, 353, 69, 296, 272, 319, 368, 85, 86, 307, 202],
             ["The", "Ġk", "ee", "per", "Ġc", "l", "im", "b", "ed", "Ġthe", "Ġst", "ai", "r", "s", ".Ċ", "Ċ"]),
            ("x = 42", [91, 313, 224, 23, 21], ["x", "Ġ=", "Ġ", "4", "2"]),
            ("café 中文 🙂", [70, 68, 73, 131, 106, 224, 164, 120, 259, 166, 248, 233, 421, 251, 228],
             ["c", "a", "f", "Ã", "©", "Ġ", "ä", "¸", "Ń", "æ", "ĸ", "ĩ", "ĠðŁ", "Ļ", "Ĥ"]),
            ("it's  ok\tnow", [326, 10, 86, 224, 224, 449, 201, 81, 82, 90],
             ["it", "'", "s", "Ġ", "Ġ", "ok", "ĉ", "n", "o", "w"]),
            ("<|separator|>", [31, 95, 86, 72, 83, 280, 295, 276, 95, 33],
             ["<", "|", "s", "e", "p", "ar", "at", "or", "|", ">"]),
            ("def f(n):\n    return n * 10\n", [369, 73, 281, 11, 81, 12, 504, 290, 501, 286, 388, 224, 20, 19, 202],
             ["de", "f", "Ġf", "(", "n", ")", ":Ċ", "ĠĠĠ", "Ġreturn", "Ġn", "Ġ*", "Ġ", "1", "0", "Ċ"]),
        ])
    }

    func testSentencePieceLayout() {
        let v = SyntheticVocabulary.sentencePiece(size: 512)
        XCTAssertEqual(v.tokens.count, 512)
        XCTAssertEqual(Array(v.tokens[0..<4]), ["[PAD]", "[BOS]", "[EOS]", "[UNK]"])
        XCTAssertEqual(Array(v.tokenTypes![0..<4]), [3, 3, 3, 2])
        let ud = SyntheticVocabulary.sentencePieceUserDefined
        XCTAssertEqual(Array(v.tokens[4..<(4 + ud.count)]), ud)
        XCTAssertTrue(v.tokenTypes![4..<(4 + ud.count)].allSatisfy { $0 == 4 })
        let firstByte = 4 + ud.count
        for b in 0..<256 {
            XCTAssertEqual(v.tokens[firstByte + b], bytePieceName(UInt8(b)))
            XCTAssertEqual(v.tokenTypes![firstByte + b], 6)
        }
        let firstNormal = firstByte + 256
        for id in firstNormal..<512 {
            XCTAssertEqual(v.tokenTypes![id], 1)
            XCTAssertEqual(v.scores![id], -Float(id - firstNormal))
        }
        XCTAssertEqual(v.tokens[firstNormal], "▁t", "the most frequent pair of the corpus")
        XCTAssertTrue(v.tokens.contains("▁the"))
        XCTAssertEqual([v.bosID, v.eosID, v.unknownID, v.paddingID], [1, 2, 3, 0])
        XCTAssertEqual(v.model, "llama")
        XCTAssertEqual(SyntheticVocabulary.sentencePiece(size: 512), v, "deterministic")
        XCTAssertEqual(SyntheticVocabulary.sentencePiece(size: 300).tokens.count, 300)
        XCTAssertEqual(SyntheticVocabulary.sentencePiece(size: 4096).tokens.count, 4096)
        XCTAssertEqual(Set(SyntheticVocabulary.sentencePiece(size: 4096).tokens).count, 4096)
    }

    func testByteLevelLayout() {
        let v = SyntheticVocabulary.byteLevelBPE(size: 512)
        XCTAssertEqual(v.tokens.count, 512)
        XCTAssertEqual(Array(v.tokens[0..<4]), ["<|pad|>", "<|separator|>", "<|eos|>", "<|mask|>"])
        XCTAssertEqual(Array(v.tokenTypes![0..<4]), [3, 3, 3, 3])
        XCTAssertEqual(v.tokens[4], "!", "GPT-2 order starts with the printable bytes")
        XCTAssertEqual(v.tokens[4 + 188], "Ā", "then byte 0x00 remapped to U+0100")
        XCTAssertEqual(v.tokens[4 + 255], "Ń", "and ends with byte 0xAD remapped to U+0143")
        XCTAssertEqual(v.merges!.count, 512 - 260)
        XCTAssertEqual(v.merges![0].split(separator: " ").count, 2)
        XCTAssertEqual([v.bosID, v.eosID, v.unknownID, v.paddingID], [nil, 2, nil, 0])
        XCTAssertEqual(v.pre, "grok-2")
        XCTAssertEqual(SyntheticVocabulary.byteLevelBPE(size: 512), v, "deterministic")
        let big = SyntheticVocabulary.byteLevelBPE(size: 4096)
        XCTAssertEqual(big.tokens.count, 4096)
        XCTAssertEqual(Set(big.tokens).count, 4096)
        XCTAssertEqual(SyntheticVocabulary.byteLevelBPE(size: 300).tokens.count, 300)
    }
}
