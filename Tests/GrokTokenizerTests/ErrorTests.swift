import XCTest
@testable import GrokTokenizer

final class ErrorTests: XCTestCase {
    private let llama = Fixtures.referenceGrok1Vocabulary
    private let gpt2 = SyntheticVocabulary.byteLevelBPE(size: 300)

    private func assertThrows(_ v: TokenizerVocabulary, _ expected: TokenizerError, _ message: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try makeTokenizer(v), file: file, line: line) { error in
            guard let e = error as? TokenizerError else {
                return XCTFail("not a TokenizerError: \(error)", file: file, line: line)
            }
            XCTAssertEqual(e, expected, file: file, line: line)
            XCTAssertEqual(e.description, message, file: file, line: line)
            XCTAssertFalse(e.description.contains("\n"), "one line", file: file, line: line)
        }
    }

    func testValidVocabulariesLoad() throws {
        XCTAssertNoThrow(try makeTokenizer(llama))
        XCTAssertNoThrow(try makeTokenizer(gpt2))
    }

    func testUnknownModel() {
        var v = llama
        v.model = "bert"
        assertThrows(v, .unsupportedModel("bert"), "tokenizer.ggml.model: expected \"llama\" or \"gpt2\", found \"bert\"")
    }

    func testUnsupportedPreTokenizer() {
        var v = gpt2
        v.pre = "llama3"
        assertThrows(v, .unsupportedPreTokenizer(model: "gpt2", pre: "llama3"),
                     "tokenizer.ggml.pre: expected \"grok-2\" (or absent) for model \"gpt2\", found \"llama3\"")
        v.pre = nil
        XCTAssertNoThrow(try makeTokenizer(v))
    }

    func testEmptyVocabulary() {
        var v = llama
        v.tokens = []
        v.scores = []
        v.tokenTypes = []
        v.bosID = nil; v.eosID = nil; v.unknownID = nil; v.paddingID = nil
        assertThrows(v, .emptyVocabulary, "tokenizer.ggml.tokens: expected at least 1 entry, found 0")
    }

    func testMissingScores() {
        var v = llama
        v.scores = nil
        assertThrows(v, .missingField(field: "tokenizer.ggml.scores", model: "llama", need: "one merge score per token"),
                     "tokenizer.ggml.scores: missing; model \"llama\" needs one merge score per token")
    }

    func testScoresLengthMismatch() {
        var v = llama
        v.scores!.removeLast()
        assertThrows(v, .countMismatch(field: "tokenizer.ggml.scores", expected: 512, found: 511),
                     "tokenizer.ggml.scores: expected 512 entries, found 511")
    }

    func testTokenTypesLengthMismatch() {
        var v = gpt2
        v.tokenTypes!.append(1)
        assertThrows(v, .countMismatch(field: "tokenizer.ggml.token_type", expected: 300, found: 301),
                     "tokenizer.ggml.token_type: expected 300 entries, found 301")
    }

    func testInvalidTokenType() {
        var v = llama
        v.tokenTypes![7] = 9
        assertThrows(v, .invalidTokenType(index: 7, value: 9), "tokenizer.ggml.token_type[7]: expected a type in 0...6, found 9")
    }

    func testIDsOutOfRange() {
        var v = llama
        v.bosID = 512
        assertThrows(v, .idOutOfRange(field: "tokenizer.ggml.bos_token_id", id: 512, vocabularySize: 512),
                     "tokenizer.ggml.bos_token_id: expected an id in 0..<512, found 512")
        v = gpt2
        v.eosID = -1
        assertThrows(v, .idOutOfRange(field: "tokenizer.ggml.eos_token_id", id: -1, vocabularySize: 300),
                     "tokenizer.ggml.eos_token_id: expected an id in 0..<300, found -1")
        v = llama
        v.unknownID = 1000
        assertThrows(v, .idOutOfRange(field: "tokenizer.ggml.unknown_token_id", id: 1000, vocabularySize: 512),
                     "tokenizer.ggml.unknown_token_id: expected an id in 0..<512, found 1000")
        v = llama
        v.paddingID = 600
        assertThrows(v, .idOutOfRange(field: "tokenizer.ggml.padding_token_id", id: 600, vocabularySize: 512),
                     "tokenizer.ggml.padding_token_id: expected an id in 0..<512, found 600")
    }

    func testAddBOSWithoutBOS() {
        var v = gpt2
        v.addBOS = true
        assertThrows(v, .missingBOS,
                     "tokenizer.ggml.bos_token_id: expected an id because tokenizer.ggml.add_bos_token is true, found none")
    }

    func testDuplicatePiece() {
        var v = llama
        v.tokens[300] = v.tokens[299]
        assertThrows(v, .duplicatePiece(piece: "▁c", firstID: 299, secondID: 300),
                     "tokenizer.ggml.tokens[300]: expected unique pieces, found \"▁c\" again (first at 299)")
    }

    func testMissingBytePieceForByteFallback() {
        var v = llama
        v.tokens[21 + 0x0A] = "<newline>"
        assertThrows(v, .missingBytePiece(byte: 0x0A, expectedPiece: "<0x0A>"),
                     "tokenizer.ggml.tokens: expected a piece \"<0x0A>\" for byte 0x0A, found none")
        v = gpt2
        let i = v.tokens.firstIndex(of: "Ā")!
        v.tokens[i] = "<nul>"
        assertThrows(v, .missingBytePiece(byte: 0x00, expectedPiece: "Ā"),
                     "tokenizer.ggml.tokens: expected a piece \"Ā\" for byte 0x00, found none")
    }

    func testMissingMerges() {
        var v = gpt2
        v.merges = nil
        assertThrows(v, .missingField(field: "tokenizer.ggml.merges", model: "gpt2",
                                      need: "the BPE merge list (\"left right\" in priority order)"),
                     "tokenizer.ggml.merges: missing; model \"gpt2\" needs the BPE merge list (\"left right\" in priority order)")
    }

    func testBadMerges() {
        var v = gpt2
        v.merges![3] = "Ġt hxyz"
        assertThrows(v, .invalidMerge(index: 3, merge: "Ġt hxyz", reason: "\"hxyz\" is not a token"),
                     "tokenizer.ggml.merges[3]: expected \"left right\" naming two tokens whose concatenation is a token, found \"Ġt hxyz\" (\"hxyz\" is not a token)")
        v = gpt2
        v.merges![0] = "abc"
        assertThrows(v, .invalidMerge(index: 0, merge: "abc", reason: "not two non-empty parts separated by one space"),
                     "tokenizer.ggml.merges[0]: expected \"left right\" naming two tokens whose concatenation is a token, found \"abc\" (not two non-empty parts separated by one space)")
        v = gpt2
        v.merges![1] = "q z"
        assertThrows(v, .invalidMerge(index: 1, merge: "q z", reason: "\"qz\" is not a token"),
                     "tokenizer.ggml.merges[1]: expected \"left right\" naming two tokens whose concatenation is a token, found \"q z\" (\"qz\" is not a token)")
        v = gpt2
        v.merges![2] = "xyz! a"
        assertThrows(v, .invalidMerge(index: 2, merge: "xyz! a", reason: "\"xyz!\" is not a token"),
                     "tokenizer.ggml.merges[2]: expected \"left right\" naming two tokens whose concatenation is a token, found \"xyz! a\" (\"xyz!\" is not a token)")
    }

    func testMessagesEscapeControlCharacters() {
        var v = llama
        v.tokens[5] = "\n"  // duplicate of id 4
        assertThrows(v, .duplicatePiece(piece: "\n", firstID: 4, secondID: 5),
                     "tokenizer.ggml.tokens[5]: expected unique pieces, found \"\\n\" again (first at 4)")
    }

    func testTypesInferredWhenAbsent() throws {
        var v = llama
        v.tokenTypes = nil
        let tok = try makeTokenizer(v)
        XCTAssertEqual(tok.tokenType(of: 21), .byte)
        XCTAssertEqual(tok.tokenType(of: 1), .control)
        XCTAssertEqual(tok.tokenType(of: 3), .unknown)
        XCTAssertEqual(tok.bytes(of: 21 + 0x41), [0x41])
        XCTAssertEqual(tok.encode("The quick", addBOS: false), Fixtures.referenceGrok1.encode("The quick", addBOS: false))
    }
}
