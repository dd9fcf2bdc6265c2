import GrokTensor
import XCTest

final class ChecksumTests: XCTestCase {
    /// Published XXH64 values (seed 0): the empty input, short inputs, and one longer than a
    /// 32-byte stripe (python-xxhash's documented example).
    func testKnownXXH64Values() {
        func hash(_ text: String) -> UInt64 { Array(text.utf8).withUnsafeBytes { Checksum.xxh64($0) } }
        XCTAssertEqual(hash(""), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(hash("a"), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(hash("abc"), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(hash("Nobody inspects the spammish repetition"), 0xFBCE_A83C_8A37_8BF1)
    }
}
