import XCTest
@testable import GrokTokenizer

/// Splits pinned from Python's `regex` module running the grok-2 pattern itself
/// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
/// (the scanner also agreed with it on 838 mixed and random strings).
final class PreTokenizerTests: XCTestCase {
    func testGrok2Splits() {
        let cases: [(String, [String])] = [
            ("Hello world", ["Hello", " world"]),
            ("it's they're I'M 'x", ["it", "'s", " they", "'re", " I", "'M", " '", "x"]),
            ("x  \n y", ["x", "  \n", " y"]),
            ("digits 12345 and 3.14", ["digits", " ", "1", "2", "3", "4", "5", " and", " ", "3", ".", "1", "4"]),
            ("   \n  \n", ["   \n  \n"]),
            ("  leading", [" ", " leading"]),
            ("trailing  ", ["trailing", "  "]),
            ("?!... x", ["?!...", " x"]),
            (" ?!...\n\nx", [" ?!...\n\n", "x"]),
            ("\u{3000}ideographic\u{3000}x", ["\u{3000}ideographic", "\u{3000}x"]),
            ("a\u{a0}b", ["a", "\u{a0}b"]),
            ("e\u{301}t\u{301}", ["e", "\u{301}t", "\u{301}"]),
            ("\r\n\r\nwin\r\n", ["\r\n\r\n", "win", "\r\n"]),
            ("中文日本語", ["中文日本語"]),
            ("emoji 🙂🎉 ok", ["emoji", " 🙂🎉", " ok"]),
            ("$x=1;", ["$x", "=", "1", ";"]),
            ("\t\tindent", ["\t", "\tindent"]),
            ("'s'S'll", ["'s", "'S", "'ll"]),
            ("", []),
        ]
        for (text, expected) in cases {
            let got = ByteLevelBPETokenizer.preTokenize(text)
            XCTAssertEqual(got.map { Array($0.unicodeScalars) }, expected.map { Array($0.unicodeScalars) }, quoted(text))
        }
    }

    func testPreTokensTileTheInput() {
        for s in Strings.fixed + Strings.random(count: 300, seed: 3) {
            let parts = ByteLevelBPETokenizer.preTokenize(s)
            XCTAssertEqual(Array(parts.joined().unicodeScalars), Array(s.unicodeScalars))
            XCTAssertFalse(parts.contains(""))
        }
    }

    func testGPT2ByteMapping() {
        XCTAssertEqual(GPT2Bytes.string(for: [0x20]), "Ġ")
        XCTAssertEqual(GPT2Bytes.string(for: [0x0A]), "Ċ")
        XCTAssertEqual(GPT2Bytes.string(for: [0x41]), "A")
        XCTAssertEqual(GPT2Bytes.string(for: [0x00]), "Ā")
        XCTAssertEqual(GPT2Bytes.string(for: [0xAD]), "Ń")
        XCTAssertEqual(GPT2Bytes.order.count, 256)
        XCTAssertEqual(Set(GPT2Bytes.order).count, 256)
        for b in 0...255 { XCTAssertEqual(GPT2Bytes.bytes(for: GPT2Bytes.string(for: [UInt8(b)])), [UInt8(b)]) }
    }
}
