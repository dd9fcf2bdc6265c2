import Foundation
import XCTest
@testable import GrokCheckpoint

/// The real example files written by llama.cpp's gguf-py for the tiny reference models.
enum ReferenceFiles {
    static let grok1 = "/work/shared/reference/grok1-tiny-ref-f32.gguf"
    static let grok2 = "/work/shared/reference/grok2/grok2-tiny-ref-q8_0.gguf"
}

/// A fresh directory under the system temporary directory, removed by the test's teardown.
func makeScratchDirectory(for test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("GrokCheckpointTests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Writes `bytes` to `name` inside `directory` and returns the path.
func writeFile(_ bytes: [UInt8], named name: String, in directory: URL) throws -> String {
    let url = directory.appendingPathComponent(name)
    try Data(bytes).write(to: url)
    return url.path
}

/// Deterministic bytes (xorshift64*), so tests need no randomness source.
func patternBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    return (0..<count).map { _ in
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return UInt8(truncatingIfNeeded: (state &* 2_685_821_657_736_338_717) >> 56)
    }
}

/// Opens `path` expecting a ``CheckpointError`` on `field`; checks the error names the file and is one line.
@discardableResult
func assertOpenFails(_ path: String, field: String, mentioning fragments: [String] = [],
                     file: StaticString = #filePath, line: UInt = #line) -> CheckpointError? {
    do {
        _ = try GGUFFile(path: path)
        XCTFail("opening \(path) succeeded; expected an error on \(field)", file: file, line: line)
        return nil
    } catch let error as CheckpointError {
        assertWellFormed(error, path: path, field: field, mentioning: fragments, file: file, line: line)
        return error
    } catch {
        XCTFail("unexpected error type \(type(of: error)): \(error)", file: file, line: line)
        return nil
    }
}

/// Runs `body` expecting a ``CheckpointError`` on `field` about `path`.
func assertCheckpointError(path: String, field: String, mentioning fragments: [String] = [],
                           file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error on \(field)", file: file, line: line)
    } catch let error as CheckpointError {
        assertWellFormed(error, path: path, field: field, mentioning: fragments, file: file, line: line)
    } catch {
        XCTFail("unexpected error type \(type(of: error)): \(error)", file: file, line: line)
    }
}

func assertWellFormed(_ error: CheckpointError, path: String, field: String, mentioning fragments: [String],
                      file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(error.field, field, "\(error)", file: file, line: line)
    XCTAssertEqual(error.file, path, file: file, line: line)
    let text = error.description
    XCTAssertFalse(text.contains("\n"), "description must be one line: \(text)", file: file, line: line)
    XCTAssertTrue(text.hasPrefix(path + ": "), "description must start with the file: \(text)", file: file, line: line)
    for fragment in fragments {
        XCTAssertTrue(text.contains(fragment), "\(text) should mention \(fragment)", file: file, line: line)
    }
}

/// Hand-assembled GGUF bytes, for versions and corruptions the writer will not produce.
struct RawGGUF {
    struct Tensor {
        var name: String
        var dims: [UInt64]
        var type: UInt32
        var offset: UInt64
    }

    var magic: [UInt8] = Array("GGUF".utf8)
    var version: UInt32 = 3
    var tensorCount: UInt64?
    var keyValueCount: UInt64?
    var keyValues: [(key: [UInt8], type: UInt32, value: [UInt8])] = []
    var tensors: [Tensor] = []
    var alignment = 32
    var dataBytes = 0

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func str(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

    mutating func add(_ key: String, type: UInt32, _ value: [UInt8]) {
        keyValues.append((Array(key.utf8), type, value))
    }
    mutating func add(_ key: String, u32 value: UInt32) { add(key, type: 4, Self.le(value)) }
    mutating func add(_ key: String, string value: String) { add(key, type: 8, Self.str(value)) }

    mutating func addTensor(_ name: String, dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0) {
        tensors.append(Tensor(name: name, dims: dims, type: type, offset: offset))
    }

    var bytes: [UInt8] {
        var out = magic + Self.le(version)
        out += Self.le(tensorCount ?? UInt64(tensors.count))
        out += Self.le(keyValueCount ?? UInt64(keyValues.count))
        for kv in keyValues {
            out += Self.le(UInt64(kv.key.count)) + kv.key + Self.le(kv.type) + kv.value
        }
        for t in tensors {
            out += Self.str(t.name) + Self.le(UInt32(t.dims.count))
            for d in t.dims { out += Self.le(d) }
            out += Self.le(t.type) + Self.le(t.offset)
        }
        while out.count % alignment != 0 { out.append(0) }
        return out + [UInt8](repeating: 0x5A, count: dataBytes)
    }
}
