import Foundation
import GrokRuntime
import XCTest

/// The real binary under mpirun, one process per rank, for every shipped tiny layout.
final class DistributedCLITests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func topology(_ name: String) -> String { repository.appendingPathComponent("Topologies/\(name)").path }
    static var tinyTopologies: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: repository.appendingPathComponent("Topologies").path)) ?? []
        return names.filter { $0.hasPrefix("tiny-") && $0.hasSuffix(".json") }.sorted()
    }
    static func fixture(_ path: String) -> String { repository.appendingPathComponent("Tests/GrokModelTests/Fixtures/\(path)").path }

    /// The layout's world size, read the way the launch scripts read it.
    static func worldSize(_ name: String) throws -> Int {
        let text = try String(contentsOfFile: topology(name), encoding: .utf8)
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        return object["worldSize"] as! Int
    }

    struct Case {
        var model: String
        var prompt: [Int32]
        var prefill: String     // reference logits of the prompt positions
        var greedy: String      // reference greedy tokens
    }
    static let cases = [
        Case(model: fixture("grok1/grok1-tiny-ref-f32.gguf"), prompt: [1, 39, 389, 34, 400, 364, 173, 290],
             prefill: fixture("grok1/jax-logits.npy"), greedy: fixture("grok1/jax-greedy.npy")),
        Case(model: fixture("grok2/grok2-tiny-ref-q8_0.gguf"), prompt: [321, 475, 453, 284, 170, 66, 362, 112, 256, 477],
             prefill: fixture("grok2/logits.npy"), greedy: fixture("grok2/greedy.npy")),
    ]

    /// The official references (JAX Grok-1, SGLang-convention Grok-2) under every tiny layout as
    /// real MPI processes: the 16 greedy tokens equal, prompt logits within the reference bar
    /// (1e-3 of the largest), and every logit within 1e-4 of the largest of the single rank's.
    func testReferencesUnderEveryTinyTopology() throws {
        let dir = try scratchDirectory(self)
        let layouts = Self.tinyTopologies
        XCTAssertGreaterThanOrEqual(layouts.count, 8)
        for c in Self.cases {
            var worstToReference: Float = 0, worstToSingle: Float = 0
            let args = ["--model", c.model, "--tokens", c.prompt.map(String.init).joined(separator: ","), "--max-tokens", "16",
                        "--temperature", "0", "--ignore-eos", "--json"]
            let singlePath = "\(dir)/single.npy"
            let single = try launch("grok-coordinator", args + ["--logits-out", singlePath])
            XCTAssertEqual(single.status, 0, single.stderr)
            let singleLogits = try NPY.readFloat32(singlePath).values
            let greedy = try NPY.readInt32(c.greedy).values
            let prefill = try NPY.readFloat32(c.prefill).values
            for layout in layouts {
                let name = "\((c.model as NSString).lastPathComponent) \(layout)"
                let out = "\(dir)/\(layout).npy"
                let run = try runUnderMPI(ranks: try Self.worldSize(layout),
                                          args + ["--topology", Self.topology(layout), "--logits-out", out], timeout: 120)
                XCTAssertEqual(run.status, 0, "\(name): \(run.stderr)")
                guard run.status == 0 else { continue }
                let line = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
                XCTAssertEqual((line["generated_tokens"] as! [Int]).map(Int32.init), greedy, name)
                let logits = try NPY.readFloat32(out).values
                XCTAssertEqual(logits.count, singleLogits.count, name)
                let toReference = maxDifference(Array(logits[0..<prefill.count]), prefill)
                XCTAssertLessThan(toReference, 1e-3 * largest(prefill), "\(name): vs reference \(toReference)")
                let toSingle = maxDifference(logits, singleLogits)
                XCTAssertLessThan(toSingle, 1e-4 * largest(singleLogits), "\(name): vs single rank \(toSingle)")
                worstToReference = max(worstToReference, toReference)
                worstToSingle = max(worstToSingle, toSingle)
            }
            print("\((c.model as NSString).lastPathComponent) under \(layouts.count) layouts (mpirun): greedy tokens equal; "
                  + "max |Δlogit| vs reference \(worstToReference) (largest \(largest(prefill))), vs one rank \(worstToSingle)")
        }
    }

    /// A batch of prompts of different lengths (a prompt file) under every tiny layout, for the
    /// embedded Grok-1 (F32) and a synthesized Grok-2 (Q8_0), as real processes: the same text and
    /// greedy tokens as one rank, every logit of prefill and decode within 1e-4 of the largest.
    func testPromptFileBatchUnderEveryTinyTopologyEqualsSingleRank() throws {
        let dir = try scratchDirectory(self)
        let prompts = "\(dir)/prompts.txt"
        try "The answer is\nOnce upon a time, in a land far away, there lived\nGrok".write(toFile: prompts, atomically: true, encoding: .utf8)
        let grok2 = "\(dir)/grok2-q8_0.gguf"
        let synth = try launch("grok", ["synth", "--preset", "grok-2-tiny", "--dtype", "q8_0", "--output", grok2])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        for model in [nil, grok2] {
            let args = (model.map { ["--model", $0] } ?? []) + ["--prompt-file", prompts, "--max-tokens", "8", "--temperature", "0",
                                                               "--ignore-eos", "--json"]
            let single = try launch("grok-coordinator", args + ["--logits-out", "\(dir)/single.npy"])
            XCTAssertEqual(single.status, 0, single.stderr)
            let singleLogits = try NPY.readFloat32("\(dir)/single.npy").values
            let singleTokens = try generatedTokens(single.stdout)
            XCTAssertEqual(singleTokens.count, 3)
            for layout in Self.tinyTopologies {
                let name = "\(model ?? "embedded") \(layout)"
                let out = "\(dir)/\(layout).npy"
                let run = try runUnderMPI(ranks: try Self.worldSize(layout), args + ["--topology", Self.topology(layout), "--logits-out", out])
                XCTAssertEqual(run.status, 0, "\(name): \(run.stderr)")
                guard run.status == 0 else { continue }
                XCTAssertEqual(try generatedTokens(run.stdout), singleTokens, name)
                let logits = try NPY.readFloat32(out).values
                XCTAssertEqual(logits.count, singleLogits.count, name)
                let diff = maxDifference(logits, singleLogits)
                XCTAssertLessThan(diff, 1e-4 * largest(singleLogits), "\(name): \(diff)")
            }
        }
    }

    /// The generated token ids of each `--json` line, in sequence order.
    func generatedTokens(_ stdout: String) throws -> [[Int]] {
        try stdout.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return object["generated_tokens"] as! [Int]
        }
    }

    /// Each rank holds its share, not the model: with experts sliced over 2 ranks, each rank's
    /// peak resident memory (from --stats-json) is close to its weights plus KV cache, and well
    /// under what one rank holding everything needs. Also checks the stats table's rows.
    func testRanksHoldOnlyTheirShare() throws {
        let dir = try scratchDirectory(self)
        let model = "\(dir)/small.gguf"
        let synth = try launch("grok", ["synth", "--preset", "grok-1-small", "--dtype", "f32", "--output", model])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let args = ["--model", model, "--tokens", "1,2,3", "--max-tokens", "4", "--temperature", "0", "--ignore-eos"]
        func stats(_ ranks: Int, _ layout: String) throws -> [[String: Any]] {
            let path = "\(dir)/\(layout).json"
            let run = try runUnderMPI(ranks: ranks, args + ["--topology", Self.topology(layout), "--stats", "--stats-json", path])
            XCTAssertEqual(run.status, 0, run.stderr)
            let rows = run.stderrLines.filter { $0.range(of: #"^\s+\d+\s+\d+\s+\d+\s"#, options: .regularExpression) != nil }
            XCTAssertEqual(rows.count, ranks, run.stderr)
            return try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [[String: Any]]
        }
        // Cutting it streams: `grok shard`'s peak memory stays far below the model (each block's
        // copy is freed once written).
        let cut = try launch("grok", ["shard", "--model", model, "--topology", Self.topology("tiny-2r-slice2.json"),
                                      "--out", "\(dir)/shards", "--no-compress"])
        XCTAssertEqual(cut.status, 0, cut.stderr)
        let peak = Double(cut.stdout.split(separator: " ").dropLast().last.map(String.init) ?? "") ?? .infinity   // "... memory N MB"
        let modelBytes = try FileManager.default.attributesOfItem(atPath: model)[.size] as! Int
        XCTAssertLessThan(peak * 1e6, 0.3 * Double(modelBytes), cut.stdout)

        let whole = try stats(1, "tiny-1r.json")[0]
        let wholeWeights = whole["weightBytes"] as! Int
        for rank in try stats(2, "tiny-2r-slice2.json") {
            let weights = rank["weightBytes"] as! Int, peak = rank["peakResidentBytes"] as! Int
            let kv = rank["kvCacheBytes"] as! Int
            XCTAssertLessThan(Double(weights), 0.55 * Double(wholeWeights), "rank \(rank["rank"]!) weights")
            XCTAssertLessThan(peak, weights + kv + 160_000_000, "rank \(rank["rank"]!): peak RSS \(peak) for \(weights) B of weights")
            XCTAssertLessThan(Double(peak), 0.8 * Double(whole["peakResidentBytes"] as! Int), "rank \(rank["rank"]!)")
        }
    }

    /// A layout that does not fit is one line on rank 0, before loading; every rank exits non-zero.
    func testInvalidTopologyIsOneLineOnRankZero() throws {
        let dir = try scratchDirectory(self)
        let wrongSize = try runUnderMPI(ranks: 2, ["--topology", Self.topology("tiny-4r-tp4.json"), "--max-tokens", "2"])
        XCTAssertNotEqual(wrongSize.status, 0)
        XCTAssertEqual(wrongSize.stderrLines.filter { $0.hasPrefix("error:") }.count, 1, wrongSize.stderr)
        XCTAssertTrue(wrongSize.stderr.contains("tiny-4r-tp4.json"), wrongSize.stderr)
        XCTAssertTrue(wrongSize.stderr.contains("worldSize"), wrongSize.stderr)

        let bad = "\(dir)/bad.json"
        try #"{"worldSize": 2, "stages": [{"layers": "0-3", "ranks": [0, 1], "experts": {"mode": "parallel", "placement": [[0],[1],[0],[1],[0],[1],[0],[5]]}}]}"#
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let placed = try runUnderMPI(ranks: 2, ["--topology", bad, "--max-tokens", "2"])
        XCTAssertNotEqual(placed.status, 0)
        let errors = placed.stderrLines.filter { $0.hasPrefix("error:") }
        XCTAssertEqual(errors.count, 1, placed.stderr)
        XCTAssertTrue(errors.first?.contains("expert 7") ?? false, placed.stderr)
        XCTAssertTrue(errors.first?.contains("rank 5") ?? false, placed.stderr)
    }

    /// A rank killed mid-generation ends the whole job within 10 s, with a message naming it, and
    /// leaves no process behind.
    func testKilledRankEndsTheJob() throws {
        guard let mpirun else { throw XCTSkip("mpirun is not installed") }
        let dir = try scratchDirectory(self)
        let model = "\(dir)/small.gguf"
        let synth = try launch("grok", ["synth", "--preset", "grok-1-small", "--dtype", "q8_0", "--output", model])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let coordinator = productsDirectory.appendingPathComponent("grok-coordinator").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mpirun)
        p.arguments = ["--oversubscribe", "--timeout", "120", "-np", "2", coordinator, "--model", model,
                       "--topology", Self.topology("tiny-2r-tp2.json"), "--tokens", "1,2,3", "--max-tokens", "2000",
                       "--ignore-eos", "--temperature", "0"]
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in mpiEnvironment { environment[k] = v }
        p.environment = environment
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let errData = Box()
        let drained = DispatchGroup()
        drained.enter(); DispatchQueue.global().async { _ = out.fileHandleForReading.readDataToEndOfFile(); drained.leave() }
        drained.enter(); DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); drained.leave() }
        try p.run()
        defer { if p.isRunning { p.terminate() } }

        // Wait until both ranks are up and generating (rank 1 found by its MPI environment).
        var victim: Int32?
        let start = Date()
        while victim == nil && Date().timeIntervalSince(start) < 60 {
            usleep(200_000)
            victim = childProcesses(of: p.processIdentifier).first { rankOf($0) == 1 }
        }
        let killedRank = try XCTUnwrap(victim, "rank 1 of the job never appeared")
        sleep(3)   // past loading, into generation
        XCTAssertTrue(p.isRunning, "the job ended before the kill")
        kill(killedRank, SIGKILL)
        let killed = Date()
        while p.isRunning && Date().timeIntervalSince(killed) < 30 { usleep(50_000) }
        let seconds = Date().timeIntervalSince(killed)
        XCTAssertFalse(p.isRunning)
        XCTAssertLessThan(seconds, 10, "the job took \(seconds) s to end after rank 1 was killed")
        p.waitUntilExit()
        drained.wait()
        XCTAssertNotEqual(p.terminationStatus, 0)
        let stderr = String(decoding: errData.data, as: UTF8.self)
        XCTAssertTrue(stderr.contains("rank 1"), stderr)
        usleep(500_000)
        XCTAssertEqual(processes(running: coordinator), [], "grok-coordinator processes left behind")
        print("killed rank 1: the job ended in \(String(format: "%.2f", seconds)) s")
    }
}

func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }
func largest(_ a: [Float]) -> Float { a.map(abs).max() ?? 0 }

/// Direct children of `pid` (from /proc).
func childProcesses(of pid: Int32) -> [Int32] {
    let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return all.compactMap(Int32.init).filter { candidate in
        guard let stat = try? String(contentsOfFile: "/proc/\(candidate)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 2 && Int32(fields[1]) == pid
    }
}

/// The MPI rank of a process, from its environment.
func rankOf(_ pid: Int32) -> Int? {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
    for entry in data.split(separator: 0) {
        let text = String(decoding: entry, as: UTF8.self)
        if text.hasPrefix("OMPI_COMM_WORLD_RANK=") { return Int(text.dropFirst("OMPI_COMM_WORLD_RANK=".count)) }
    }
    return nil
}

/// Processes whose executable is `path`.
func processes(running path: String) -> [Int32] {
    let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return all.compactMap(Int32.init).filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\($0)/exe")) == path }
}
