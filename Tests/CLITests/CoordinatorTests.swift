import Foundation
import GrokCheckpoint
import GrokModel
import GrokRuntime
import GrokTensor
import XCTest

/// The real binaries, spawned: generation, output formats, and every bad input giving one clear
/// line and a non-zero exit without hanging.
final class CoordinatorTests: XCTestCase {
    func testEmbeddedDefaultGeneratesDeterministicallyWithASeed() throws {
        let args = ["--prompt", "Hello world", "--max-tokens", "12", "--seed", "5", "--json"]
        let a = try launch("grok-coordinator", args), b = try launch("grok-coordinator", args)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(strippingTimings(a.stdout), strippingTimings(b.stdout))
        let object = try JSONSerialization.jsonObject(with: Data(a.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((object["generated_tokens"] as! [Int]).count, 12)
        XCTAssertFalse((object["prompt_tokens"] as! [Int]).isEmpty)
        XCTAssertNotNil(object["timings"] as? [String: Any])
        XCTAssertNotNil(object["text"] as? String)
    }

    /// `--logits-out` rows: the prompt's T positions, then each generated token fed back.
    func testLogitsOutRows() throws {
        let dir = try scratchDirectory(self)
        let path = dir + "/logits.npy"
        var r = try launch("grok-coordinator", ["--tokens", "1,39,389,34", "--max-tokens", "0", "--logits-out", path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try NPY.readFloat32(path).shape, [4, 4096])
        r = try launch("grok-coordinator", ["--tokens", "1,39,389,34", "--max-tokens", "5", "--temperature", "0", "--ignore-eos", "--logits-out", path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try NPY.readFloat32(path).shape, [8, 4096])
    }

    /// The official reference model through the binary: greedy tokens equal JAX's.
    func testReferenceModelGreedyThroughTheBinary() throws {
        let model = try XCTUnwrap(referenceModel)
        let r = try launch("grok-coordinator", ["--model", model, "--tokens", "1,39,389,34,400,364,173,290", "--max-tokens", "16",
                                             "--temperature", "0", "--ignore-eos", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let expected = try NPY.readInt32((referenceModel! as NSString).deletingLastPathComponent + "/jax-greedy.npy").values.map(Int.init)
        XCTAssertEqual(object["generated_tokens"] as! [Int], expected)
    }

    /// A stop string ends the sequence and is cut from the text (greedy, so the run is known).
    func testStopStringCutsTheText() throws {
        let base = ["--prompt", "Hello world", "--max-tokens", "12", "--temperature", "0", "--ignore-eos", "--json"]
        let full = try launch("grok-coordinator", base)
        XCTAssertEqual(full.status, 0, full.stderr)
        let text = (try JSONSerialization.jsonObject(with: Data(full.stdout.utf8)) as! [String: Any])["text"] as! String
        XCTAssertGreaterThan(text.count, 4)
        let stop = String(text.dropFirst(text.count / 2).prefix(2))
        let cut = try launch("grok-coordinator", base + ["--stop", stop])
        let o = try JSONSerialization.jsonObject(with: Data(cut.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(o["stop_reason"] as? String, "stop")
        let expected = String(text[..<text.range(of: stop)!.lowerBound])
        XCTAssertEqual(o["text"] as? String, expected)
        // Streaming (no --json) prints the same cut text.
        let streamed = try launch("grok-coordinator", Array(base.dropLast()) + ["--stop", stop])
        XCTAssertEqual(streamed.stdout, expected + "\n")
    }

    func testPromptFileIsABatch() throws {
        let dir = try scratchDirectory(self)
        try "first prompt\nsecond, longer prompt here\nthird\n".write(toFile: dir + "/p.txt", atomically: true, encoding: .utf8)
        let r = try launch("grok-coordinator", ["--prompt-file", dir + "/p.txt", "--max-tokens", "6", "--seed", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        for (i, line) in lines.enumerated() {
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            XCTAssertEqual(o["sequence"] as? Int, i)
        }
    }

    // MARK: - Bad input: one line, non-zero exit, no hang

    func assertOneLineError(_ r: RunResult, mentions needles: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, "expected failure; stdout: \(r.stdout)", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "expected one line, got:\n\(r.stderr)", file: file, line: line)
        for n in needles { XCTAssertTrue(r.stderr.contains(n), "\"\(n)\" not in: \(r.stderr)", file: file, line: line) }
    }

    func testBadFlagsAndValues() throws {
        assertOneLineError(try launch("grok-coordinator", ["--bogus"]), mentions: ["--bogus"])
        assertOneLineError(try launch("grok-coordinator", ["--max-tokens", "abc"]), mentions: ["--max-tokens"])
        assertOneLineError(try launch("grok-coordinator", ["--top-p", "2"]), mentions: ["--top-p"])
        assertOneLineError(try launch("grok-coordinator", ["--tokens", "1,x"]), mentions: ["--tokens"])
        assertOneLineError(try launch("grok-coordinator", ["--threads", "0"]), mentions: ["--threads"])
        assertOneLineError(try launch("grok-coordinator", ["--prompt", "a", "--tokens", "1"]), mentions: ["--prompt"])
    }

    func testPromptLongerThanTheContext() throws {
        let ids = (0..<300).map { _ in "5" }.joined(separator: ",")   // the embedded model's context is 256
        assertOneLineError(try launch("grok-coordinator", ["--tokens", ids]), mentions: ["300 tokens", "context length 256"])
        assertOneLineError(try launch("grok-coordinator", ["--tokens", "1,4096"]), mentions: ["4096", "vocabulary"])
    }

    func testMissingModelAndPromptFile() throws {
        assertOneLineError(try launch("grok-coordinator", ["--model", "/nonexistent/m.gguf"]), mentions: ["/nonexistent/m.gguf"])
        assertOneLineError(try launch("grok-coordinator", ["--prompt-file", "/nonexistent/p.txt"]), mentions: ["/nonexistent/p.txt"])
    }

    /// Broken model files, each made from a good one.
    func testBrokenModelFiles() throws {
        let dir = try scratchDirectory(self)
        let good = dir + "/good.gguf"
        try Synthesizer.write(Grok1.tiny, dtype: .f32, seed: 1, name: "t", to: good)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let file = try GGUFFile(path: good)
        func variant(_ name: String, _ edit: (inout Data) -> Void) throws -> String {
            var d = bytes
            edit(&d)
            let path = dir + "/" + name
            try d.write(to: URL(fileURLWithPath: path))
            return path
        }
        // Truncated in the data section and in the header.
        for cut in [bytes.count - 1000, 100] {
            let path = try variant("cut\(cut).gguf") { $0 = $0.prefix(cut) }
            assertOneLineError(try launch("grok-coordinator", ["--model", path]), mentions: [path])
        }
        let magic = try variant("magic.gguf") { $0[0] = UInt8(ascii: "X") }
        assertOneLineError(try launch("grok-coordinator", ["--model", magic]), mentions: [magic, "magic"])

        // Locate the tensor-info records of the last tensor to corrupt its type and offset.
        let last = file.tensors.last!
        let nameBytes = Array(last.name.utf8)
        let nameAt = bytes.range(of: Data(nameBytes), options: .backwards)!.upperBound
        let typeAt = nameAt + 4 + 8 * last.dims.count
        let dtype = try variant("dtype.gguf") { $0[typeAt] = 99 }
        assertOneLineError(try launch("grok-coordinator", ["--model", dtype]), mentions: [dtype, last.name, "99"])
        let offset = try variant("offset.gguf") { d in
            for i in 0..<8 { d[typeAt + 4 + i] = i == 3 ? 0x10 : 0 }   // 256 MiB past the data start
        }
        assertOneLineError(try launch("grok-coordinator", ["--model", offset]), mentions: [offset, last.name])

        // A missing tensor and a wrong shape, written as valid GGUF files.
        let missing = dir + "/missing.gguf", shape = dir + "/shape.gguf"
        try rewrite(file, to: missing) { name, dims in name == "blk.1.attn_k.weight" ? nil : dims }
        assertOneLineError(try launch("grok-coordinator", ["--model", missing]), mentions: [missing, "blk.1.attn_k.weight"])
        try rewrite(file, to: shape) { name, dims in name == "blk.2.ffn_up_exps.weight" ? [dims[0], dims[1] / 2, dims[2] * 2] : dims }
        assertOneLineError(try launch("grok-coordinator", ["--model", shape]), mentions: [shape, "blk.2.ffn_up_exps.weight"])
    }

    /// Copies `file`'s metadata and tensors, dropping (nil) or reshaping tensors.
    func rewrite(_ file: GGUFFile, to path: String, _ change: (String, [Int]) -> [Int]?) throws {
        var w = GGUFWriter()
        for key in file.metadataKeys { w.set(key, file.metadata[key]!) }
        for t in file.tensors {
            guard let dims = change(t.name, t.dims) else { continue }
            w.addTensor(name: t.name, dims: dims, dtype: t.dtype, bytes: Array(file.data(of: t)))
        }
        try w.write(to: path)
    }

    // MARK: - Under mpirun

    func testUnderMPIEveryRankAgreesAndRankZeroReports() throws {
        let single = try launch("grok-coordinator", ["--prompt-file", try promptFile(), "--max-tokens", "8", "--temperature", "0", "--json"])
        XCTAssertEqual(single.status, 0, single.stderr)
        let multi = try runUnderMPI(ranks: 3, ["--prompt-file", try promptFile(), "--max-tokens", "8", "--temperature", "0", "--json"])
        XCTAssertEqual(multi.status, 0, multi.stderr)
        XCTAssertEqual(strippingTimings(multi.stdout), strippingTimings(single.stdout), "same tokens and text on 3 ranks as on one")
    }

    /// More ranks than prompts: the idle rank still takes part, and the text streams from rank 0.
    func testUnderMPIOnePromptOnTwoRanks() throws {
        let args = ["--prompt", "Hello", "--max-tokens", "6", "--temperature", "0"]
        let single = try launch("grok-coordinator", args)
        let multi = try runUnderMPI(ranks: 2, args)
        XCTAssertEqual(multi.status, 0, multi.stderr)
        XCTAssertEqual(multi.stdout, single.stdout)
    }

    func testUnderMPIBadInputIsOneLineFromRankZero() throws {
        let r = try runUnderMPI(ranks: 2, ["--model", "/nonexistent/m.gguf"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stderrLines.filter { $0.hasPrefix("error:") }.count, 1, r.stderr)
        let flag = try runUnderMPI(ranks: 2, ["--bogus"])
        XCTAssertNotEqual(flag.status, 0)
        XCTAssertEqual(flag.stderrLines.filter { $0.hasPrefix("error:") }.count, 1, flag.stderr)
    }

    func promptFile() throws -> String {
        let path = try scratchDirectory(self) + "/prompts.txt"
        try "one\ntwo three\nfour five six\nseven\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func strippingTimings(_ jsonLines: String) -> [String] {
        jsonLines.split(separator: "\n").map { line in
            var o = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            o["timings"] = nil
            return String(decoding: try! JSONSerialization.data(withJSONObject: o, options: .sortedKeys), as: UTF8.self)
        }
    }

    var referenceModel: String? {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let path = here.appendingPathComponent("GrokModelTests/Fixtures/grok1/grok1-tiny-ref-f32.gguf").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}
