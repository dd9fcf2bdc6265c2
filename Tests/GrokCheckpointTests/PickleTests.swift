import Foundation
import GrokTensor
import XCTest
@testable import GrokCheckpoint

/// The restricted pickle reader on streams Python wrote (hex below, from `pickle.dumps` with
/// numpy 2.4 / ml_dtypes 0.6 unless noted) and on hostile or broken ones; and the writer against
/// the bytes CPython writes with numpy 1.26.4 / ml_dtypes 0.3.2 (the official checkpoint's era).
final class PickleTests: XCTestCase {
    /// `np.arange(6, dtype=np.float32).reshape(2, 3)`, protocol 4.
    static let float32Protocol4 = "800495a3000000000000008c166e756d70792e5f636f72652e6d756c74696172726179948c0c5f7265636f6e7374727563749493948c056e756d7079948c076e6461727261799493944b0085944301629487945294284b014b024b03869468038c0564747970659493948c02663494898887945294284b038c013c944e4e4e4affffffff4affffffff4b00749462894318000000000000803f0000004000004040000080400000a040947494622e"
    /// `QuantizedWeight8bit(np.arange(-6, 6, dtype=np.int8).reshape(3, 4), bfloat16 [[0.5, 0.25, 1, 2]])`, protocol 4.
    static let quantizedProtocol4 = "8004952e010000000000008c085f5f6d61696e5f5f948c135175616e74697a6564576569676874386269749493942981947d94288c06776569676874948c166e756d70792e5f636f72652e6d756c74696172726179948c0c5f7265636f6e7374727563749493948c056e756d7079948c076e6461727261799493944b0085944301629487945294284b014b034b04869468098c0564747970659493948c02693194898887945294284b038c017c944e4e4e4affffffff4affffffff4b0074946289430cfafbfcfdfeff000102030405947494628c067363616c6573946808680b4b008594680d87945294284b014b014b04869468128c096d6c5f647479706573948c0862666c6f61743136949394898887945294284b038c013c944e4e4e4b024b024b40749462894308003f803e803f00409474946275622e"
    /// The same object written with numpy 1.26.4 and ml_dtypes 0.3.2.
    static let quantizedNumpy126 = "8004952d010000000000008c085f5f6d61696e5f5f948c135175616e74697a6564576569676874386269749493942981947d94288c06776569676874948c156e756d70792e636f72652e6d756c74696172726179948c0c5f7265636f6e7374727563749493948c056e756d7079948c076e6461727261799493944b0085944301629487945294284b014b034b04869468098c0564747970659493948c02693194898887945294284b038c017c944e4e4e4affffffff4affffffff4b0074946289430cfafbfcfdfeff000102030405947494628c067363616c6573946808680b4b008594680d87945294284b014b014b04869468128c096d6c5f647479706573948c0862666c6f61743136949394898887945294284b038c013c944e4e4e4b024b024b50749462894308003f803e803f00409474946275622e"
    /// bfloat16 `[[0.5, 0.25, 1, 2]]`, protocol 2: GLOBAL opcodes and bytes as `_codecs.encode(str, 'latin1')`.
    static let bfloat16Protocol2 = "8002636e756d70792e5f636f72652e6d756c746961727261790a5f7265636f6e7374727563740a7100636e756d70790a6e6461727261790a71014b00857102635f636f646563730a656e636f64650a7103580100000062710458060000006c6174696e317105867106527107877108527109284b014b014b0486710a636e756d70790a64747970650a710b636d6c5f6474797065730a62666c6f617431360a710c898887710d52710e284b0358010000003c710f4e4e4e4b024b024b4074711062896803580a000000003fc2803ec2803f004071116805867112527113747114622e"
    /// The float32 array above, protocol 5: `_frombuffer` with an in-band BYTEARRAY8.
    static let float32Protocol5 = "8005958e000000000000008c136e756d70792e5f636f72652e6e756d65726963948c0b5f66726f6d62756666657294939428961800000000000000000000000000803f0000004000004040000080400000a040948c056e756d7079948c0564747970659493948c02663494898887945294284b038c013c944e4e4e4affffffff4affffffff4b007494624b024b0386948c014394749452942e"
    /// `np.asfortranarray` of the float32 array, protocol 4.
    static let float32Fortran = "800495a3000000000000008c166e756d70792e5f636f72652e6d756c74696172726179948c0c5f7265636f6e7374727563749493948c056e756d7079948c076e6461727261799493944b0085944301629487945294284b014b024b03869468038c0564747970659493948c02663494898887945294284b038c013c944e4e4e4affffffff4affffffff4b0074946288431800000000000040400000803f00008040000000400000a040947494622e"

    func testFloat32ArrayProtocol4() throws {
        try withArray(Self.float32Protocol4) { array in
            XCTAssertEqual(array.dtype, .float32)
            XCTAssertEqual(array.shape, [2, 3])
            XCTAssertFalse(array.fortranOrder)
            XCTAssertEqual(floats(array), [0, 1, 2, 3, 4, 5])
        }
    }

    func testQuantizedWeightProtocol4() throws {
        for stream in [Self.quantizedProtocol4, Self.quantizedNumpy126] {
            let file = try load(stream)
            defer { withExtendedLifetime(file) {} }
            guard case .quantized(let weight, let scales) = file.leaf else { return XCTFail("not a QuantizedWeight8bit") }
            XCTAssertEqual(weight.dtype, .int8)
            XCTAssertEqual(weight.shape, [3, 4])
            XCTAssertEqual(weight.bytes.map { Int8(bitPattern: $0) }, Array(-6..<6))
            XCTAssertEqual(scales.dtype, .bfloat16)
            XCTAssertEqual(scales.shape, [1, 4])
            XCTAssertEqual(bfloats(scales), [0.5, 0.25, 1, 2])
        }
    }

    func testBFloat16Protocol2CopiesLatin1Bytes() throws {
        try withArray(Self.bfloat16Protocol2) { array in
            XCTAssertEqual(array.dtype, .bfloat16)
            XCTAssertEqual(array.shape, [1, 4])
            XCTAssertEqual(bfloats(array), [0.5, 0.25, 1, 2])
        }
    }

    func testFloat32Protocol5FromBuffer() throws {
        try withArray(Self.float32Protocol5) { array in
            XCTAssertEqual(array.shape, [2, 3])
            XCTAssertEqual(floats(array), [0, 1, 2, 3, 4, 5])
        }
    }

    func testFortranOrderStrides() throws {
        try withArray(Self.float32Fortran) { array in
            XCTAssertTrue(array.fortranOrder)
            XCTAssertEqual(array.strides, [1, 2])
            let values = floats(array)
            // Element [i, j] is at i · 1 + j · 2: the logical array is still arange(6).reshape(2, 3).
            XCTAssertEqual((0..<2).flatMap { i in (0..<3).map { j in values[i + 2 * j] } }, [0, 1, 2, 3, 4, 5])
        }
    }

    /// The writer gives exactly CPython's bytes: a small leaf (one frame) and one whose weight
    /// (64 KiB) goes outside the frames as BINBYTES.
    func testWriterMatchesCPythonBytes() throws {
        let weight = (0..<12).map { Int8($0 - 6) }
        let scales: [UInt16] = [0.5, 0.25, 1, 2].map { Half.bf16($0) }
        let small = weight.withUnsafeBytes { w in scales.withUnsafeBytes { s in
            bytes(PickleWriter(.quantized(weight: .array(.int8, shape: [3, 4], data: w), scales: .array(.bfloat16, shape: [1, 4], data: s))))
        } }
        XCTAssertEqual(small, bytesFromHex(Self.quantizedNumpy126))

        // Python: w = ((np.arange(2048 * 32) * 7) % 256 - 128).astype(np.int8).reshape(2048, 32); scales 0.5 of [1, 32].
        let head = "800495b6000000000000008c085f5f6d61696e5f5f948c135175616e74697a6564576569676874386269749493942981947d94288c06776569676874948c156e756d70792e636f72652e6d756c74696172726179948c0c5f7265636f6e7374727563749493948c056e756d7079948c076e6461727261799493944b0085944301629487945294284b014d00084b20869468098c0564747970659493948c02693194898887945294284b038c017c944e4e4e4affffffff4affffffff4b00749462894200000100"
        let tail = "95a200000000000000947494628c067363616c6573946808680b4b008594680d87945294284b014b014b20869468128c096d6c5f647479706573948c0862666c6f61743136949394898887945294284b038c013c944e4e4e4b024b024b50749462894340" + String(repeating: "003f", count: 32) + "9474946275622e"
        let big = (0..<2048 * 32).map { Int8(truncatingIfNeeded: ($0 * 7) % 256 - 128) }
        let half = [UInt16](repeating: Half.bf16(0.5), count: 32)
        let large = big.withUnsafeBytes { w in half.withUnsafeBytes { s in
            bytes(PickleWriter(.quantized(weight: .array(.int8, shape: [2048, 32], data: w), scales: .array(.bfloat16, shape: [1, 32], data: s))))
        } }
        XCTAssertEqual(large, bytesFromHex(head) + big.map { UInt8(bitPattern: $0) } + bytesFromHex(tail))
    }

    // MARK: - Refusals

    /// `pickle.dumps` of an object whose `__reduce__` returns `(os.system, ('ls',))`, protocols 2
    /// and 4: refused at the global, before anything could be called.
    func testRefusesOSSystem() throws {
        let global = try refusal(bytesFromHex("800263706f7369780a73797374656d0a710058020000006c7371018571025271032e"))
        XCTAssertTrue(global.description.contains("pickle offset 2 opcode 0x63 GLOBAL"), global.description)
        XCTAssertTrue(global.description.contains("found posix.system"), global.description)
        let stackGlobal = try refusal(bytesFromHex("8004951d000000000000008c05706f736978948c0673797374656d9493948c026c7394859452942e"))
        XCTAssertTrue(stackGlobal.description.contains("pickle offset 28 opcode 0x93 STACK_GLOBAL"), stackGlobal.description)
    }

    func testRefusesStackGlobalOutsideTheAllowList() throws {
        // PROTO 4, "builtins", "eval", STACK_GLOBAL
        let error = try refusal(bytesFromHex("8004") + string("builtins") + string("eval") + [0x93, 0x2E])
        XCTAssertTrue(error.description.contains("opcode 0x93 STACK_GLOBAL"), error.description)
        XCTAssertTrue(error.description.contains("found builtins.eval"), error.description)
    }

    func testRefusesCallingANonCallableGlobal() throws {
        // ml_dtypes.bfloat16() via REDUCE
        let error = try refusal(bytesFromHex("8004") + string("ml_dtypes") + string("bfloat16") + [0x93, 0x29, 0x52, 0x2E])
        XCTAssertTrue(error.description.contains("opcode 0x52 REDUCE"), error.description)
        XCTAssertTrue(error.description.contains("ml_dtypes.bfloat16 with 0 arguments"), error.description)
    }

    func testRefusesUnknownOpcodes() throws {
        let inst = try refusal(bytesFromHex("8002") + Array("ios\nsystem\n".utf8) + [0x2E])
        XCTAssertTrue(inst.description.contains("offset 2 opcode 0x69 INST"), inst.description)
        let junk = try refusal([0x80, 0x04, 0xFF])
        XCTAssertTrue(junk.description.contains("opcode 0xFF, not a pickle opcode"), junk.description)
    }

    func testRefusesTruncationAndTrailingBytes() throws {
        let whole = bytesFromHex(Self.float32Protocol4)
        let cut = try refusal(Array(whole[..<150]))
        XCTAssertTrue(cut.description.contains("opcode 0x95 FRAME: expected 163 bytes at offset 11"), cut.description)
        let payload = [UInt8](repeating: 1, count: 70_000)   // 64 KiB or more: a BINBYTES outside the frames
        let large = payload.withUnsafeBytes { bytes(PickleWriter(.array(.int8, shape: [70_000], data: $0))) }
        let cutPayload = try refusal(Array(large[..<1000]))
        XCTAssertTrue(cutPayload.description.contains("opcode 0x42 BINBYTES: expected 70000 bytes"), cutPayload.description)
        XCTAssertTrue(cutPayload.description.contains("(truncated?)"), cutPayload.description)
        let noStop = try refusal(Array(whole.dropLast()))
        XCTAssertTrue(noStop.description.contains("the end of the file (truncated?)"), noStop.description)
        let trailing = try refusal(whole + [0x2E])
        XCTAssertTrue(trailing.description.contains("found 1 more bytes"), trailing.description)
        let empty = try refusal([])
        XCTAssertTrue(empty.description.contains("found an empty file"), empty.description)
    }

    func testRefusesWrongDTypesAndSizes() throws {
        let f32 = bytesFromHex(Self.float32Protocol4)
        let f8 = try refusal(replacing(f32, "8c0266349489", with: "8c0266389489"))      // dtype('f8')
        XCTAssertTrue(f8.description.contains("found str \"f8\""), f8.description)
        let bigEndian = try refusal(replacing(f32, "8c013c94", with: "8c013e94"))       // byte order '>'
        XCTAssertTrue(bigEndian.description.contains("byte order \">\""), bigEndian.description)
        let short = try refusal(replacing(f32, "4b024b0386", with: "4b024b0486"))       // shape (2, 4) for 6 values
        XCTAssertTrue(short.description.contains("8 × 4 bytes of float32 data for shape [2, 4]"), short.description)
    }

    func testRefusesDeepNesting() throws {
        let deep = bytesFromHex("8004") + [0x29] + [UInt8](repeating: 0x85, count: 40) + [0x2E]   // ((((…),),),)
        let error = try refusal(deep)
        XCTAssertTrue(error.description.contains("nested at most 32 deep"), error.description)
    }

    // MARK: - Helpers

    private func load(_ hexStream: String) throws -> PickleFile {
        let directory = try makeScratchDirectory(for: self)
        return try PickleFile(path: try writeFile(bytesFromHex(hexStream), named: "leaf", in: directory))
    }

    /// Runs `body` on the array in `hexStream` while its file is open (the bytes live as long as the file).
    private func withArray(_ hexStream: String, _ body: (PickleArray) throws -> Void) throws {
        let file = try load(hexStream)
        guard case .array(let array) = file.leaf else { return XCTFail("not an array") }
        try withExtendedLifetime(file) { try body(array) }
    }

    private func refusal(_ stream: [UInt8]) throws -> CheckpointError {
        let directory = try makeScratchDirectory(for: self)
        let path = try writeFile(stream, named: "leaf", in: directory)
        do {
            _ = try PickleFile(path: path)
        } catch let error as CheckpointError {
            XCTAssertEqual(error.file, path)
            XCTAssertFalse(error.description.contains("\n"))
            return error
        }
        XCTFail("accepted")
        return CheckpointError(file: path, field: "", expected: "")
    }

    private func bytes(_ writer: PickleWriter) -> [UInt8] {
        writer.chunks.flatMap { chunk -> [UInt8] in
            switch chunk {
            case .bytes(let b): return b
            case .payload(let p): return Array(p)
            }
        }
    }

    private func string(_ s: String) -> [UInt8] { [0x8C, UInt8(s.utf8.count)] + Array(s.utf8) + [0x94] }

    private func replacing(_ bytes: [UInt8], _ old: String, with new: String) -> [UInt8] {
        let o = bytesFromHex(old), n = bytesFromHex(new)
        let i = (0...(bytes.count - o.count)).first { Array(bytes[$0..<$0 + o.count]) == o }!
        return Array(bytes[..<i]) + n + Array(bytes[(i + o.count)...])
    }

    private func floats(_ array: PickleArray) -> [Float] {
        (0..<array.bytes.count / 4).map { array.bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
    }

    private func bfloats(_ array: PickleArray) -> [Float] {
        (0..<array.bytes.count / 2).map { Half.float(bf16: array.bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
    }
}

/// Bytes of a hex string.
func bytesFromHex(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8)
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
}
