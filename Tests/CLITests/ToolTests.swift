import Foundation
import GrokCheckpoint
import XCTest

/// `grok synth` and `grok inspect`, spawned.
final class ToolTests: XCTestCase {
    func testSynthThenInspectEveryDtype() throws {
        let dir = try scratchDirectory(self)
        for dtype in ["f32", "f16", "bf16", "q8_0", "q4_0"] {
            let path = "\(dir)/g2-\(dtype).gguf"
            let synth = try launch("grok", ["synth", "--preset", "grok-2-tiny", "--dtype", dtype, "--seed", "9", "-o", path])
            XCTAssertEqual(synth.status, 0, synth.stderr)
            let inspect = try launch("grok", ["inspect", path])
            XCTAssertEqual(inspect.status, 0, inspect.stderr)
            XCTAssertTrue(inspect.stdout.contains("tokenizer.ggml.pre = \"grok-2\""))
            XCTAssertTrue(inspect.stdout.contains("blk.3.ffn_down_exps.weight"))
            XCTAssertTrue(inspect.stdout.contains("model: grok-2, 4 layers, width 256"))
            XCTAssertTrue(inspect.stdout.contains("parameters: 4993280"), inspect.stdout)
            XCTAssertTrue(inspect.stdout.contains(" \(dtype.uppercased()) "), "matrices stored as \(dtype)")
        }
        // Same seed, same bytes; another seed, other bytes.
        let again = "\(dir)/again.gguf", other = "\(dir)/other.gguf"
        _ = try launch("grok", ["synth", "--preset", "grok-2-tiny", "--dtype", "q4_0", "--seed", "9", "-o", again])
        _ = try launch("grok", ["synth", "--preset", "grok-2-tiny", "--dtype", "q4_0", "--seed", "10", "-o", other])
        let a = try Data(contentsOf: URL(fileURLWithPath: again))
        XCTAssertEqual(a, try Data(contentsOf: URL(fileURLWithPath: "\(dir)/g2-q4_0.gguf")))
        XCTAssertNotEqual(a, try Data(contentsOf: URL(fileURLWithPath: other)))
    }

    func testSynthExplicitShapeAndItsErrors() throws {
        let dir = try scratchDirectory(self)
        let path = "\(dir)/custom.gguf"
        let ok = try launch("grok", ["synth", "--preset", "grok-1-tiny", "--arch", "grok-2", "--width", "128", "--layers", "2",
                                     "--heads", "4", "--kv-heads", "2", "--head-dim", "32", "--experts", "4",
                                     "--expert-ffn", "64", "--dense-ffn", "96", "--vocab", "400", "-o", path])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let file = try GGUFFile(path: path)
        XCTAssertEqual(try file.int("grok.expert_count"), 4)
        XCTAssertEqual(file.tensor("blk.1.ffn_gate.weight")?.dims, [128, 96])
        XCTAssertEqual(file.tensor("output.weight")?.dims, [128, 400])

        let badWidth = try launch("grok", ["synth", "--width", "100", "--dtype", "q8_0", "-o", "\(dir)/x.gguf"])
        XCTAssertNotEqual(badWidth.status, 0)
        XCTAssertTrue(badWidth.stderr.contains("multiple of 32"), badWidth.stderr)
        let badHeads = try launch("grok", ["synth", "--kv-heads", "3", "-o", "\(dir)/x.gguf"])
        XCTAssertNotEqual(badHeads.status, 0)
        XCTAssertTrue(badHeads.stderr.contains("head_count_kv"), badHeads.stderr)
        let badPreset = try launch("grok", ["synth", "--preset", "grok-3", "-o", "\(dir)/x.gguf"])
        XCTAssertNotEqual(badPreset.status, 0)
        XCTAssertTrue(badPreset.stderr.contains("--preset"), badPreset.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/x.gguf"))
        let missing = try launch("grok", ["inspect", "\(dir)/nope.gguf"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("nope.gguf"), missing.stderr)
    }
}

/// `--help` of the coordinator prints its usage and exits 0 (it once crashed on a cast).
final class CoordinatorHelpTests: XCTestCase {
    func testHelpPrintsUsage() throws {
        let run = try launch("grok-coordinator", ["--help"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("OVERVIEW") && run.stdout.contains("--topology"), run.stdout)
    }
}
