import XCTest
@testable import GrokTokenizer

final class RoundTripTests: XCTestCase {
    private func assertRoundTrips(_ tok: any Tokenizer, _ name: String, _ strings: [String],
                                  file: StaticString = #filePath, line: UInt = #line) {
        for s in strings {
            let ids = tok.encode(s, addBOS: false)
            let back = tok.decode(ids)
            // Compare bytes, not String equality (which is canonical equivalence).
            XCTAssertEqual(Array(back.utf8), Array(s.utf8), "\(name): \(quoted(s)) -> \(ids) -> \(quoted(back))",
                           file: file, line: line)
            for id in ids {
                XCTAssert(id >= 0 && Int(id) < tok.vocabularySize, "\(name): id \(id) out of range", file: file, line: line)
                XCTAssertNotEqual(tok.tokenType(of: id), .control, "\(name): control token from plain text",
                                  file: file, line: line)
            }
        }
    }

    func testFixedStrings() {
        for (name, tok) in Fixtures.all { assertRoundTrips(tok, name, Strings.fixed) }
    }

    func testRandomUnicodeStrings() {
        let strings = Strings.random(count: 300, seed: 0x5EED)
        for (name, tok) in Fixtures.all { assertRoundTrips(tok, name, strings) }
    }

    func testCorpusRoundTrips() {
        for (name, tok) in Fixtures.all { assertRoundTrips(tok, name, [SyntheticCorpus.text]) }
    }

    func testEmptyString() {
        for (_, tok) in Fixtures.all {
            XCTAssertEqual(tok.encode("", addBOS: false), [])
            XCTAssertEqual(tok.decode([]), "")
        }
        XCTAssertEqual(Fixtures.spm512.encode("", addBOS: true), [1])
        XCTAssertEqual(Fixtures.bpe512.encode("", addBOS: true), [], "Grok-2 has no BOS")
    }

    func testBOSIsSkippedWhenStrippingTheDummyPrefix() {
        let tok = Fixtures.spm512
        for s in ["Hello", " Hello", "\nHello", "42"] {
            let ids = tok.encode(s, addBOS: true)
            XCTAssertEqual(ids.first, 1)
            XCTAssertEqual(tok.decode(ids), s)
        }
    }

    func testDummyPrefixOnlyAtTheStart() {
        let tok = Fixtures.spm512
        XCTAssertTrue(tok.stripsLeadingSpaceOnDecode)
        XCTAssertFalse(Fixtures.bpe512.stripsLeadingSpaceOnDecode)
        // "\n" is user-defined: the text after it gets no second dummy "▁" (SentencePiece, unlike llama.cpp).
        let ids = tok.encode("a\nb", addBOS: false)
        XCTAssertEqual(ids.map { tok.piece(of: $0) }, ["▁a", "\n", "b"])
        XCTAssertEqual(tok.decode(ids), "a\nb")
    }

    func testParseSpecial() {
        let spm = Fixtures.spm512
        // Control tokens are only recognised with parseSpecial; the text after one gets a dummy prefix.
        let plain = spm.encode("[BOS]Hi", addBOS: false)
        XCTAssertFalse(plain.contains(1))
        let parsed = spm.encode("[BOS]Hi", addBOS: false, parseSpecial: true)
        XCTAssertEqual(parsed.first, 1)
        XCTAssertEqual(Array(parsed.dropFirst()), spm.encode("Hi", addBOS: false))
        // User-defined pieces are matched either way.
        let sep = spm.id(ofPiece: "<|separator|>")!
        XCTAssertEqual(spm.tokenType(of: sep), .userDefined)
        XCTAssertTrue(spm.encode("a<|separator|>b", addBOS: false).contains(sep))

        let bpe = Fixtures.bpe512
        let bsep = bpe.id(ofPiece: "<|separator|>")!
        XCTAssertEqual(bsep, 1)
        XCTAssertFalse(bpe.encode("Human: hi<|separator|>\n\n", addBOS: false).contains(bsep))
        let chat = bpe.encode("Human: hi<|separator|>\n\nAssistant:", addBOS: false, parseSpecial: true)
        XCTAssertEqual(chat.filter { $0 == bsep }.count, 1)
        let at = chat.firstIndex(of: bsep)!
        XCTAssertEqual(Array(chat[..<at]), bpe.encode("Human: hi", addBOS: false))
        XCTAssertEqual(Array(chat[(at + 1)...]), bpe.encode("\n\nAssistant:", addBOS: false))
        XCTAssertEqual(bpe.decode(chat), "Human: hi\n\nAssistant:", "control tokens decode to nothing")
        XCTAssertEqual(bpe.encode("<|eos|>", addBOS: false, parseSpecial: true), [2])
    }

    func testBytesAndPieces() {
        let spm = Fixtures.spm512
        XCTAssertEqual(spm.bytes(of: 1), [], "control")
        XCTAssertEqual(spm.bytes(of: 3), [], "unknown")
        let nl = spm.id(ofPiece: "<0x0A>")!
        XCTAssertEqual(spm.bytes(of: nl), [0x0A])
        XCTAssertEqual(spm.tokenType(of: nl), .byte)
        XCTAssertEqual(spm.bytes(of: spm.id(ofPiece: "▁the")!), Array(" the".utf8))
        XCTAssertEqual(spm.bytes(of: spm.id(ofPiece: "  ")!), [0x20, 0x20])
        XCTAssertEqual(spm.bytes(of: -1), [])
        XCTAssertEqual(spm.bytes(of: 512), [])
        XCTAssertEqual(spm.piece(of: 512), "")
        XCTAssertEqual(spm.piece(of: 0), "[PAD]")

        let bpe = Fixtures.bpe512
        XCTAssertEqual(bpe.bytes(of: 2), [], "<|eos|> is control")
        XCTAssertEqual(bpe.piece(of: 2), "<|eos|>")
        XCTAssertEqual(bpe.bytes(of: bpe.id(ofPiece: "Ġthe")!), Array(" the".utf8))
        XCTAssertEqual(bpe.bytes(of: bpe.id(ofPiece: "Ċ")!), [0x0A])
        XCTAssertEqual(bpe.bytes(of: bpe.id(ofPiece: "Ā")!), [0x00])
        XCTAssertEqual(bpe.eosID, 2)
        XCTAssertNil(bpe.bosID)
        XCTAssertEqual(spm.bosID, 1)
        XCTAssertEqual(spm.eosID, 2)
        XCTAssertFalse(spm.addsBOSByDefault, "the Grok-1 runner adds no BOS")
        XCTAssertFalse(bpe.addsBOSByDefault)
    }

    func testLossyDecodeOfInvalidBytes() {
        let spm = Fixtures.spm512
        let e4 = spm.id(ofPiece: "<0xE4>")!, ff = spm.id(ofPiece: "<0xFF>")!
        let a = spm.id(ofPiece: "a")!
        XCTAssertEqual(spm.decode([e4, a]), "\u{FFFD}a")
        XCTAssertEqual(spm.decode([ff, ff]), "\u{FFFD}\u{FFFD}")
    }
}
