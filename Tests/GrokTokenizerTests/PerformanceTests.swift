import XCTest
import Foundation
@testable import GrokTokenizer

/// Encoding 100 KB must take well under a second even in a debug build: merges use a heap over a linked list
/// of symbols (no rescans), so even a single 100 KB word without any space is n log n.
final class PerformanceTests: XCTestCase {
    private func hundredKB() -> String {
        var s = ""
        var k: UInt64 = 1
        while s.utf8.count < 100_000 {
            s += SyntheticCorpus.text
            s += Strings.random(count: 20, seed: k).joined(separator: " ")
            k += 1
        }
        return s
    }

    private func time(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    func testEncoding100KB() {
        let text = hundredKB()
        for (name, tok) in [("spm4096", Fixtures.spm4096), ("bpe4096", Fixtures.bpe4096)] {
            _ = tok.encode("warm up", addBOS: false)
            var ids: [Int32] = []
            let t = time { ids = tok.encode(text, addBOS: false) }
            print("\(name): encoded \(text.utf8.count) bytes into \(ids.count) tokens in \(String(format: "%.3f", t)) s")
            XCTAssertLessThan(t, 1.0, name)
            XCTAssertEqual(Array(tok.decode(ids).utf8), Array(text.utf8))
        }
    }

    func testOneLongWord() {
        // No space, no repetition to memoise: one 100 KB chunk / pre-token through the merge loop.
        var g = SeededGenerator(seed: 5)
        let letters = Array("etaoinshrdlucmfwypvbgkqjxz")
        let word = String((0..<100_000).map { _ in letters[Int.random(in: 0..<letters.count, using: &g)] })
        for (name, tok) in [("spm4096", Fixtures.spm4096), ("bpe4096", Fixtures.bpe4096)] {
            var ids: [Int32] = []
            let t = time { ids = tok.encode(word, addBOS: false) }
            print("\(name): one 100 KB word into \(ids.count) tokens in \(String(format: "%.3f", t)) s")
            XCTAssertLessThan(t, 1.0, name)
            XCTAssertEqual(tok.decode(ids), word)
        }
    }

    func testSyntheticVocabularyBuildTime() {
        let t = time { _ = SyntheticVocabulary.sentencePiece(size: 4096); _ = SyntheticVocabulary.byteLevelBPE(size: 4096) }
        print("synthetic 4096 vocabularies built in \(String(format: "%.3f", t)) s")
        XCTAssertLessThan(t, 5.0)
    }
}
