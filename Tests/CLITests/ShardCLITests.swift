import Foundation
import GrokRuntime
import XCTest

/// `grok shard` then `grok-coordinator --shards` under mpirun: the same tokens and logits as
/// running the source model under the same layout, and every kind of bad shard directory refused
/// with one line naming the rank, the file and the tensor.
final class ShardCLITests: XCTestCase {
    typealias D = DistributedCLITests

    func shard(_ model: String, _ layout: String, _ out: String, compress: Bool = true) throws {
        let run = try launch("grok", ["shard", "--model", model, "--topology", D.topology(layout), "--out", out]
                                 + (compress ? [] : ["--no-compress"]))
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.hasPrefix("wrote \(try D.worldSize(layout)) shards"), run.stdout)
    }

    /// Both reference models, compressed and uncompressed shards, several layouts: bit-identical
    /// logits to loading the GGUF under the same layout (the ranks hold the same bytes).
    func testShardsEqualTheSourceUnderSeveralLayouts() throws {
        let dir = try scratchDirectory(self)
        for c in D.cases {
            let args = ["--tokens", c.prompt.map(String.init).joined(separator: ","), "--max-tokens", "8", "--temperature", "0",
                        "--ignore-eos", "--json"]
            for (layout, compress) in [("tiny-4r-pp2-tp2.json", true), ("tiny-2r-slice2.json", false), ("tiny-8r-mixed.json", true)] {
                let name = "\((c.model as NSString).lastPathComponent) \(layout) \(compress ? "zstd" : "uncompressed")"
                let shards = "\(dir)/\(layout)-\(compress)"
                try shard(c.model, layout, shards, compress: compress)
                let ranks = try D.worldSize(layout)
                let direct = try runUnderMPI(ranks: ranks, ["--model", c.model, "--topology", D.topology(layout),
                                                            "--logits-out", "\(dir)/direct.npy"] + args)
                XCTAssertEqual(direct.status, 0, direct.stderr)
                let sharded = try runUnderMPI(ranks: ranks, ["--shards", shards, "--logits-out", "\(dir)/sharded.npy"] + args)
                XCTAssertEqual(sharded.status, 0, "\(name): \(sharded.stderr)")
                XCTAssertEqual(try tokens(sharded.stdout), try tokens(direct.stdout), name)
                XCTAssertEqual(try NPY.readFloat32("\(dir)/sharded.npy").values, try NPY.readFloat32("\(dir)/direct.npy").values, name)
                XCTAssertTrue(sharded.stderr.contains("load ["), sharded.stderr)
            }
        }
    }

    func tokens(_ stdout: String) throws -> [Int] {
        (try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as! [String: Any])["generated_tokens"] as! [Int]
    }

    /// Damage a shard directory in every way the issue names; each is one `error:` line on rank 0
    /// naming what is wrong, and every rank exits non-zero.
    func testDamagedShardsAreRefused() throws {
        let dir = try scratchDirectory(self)
        let model = D.cases[0].model
        let good = "\(dir)/good"
        try shard(model, "tiny-2r-tp2.json", good)
        let args = ["--tokens", "1,2,3", "--max-tokens", "2"]
        func copy(_ name: String) throws -> String {
            let path = "\(dir)/\(name)"
            try FileManager.default.copyItem(atPath: good, toPath: path)
            return path
        }
        func refused(_ shards: String, ranks: Int = 2, extra: [String] = [], _ expected: [String], file: StaticString = #filePath, line: UInt = #line) throws {
            let run = try runUnderMPI(ranks: ranks, ["--shards", shards] + extra + args)
            XCTAssertNotEqual(run.status, 0, file: file, line: line)
            let errors = run.stderrLines.filter { $0.hasPrefix("error:") }
            XCTAssertEqual(errors.count, 1, run.stderr, file: file, line: line)
            for text in expected { XCTAssertTrue(errors.first?.contains(text) ?? false, "\(text) not in: \(run.stderr)", file: file, line: line) }
        }

        // A flipped byte inside a chunk of rank 1's file.
        let flipped = try copy("flipped")
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(flipped)/manifest.json"))) as! [String: Any]
        let rank1 = (manifest["ranks"] as! [[String: Any]])[1]
        XCTAssertEqual(rank1["file"] as? String, "rank-00001.gshard")
        let file1 = "\(flipped)/rank-00001.gshard"
        var data = try Data(contentsOf: URL(fileURLWithPath: file1))
        data[4096] ^= 0x01
        try data.write(to: URL(fileURLWithPath: file1))
        try refused(flipped, ["rank 1", "rank-00001.gshard", "tensor", "chunk", "corrupted"])

        // A truncated file.
        let truncated = try copy("truncated")
        let file0 = "\(truncated)/rank-00000.gshard"
        try Data(contentsOf: URL(fileURLWithPath: file0)).prefix(5000).write(to: URL(fileURLWithPath: file0))
        try refused(truncated, ["rank-00000.gshard", "truncated"])

        // Two ranks' files swapped.
        let swapped = try copy("swapped")
        try FileManager.default.moveItem(atPath: "\(swapped)/rank-00000.gshard", toPath: "\(swapped)/tmp")
        try FileManager.default.moveItem(atPath: "\(swapped)/rank-00001.gshard", toPath: "\(swapped)/rank-00000.gshard")
        try FileManager.default.moveItem(atPath: "\(swapped)/tmp", toPath: "\(swapped)/rank-00001.gshard")
        try refused(swapped, ["rank-00000.gshard", "belongs to another rank"])

        // A manifest (and its shards) cut for another layout than the one launched with.
        try refused(good, extra: ["--topology", D.topology("tiny-2r-slice2.json")], ["cut for another layout", "tiny-2r-slice2.json"])
        // A shard file from another layout's directory.
        let other = "\(dir)/other"
        try shard(model, "tiny-2r-ep2.json", other)
        let mixed = try copy("mixed")
        try FileManager.default.removeItem(atPath: "\(mixed)/rank-00001.gshard")
        try FileManager.default.copyItem(atPath: "\(other)/rank-00001.gshard", toPath: "\(mixed)/rank-00001.gshard")
        try refused(mixed, ["rank-00001.gshard", "another"])
        // The wrong number of ranks.
        try refused(good, ranks: 4, ["worldSize is 2", "4 ranks"])
        // A damaged model metadata file.
        let metadata = try copy("metadata")
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: "\(metadata)/model.gguf"))
        try refused(metadata, ["model.gguf", "XXH64"])
    }
}

/// `--distribute-from`: one rank holds the shards (or the model) and sends each rank its own.
final class ShardDistributionCLITests: XCTestCase {
    typealias D = DistributedCLITests

    func testDistributedShardsEqualTheSourceAndTheCacheIsReusable() throws {
        let dir = try scratchDirectory(self)
        let c = D.cases[1]   // Grok-2, Q8_0
        let layout = "tiny-4r-pp2-tp2.json"
        let args = ["--tokens", c.prompt.map(String.init).joined(separator: ","), "--max-tokens", "6", "--temperature", "0",
                    "--ignore-eos", "--json"]
        let direct = try runUnderMPI(ranks: 4, ["--model", c.model, "--topology", D.topology(layout), "--logits-out", "\(dir)/direct.npy"] + args)
        XCTAssertEqual(direct.status, 0, direct.stderr)
        let expected = try NPY.readFloat32("\(dir)/direct.npy").values

        // From an uncompressed shard directory on rank 2 (compressed in flight), keeping a cache.
        let shards = "\(dir)/shards"
        let cut = try launch("grok", ["shard", "--model", c.model, "--topology", D.topology(layout), "--out", shards, "--no-compress"])
        XCTAssertEqual(cut.status, 0, cut.stderr)
        let cache = "\(dir)/cache"
        let sent = try runUnderMPI(ranks: 4, ["--shards", shards, "--distribute-from", "2", "--shard-cache", cache,
                                              "--logits-out", "\(dir)/sent.npy"] + args)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        XCTAssertEqual(try NPY.readFloat32("\(dir)/sent.npy").values, expected)
        XCTAssertTrue(sent.stderr.contains("distribute ["), sent.stderr)

        // The next start reads the cache locally.
        let again = try runUnderMPI(ranks: 4, ["--shards", cache, "--logits-out", "\(dir)/again.npy"] + args)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try NPY.readFloat32("\(dir)/again.npy").values, expected)

        // From the model itself: rank 0 cuts it for the launch layout and sends the shards.
        let fromModel = try runUnderMPI(ranks: 4, ["--model", c.model, "--topology", D.topology(layout), "--distribute-from", "0",
                                                   "--logits-out", "\(dir)/model.npy"] + args)
        XCTAssertEqual(fromModel.status, 0, fromModel.stderr)
        XCTAssertEqual(try NPY.readFloat32("\(dir)/model.npy").values, expected)
    }
}

/// `grok shard --dtype`: matrices re-encoded while cutting.
final class ShardConversionCLITests: XCTestCase {
    typealias D = DistributedCLITests

    /// An F32 model cut with `--dtype q8_0` runs exactly like the same weights synthesized in Q8_0
    /// (the synthesizer quantizes the same f32 values with the same quantizer).
    func testConvertingWhileCuttingEqualsTheConvertedModel() throws {
        let dir = try scratchDirectory(self)
        for preset in ["grok-1-tiny", "grok-2-tiny"] {
            for (dtype, path) in [("f32", "\(dir)/\(preset)-f32.gguf"), ("q8_0", "\(dir)/\(preset)-q8.gguf")] {
                let synth = try launch("grok", ["synth", "--preset", preset, "--dtype", dtype, "--seed", "9", "--output", path])
                XCTAssertEqual(synth.status, 0, synth.stderr)
            }
            let layout = D.topology("tiny-2r-slice2.json")
            let cut = try launch("grok", ["shard", "--model", "\(dir)/\(preset)-f32.gguf", "--topology", layout, "--out", "\(dir)/\(preset)-cut",
                                          "--dtype", "q8_0"])
            XCTAssertEqual(cut.status, 0, cut.stderr)
            let args = ["--tokens", "5,6,7,8,9", "--max-tokens", "5", "--temperature", "0", "--ignore-eos"]
            let converted = try runUnderMPI(ranks: 2, ["--shards", "\(dir)/\(preset)-cut", "--logits-out", "\(dir)/a.npy"] + args)
            XCTAssertEqual(converted.status, 0, converted.stderr)
            let direct = try runUnderMPI(ranks: 2, ["--model", "\(dir)/\(preset)-q8.gguf", "--topology", layout, "--logits-out", "\(dir)/b.npy"] + args)
            XCTAssertEqual(direct.status, 0, direct.stderr)
            XCTAssertEqual(try NPY.readFloat32("\(dir)/a.npy").values, try NPY.readFloat32("\(dir)/b.npy").values, preset)
        }
    }
}
