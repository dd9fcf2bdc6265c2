import Foundation
import GrokCheckpoint
import GrokRuntime
import XCTest

/// The checkpoint formats people download, written by the test suite itself from tiny models:
/// loaded directly with `--model DIR`, and cut with `grok shard` then run with `--shards`, under
/// several layouts as real processes. Shards must give exactly the logits of the source under the
/// same layout, and every layout the single rank's tokens.
final class SourceFormatCLITests: XCTestCase {
    typealias D = DistributedCLITests

    func testEveryFormatShardsToTheSameModel() throws {
        let dir = try scratchDirectory(self)
        let grok1 = try GGUFFile(path: D.cases[0].model)                 // the JAX reference model, F32
        let grok2Path = "\(dir)/grok2-bf16.gguf"
        let synth = try launch("grok", ["synth", "--preset", "grok-2-tiny", "--dtype", "bf16", "--output", grok2Path])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let formats: [(name: String, path: String, prompt: [Int32])] = [
            ("grok1-ckpt-0", "\(dir)/grok1-ckpt", D.cases[0].prompt),
            ("grok2-release", "\(dir)/grok2-release", D.cases[1].prompt),
            ("grok1-hf-port", "\(dir)/grok1-hf", D.cases[0].prompt),
        ]
        try Grok1CheckpointWriter.write(from: grok1, to: formats[0].path)
        try Grok2ReleaseWriter.write(from: try GGUFFile(path: grok2Path), to: formats[1].path, ranks: 8)
        try Grok1HFPortWriter.write(from: grok1, to: formats[2].path)

        for format in formats {
            let args = ["--tokens", format.prompt.map(String.init).joined(separator: ","), "--max-tokens", "8", "--temperature", "0",
                        "--ignore-eos", "--json"]
            let single = try launch("grok-coordinator", ["--model", format.path, "--logits-out", "\(dir)/single.npy"] + args)
            XCTAssertEqual(single.status, 0, "\(format.name): \(single.stderr)")
            let singleLogits = try NPY.readFloat32("\(dir)/single.npy").values
            let singleTokens = try tokens(single.stdout)
            for layout in ["tiny-2r-slice2.json", "tiny-4r-pp2-tp2.json"] {
                let name = "\(format.name) \(layout)"
                let ranks = try D.worldSize(layout)
                let direct = try runUnderMPI(ranks: ranks, ["--model", format.path, "--topology", D.topology(layout),
                                                            "--logits-out", "\(dir)/direct.npy"] + args)
                XCTAssertEqual(direct.status, 0, "\(name): \(direct.stderr)")
                let shards = "\(dir)/\(format.name)-\(layout)"
                let cut = try launch("grok", ["shard", "--model", format.path, "--topology", D.topology(layout), "--out", shards])
                XCTAssertEqual(cut.status, 0, "\(name): \(cut.stderr)")
                let sharded = try runUnderMPI(ranks: ranks, ["--shards", shards, "--logits-out", "\(dir)/sharded.npy"] + args)
                XCTAssertEqual(sharded.status, 0, "\(name): \(sharded.stderr)")
                guard direct.status == 0, sharded.status == 0 else { continue }
                let directLogits = try NPY.readFloat32("\(dir)/direct.npy").values
                XCTAssertEqual(try NPY.readFloat32("\(dir)/sharded.npy").values, directLogits, name)
                XCTAssertEqual(try tokens(sharded.stdout), singleTokens, name)
                XCTAssertEqual(try tokens(direct.stdout), singleTokens, name)
                XCTAssertLessThan(maxDifference(directLogits, singleLogits), 1e-4 * largest(singleLogits), name)
            }
        }
    }

    func tokens(_ stdout: String) throws -> [Int] {
        (try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as! [String: Any])["generated_tokens"] as! [Int]
    }
}
