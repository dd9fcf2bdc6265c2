import Foundation
import GrokCheckpoint
import GrokModel
import GrokRuntime
import GrokTensor
import XCTest

/// Paths of the copied reference fixtures (from ../shared/reference).
enum Fixture {
    static var directory: String { Bundle.module.path(forResource: "Fixtures", ofType: nil)! }
    static func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
    static var oracle: String {
        (Bundle.module.path(forResource: "Reference", ofType: nil)! as NSString).appendingPathComponent("grok_numpy.py")
    }
}

/// A scratch directory removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("grokcluster-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// Loads a model on one rank with `threads` threads.
func loadModel(_ path: String, threads: Int = 2) throws -> GrokModel {
    try GrokModel(source: GGUFFile(path: path), pool: ThreadPool(threads: threads))
}

/// Logits of every position of `tokens` from one full forward pass, `[T, V]` row-major.
func fullSequenceLogits(_ model: GrokModel, _ tokens: [Int32]) throws -> [Float] {
    let cache = model.makeCache(slots: 1, capacity: tokens.count)
    let batch = ForwardBatch(tokens: tokens, slots: Array(repeating: 0, count: tokens.count), positions: Array(tokens.indices))
    return try model.forward(batch, cache: cache, logitRows: Array(tokens.indices)).array
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count) values")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

func maxAbs(_ a: [Float]) -> Float { a.map(abs).max() ?? 0 }

/// A python3 that has numpy (the oracle's only dependency), or nil.
let pythonWithNumpy: String? = {
    for candidate in ["/usr/bin/env python3", "/usr/bin/python3"] {
        let parts = candidate.split(separator: " ").map(String.init)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: parts[0])
        p.arguments = Array(parts.dropFirst()) + ["-c", "import numpy"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        if (try? p.run()) != nil { p.waitUntilExit(); if p.terminationStatus == 0 { return candidate } }
    }
    return nil
}()

/// Runs the independent NumPy implementation on `model` and returns its logits `[T, V]`.
func oracleLogits(model: String, tokens: [Int32], directory: String) throws -> [Float] {
    guard let python = pythonWithNumpy else { throw XCTSkip("python3 with numpy is not installed") }
    let out = (directory as NSString).appendingPathComponent("oracle-\(UUID().uuidString).npy")
    let parts = python.split(separator: " ").map(String.init)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: parts[0])
    p.arguments = Array(parts.dropFirst()) + [Fixture.oracle, model, "--tokens", tokens.map(String.init).joined(separator: ","), "--out", out]
    let errors = Pipe()
    p.standardError = errors
    try p.run()
    p.waitUntilExit()
    let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    guard p.terminationStatus == 0 else { throw GenerationError("oracle failed: \(message)") }
    return try NPY.readFloat32(out).values
}
