import XCTest
@testable import GrokTokenizer

final class StreamingDecoderTests: XCTestCase {
    private func stream(_ tok: any Tokenizer, _ ids: [Int32]) -> (text: String, pieces: [String]) {
        var d = StreamingDecoder(tokenizer: tok)
        var pieces: [String] = []
        for id in ids { pieces.append(d.push(id)) }
        pieces.append(d.finish())
        return (pieces.joined(), pieces)
    }

    func testStreamingEqualsDecode() {
        let strings = Strings.fixed + Strings.random(count: 200, seed: 0xDEC0DE)
        for (name, tok) in Fixtures.all {
            for s in strings {
                let ids = tok.encode(s, addBOS: true)
                let streamed = stream(tok, ids).text
                XCTAssertEqual(Array(streamed.utf8), Array(tok.decode(ids).utf8), "\(name): \(quoted(s))")
                XCTAssertEqual(Array(streamed.utf8), Array(s.utf8), "\(name): \(quoted(s))")
            }
        }
    }

    func testCharactersSplitAcrossByteFallbackTokens() {
        let tok = Fixtures.spm512
        let ids = tok.encode("a🙂b中", addBOS: false)
        // 🙂 and 中 are not pieces of the 512 vocabulary: they come out as 4 and 3 byte tokens.
        XCTAssertEqual(ids.filter { tok.tokenType(of: $0) == .byte }.count, 7)
        var d = StreamingDecoder(tokenizer: tok)
        var outputs: [String] = []
        for id in ids { outputs.append(d.push(id)) }
        XCTAssertEqual(d.finish(), "")
        // Nothing is emitted until a character is complete, and it is emitted as soon as it is.
        XCTAssertEqual(outputs.filter { !$0.isEmpty }, ["a", "🙂", "b", "中"])
        XCTAssertEqual(outputs.count, ids.count)
        XCTAssertEqual(outputs.joined(), "a🙂b中")
    }

    func testInvalidBytesBecomeReplacementCharacters() {
        let tok = Fixtures.spm512
        func byte(_ b: UInt8) -> Int32 { tok.id(ofPiece: bytePieceName(b))! }
        let a = tok.id(ofPiece: "a")!
        let cases: [([Int32], [String])] = [
            // A truncated 3-byte sequence followed by an ASCII letter: one U+FFFD, and the letter survives.
            ([byte(0xE4), byte(0xB8), a], ["", "", "\u{FFFD}a"]),
            // Bytes that can never start or continue a character are emitted at once.
            ([byte(0xFF), a, byte(0x80)], ["\u{FFFD}", "a", "\u{FFFD}"]),
            // E0 must be followed by A0...BF: E0 80 is invalid as soon as the 80 arrives.
            ([byte(0xE0), byte(0x80), a], ["", "\u{FFFD}\u{FFFD}", "a"]),
            // A lead byte interrupted by another character's lead byte.
            ([byte(0xF0), byte(0x9F), byte(0xE4), byte(0xB8), byte(0xAD)], ["", "", "\u{FFFD}", "", "中"]),
            // Over-long encodings and surrogates are never valid.
            ([byte(0xC0), byte(0xAF), byte(0xED), byte(0xA0), byte(0x80)],
             ["\u{FFFD}", "\u{FFFD}", "", "\u{FFFD}\u{FFFD}", "\u{FFFD}"]),
        ]
        for (ids, expected) in cases {
            var d = StreamingDecoder(tokenizer: tok)
            let got = ids.map { d.push($0) }
            XCTAssertEqual(got, expected, "\(ids)")
            XCTAssertEqual(d.finish(), "")
            XCTAssertEqual(got.joined(), tok.decode(ids))
        }
        // An incomplete character at the end is flushed by finish() as U+FFFD.
        var d = StreamingDecoder(tokenizer: tok)
        XCTAssertEqual(d.push(a), "a")
        XCTAssertEqual(d.push(byte(0xF0)), "")
        XCTAssertEqual(d.push(byte(0x9F)), "")
        XCTAssertEqual(d.finish(), "\u{FFFD}")
        XCTAssertEqual(tok.decode([a, byte(0xF0), byte(0x9F)]), "a\u{FFFD}")
    }

    func testRandomByteSoupMatchesDecode() {
        let tok = Fixtures.spm512
        var g = SeededGenerator(seed: 99)
        for _ in 0..<300 {
            let n = Int.random(in: 0...12, using: &g)
            let ids: [Int32] = (0..<n).map { _ in
                Bool.random(using: &g) ? tok.id(ofPiece: bytePieceName(UInt8.random(in: 0...255, using: &g)))!
                                       : Int32.random(in: 0..<Int32(tok.vocabularySize), using: &g)
            }
            XCTAssertEqual(Array(stream(tok, ids).text.utf8), Array(tok.decode(ids).utf8), "\(ids)")
        }
    }

    func testDummyPrefixSpace() {
        let tok = Fixtures.spm512
        let ids = tok.encode("Hello world", addBOS: true)
        XCTAssertEqual(stream(tok, ids).text, "Hello world")
        // Streaming a continuation: keep the first token's space.
        var d = StreamingDecoder(tokenizer: tok, stripLeadingSpace: false)
        let out = ids.map { d.push($0) }.joined() + d.finish()
        XCTAssertEqual(out, " Hello world")
        // Byte-level tokenizers never strip.
        let b = Fixtures.bpe512
        XCTAssertEqual(stream(b, b.encode(" x", addBOS: false)).text, " x")
    }
}
