import XCTest
@testable import GrokTokenizer

/// The real 512-piece vocabulary of shared/reference/grok1-tiny-ref-f32.gguf (ReferenceGrok1Vocabulary.swift).
///
/// Its user-defined-looking pieces ("\n", "\n\n", "\t", "  ", "   ", "    ", digits, "<|separator|>", ids 4-20)
/// are typed normal (1) with score 0, so, as in llama.cpp, they take part in BPE like any other normal piece:
/// a one-character piece is produced directly, "\n\n" by merging two "\n" (score 0 beats every learned merge,
/// whose scores are -0, -1, ...), and "  " (literal spaces; the text's spaces are "▁" by then) or
/// "<|separator|>" (no prefix of it is a piece) can never be formed.
final class ReferenceVocabularyTests: XCTestCase {
    let tok = Fixtures.referenceGrok1

    func testLoads() {
        XCTAssertEqual(tok.vocabularySize, 512)
        XCTAssertEqual(tok.piece(of: 277), "▁t")
        XCTAssertEqual(tok.tokenType(of: 21), .byte)
        XCTAssertEqual(tok.tokenType(of: 5), .normal)
        XCTAssertFalse(tok.addsBOSByDefault)
    }

    /// Worked by hand with SentencePiece BPE: "▁T"(-91) then "▁Th"(-109); "▁The" is not a piece. "qu"(-30),
    /// "▁qu"(-40), "ck"(-66), "▁qui"(-96); "▁quick" is not a piece. "▁b"(-9), "ow"(-29): "row", "own", "▁br" are
    /// not pieces. Nothing pairs in "▁jumps" ("▁j", "ju", "um", "mp", "ps" are not pieces) nor in "▁dog".
    func testQuickBrownFox() {
        let ids = tok.encode("The quick brown fox jumps over the lazy dog.", addBOS: false)
        XCTAssertEqual(ids, [386, 436, 373, 343, 286, 439, 306, 442, 298, 440, 458, 435, 496, 446, 451, 455, 445,
                             288, 313, 318, 314, 438, 473, 447, 435, 449, 440, 454, 464])
        XCTAssertEqual(ids.map { tok.piece(of: $0) },
                       ["▁Th", "e", "▁qui", "ck", "▁b", "r", "ow", "n", "▁f", "o", "x", "▁", "j", "u", "m", "p", "s",
                        "▁o", "ver", "▁the", "▁l", "a", "z", "y", "▁", "d", "o", "g", "."])
        XCTAssertEqual(tok.decode(ids), "The quick brown fox jumps over the lazy dog.")
    }

    /// "\n\n\n": two candidate "\n\n" merges with equal score 0, the leftmost wins -> "\n\n", "\n".
    /// "bright" has no "▁" so it is "b" + "right" ("br" -129 loses to "gh" -26 / "ght" -48 / "ri" -39 / "right" -74).
    /// Digits are single-character pieces and never merge ("▁2", "20" are not pieces).
    func testNewlinesAndDigits() {
        let ids = tok.encode("the window\n\n\nbright 2024", addBOS: true)
        XCTAssertEqual(ids, [1, 318, 381, 5, 4, 452, 351, 435, 12, 10, 12, 14])
        XCTAssertEqual(ids.map { tok.piece(of: $0) },
                       ["[BOS]", "▁the", "▁window", "\n\n", "\n", "b", "right", "▁", "2", "0", "2", "4"])
        XCTAssertEqual(tok.decode(ids), "the window\n\n\nbright 2024")
    }

    /// Literal-space pieces never match (spaces are "▁" by the time pieces are looked up), "▁▁" is not a
    /// piece, and "<|separator|>" is spelt out: "<" and "|" by byte fallback, "se", "p", "ar", "at", "or".
    func testSpacesAndSeparatorAreNotSpecialHere() {
        let ids = tok.encode("  x\t<|separator|>", addBOS: false)
        XCTAssertEqual(ids, [435, 435, 435, 458, 6, 81, 145, 350, 455, 285, 296, 294, 145, 83])
        XCTAssertEqual(ids.map { tok.piece(of: $0) },
                       ["▁", "▁", "▁", "x", "\t", "<0x3C>", "<0x7C>", "se", "p", "ar", "at", "or", "<0x7C>", "<0x3E>"])
        XCTAssertEqual(tok.decode(ids), "  x\t<|separator|>")
    }

    /// "ü" and "ß" are not pieces (byte fallback, two bytes each); "中", "文" and "🙂" are.
    func testByteFallback() {
        let ids = tok.encode("Grüße 中文🙂", addBOS: false)
        XCTAssertEqual(ids, [435, 479, 439, 216, 209, 216, 180, 436, 435, 503, 504, 511])
        XCTAssertEqual(tok.decode(ids), "Grüße 中文🙂")
    }

    func testRoundTrips() {
        for s in Strings.fixed + Strings.random(count: 200, seed: 7) {
            XCTAssertEqual(Array(tok.decode(tok.encode(s, addBOS: true)).utf8), Array(s.utf8), quoted(s))
        }
    }

    /// The reference prompt's ids (shared/reference/prompt.json) are arbitrary pieces, not an encoded text;
    /// they still decode and stream identically.
    func testReferencePromptDecodes() {
        let prompt: [Int32] = [1, 39, 389, 34, 400, 364, 173, 290]
        var d = StreamingDecoder(tokenizer: tok)
        let streamed = prompt.map { d.push($0) }.joined() + d.finish()
        XCTAssertEqual(streamed, tok.decode(prompt))
        XCTAssertEqual(tok.decode(prompt), "\u{12}ore\rso de\u{FFFD}an")
    }
}
