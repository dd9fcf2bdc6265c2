import Foundation
import GrokRuntime
import XCTest

/// `grok` (not grok-coordinator) under mpirun, with the environment `runUnderMPI` uses and no core
/// binding (calibrate measures with every core of the node).
func runGrokUnderMPI(ranks: Int, _ arguments: [String], bind: Bool = false, timeout: TimeInterval = 120) throws -> RunResult {
    guard let mpirun else { throw XCTSkip("mpirun is not installed") }
    return try launch(mpirun, ["--oversubscribe", "--timeout", "\(Int(timeout))"] + (bind ? [] : ["--bind-to", "none"])
                        + ["-np", "\(ranks)", productsDirectory.appendingPathComponent("grok").path] + arguments,
                      environment: mpiEnvironment, timeout: timeout + 30)
}

/// The repository's Launch directory (this file is Tests/CLITests/CalibrateTests.swift).
let launchDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Launch")

/// `grok calibrate`, the α–β fit and reading cluster profiles.
final class CalibrateTests: XCTestCase {
    func occurrences(of needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    func testQuickCalibrationOnTwoRanks() throws {
        let dir = try scratchDirectory(self)
        let out = "\(dir)/cluster.json"
        let start = Date()
        let run = try runGrokUnderMPI(ranks: 2, ["calibrate", "--quick", "--out", out])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(start), 60, "--quick takes seconds")
        XCTAssertFalse(run.stderr.contains("error:"), run.stderr)

        let profile = try ClusterProfile(contentsOf: out)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        XCTAssertEqual(profile.node.cores, cores)
        XCTAssertEqual(profile.node.memoryBytes, Int(ProcessInfo.processInfo.physicalMemory))
        XCTAssertEqual(profile.nodes, 1, "both ranks run on this host")
        XCTAssertTrue(profile.description.contains("shared memory"), profile.description)

        // Read bandwidth for 1, 2, 4, … up to the cores.
        let threads = Calibration.Options(maxThreads: cores).threadCounts
        XCTAssertEqual(threads.first, 1)
        XCTAssertEqual(threads.last, cores)
        XCTAssertEqual(profile.node.readBandwidth.map(\.threads), threads)
        for r in profile.node.readBandwidth { XCTAssertTrue(r.bytesPerSecond > 0 && r.bytesPerSecond.isFinite, "\(r)") }

        // Kernels: every dtype at every thread count.
        XCTAssertEqual(Set(profile.node.kernels.map(\.dtype)), ["f32", "f16", "bf16", "q8_0", "q4_0"])
        for dtype in ["f32", "f16", "bf16", "q8_0", "q4_0"] {
            XCTAssertEqual(profile.node.kernels.filter { $0.dtype == dtype }.map(\.threads), threads, dtype)
        }
        for k in profile.node.kernels {
            XCTAssertTrue(k.matvecBytesPerSecond > 0 && k.matvecBytesPerSecond.isFinite, "\(k)")
            XCTAssertTrue(k.matmatFlopsPerSecond > 0 && k.matmatFlopsPerSecond.isFinite, "\(k)")
        }

        // Every collective kind, fitted: α ≥ 0, β > 0.
        XCTAssertEqual(profile.network.collectives.map(\.kind), Calibration.collectiveKinds)
        for c in profile.network.collectives {
            XCTAssertEqual(c.ranks, 2, c.kind)
            XCTAssertTrue(c.alphaSeconds >= 0 && c.alphaSeconds < 1e-2, "\(c)")
            XCTAssertTrue(c.bytesPerSecond > 0 && c.bytesPerSecond.isFinite, "\(c)")
        }

        // The file is what Calibration.json writes (pretty-printed, sorted keys) and round-trips.
        let text = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertEqual(text, String(decoding: try Calibration.json(profile), as: UTF8.self))

        // The summary comes from rank 0 alone.
        XCTAssertEqual(occurrences(of: "read bandwidth\n", in: run.stdout), 1, run.stdout)
        XCTAssertEqual(occurrences(of: "wrote \(out)", in: run.stdout), 1, run.stdout)
        for kind in Calibration.collectiveKinds { XCTAssertEqual(occurrences(of: "  \(kind) ", in: run.stdout), 1, run.stdout) }
        XCTAssertTrue(run.stdout.contains("q4_0"), run.stdout)
    }

    func testNodeOnlyInOneProcessKeepsTheDefaultNetwork() throws {
        let dir = try scratchDirectory(self)
        let out = "\(dir)/node.json"
        let run = try launch("grok", ["calibrate", "--quick", "--node-only", "--threads-max", "1", "--out", out])
        XCTAssertEqual(run.status, 0, run.stderr)
        let profile = try ClusterProfile(contentsOf: out)
        XCTAssertEqual(profile.network, ClusterProfile.default.network)
        XCTAssertNil(profile.nodes)
        XCTAssertEqual(profile.node.readBandwidth.map(\.threads), [1])
        XCTAssertEqual(profile.node.kernels.count, 5)
        XCTAssertTrue(profile.description.contains("not measured"), profile.description)
    }

    func testErrorsAreOneLineFromRankZero() throws {
        let dir = try scratchDirectory(self)
        // One process: the network part needs two ranks.
        let single = try launch("grok", ["calibrate", "--quick", "--out", "\(dir)/a.json"])
        XCTAssertNotEqual(single.status, 0)
        XCTAssertEqual(single.stderrLines.filter { $0.hasPrefix("error:") }.count, 1, single.stderr)
        XCTAssertTrue(single.stderr.contains("at least 2 ranks") && single.stderr.contains("--node-only"), single.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/a.json"))

        // Under mpirun: a bad option and an unwritable --out, reported once, every rank failing.
        for arguments in [["--max-bytes", "4"], ["--out", "/nonexistent-dir/x.json"]] {
            let run = try runGrokUnderMPI(ranks: 2, ["calibrate", "--quick"] + (arguments[0] == "--out" ? arguments : arguments + ["--out", "\(dir)/b.json"]))
            XCTAssertNotEqual(run.status, 0, "\(arguments)")
            let errors = run.stderrLines.filter { $0.hasPrefix("error:") }
            XCTAssertEqual(errors.count, 1, run.stderr)
            XCTAssertTrue(errors.first?.contains(arguments[0]) ?? false, run.stderr)
            XCTAssertFalse(run.stdout.contains("read bandwidth"), run.stdout)
        }

        // mpirun's default binding (one core per rank for ≤ 2 ranks) would corrupt the thread scaling.
        if ProcessInfo.processInfo.activeProcessorCount >= 2 {
            let bound = try runGrokUnderMPI(ranks: 2, ["calibrate", "--quick", "--out", "\(dir)/c.json"], bind: true)
            if bound.status != 0 {
                let errors = bound.stderrLines.filter { $0.hasPrefix("error:") }
                XCTAssertEqual(errors.count, 1, bound.stderr)
                XCTAssertTrue(errors.first?.contains("--bind-to none") ?? false, bound.stderr)
            }
        }
    }

    func testFitRecoversAnExactLine() {
        let sizes = Calibration.Options().messageSizes
        XCTAssertEqual(sizes.first, 8)
        XCTAssertEqual(sizes.last, 16 << 20)
        for (alpha, beta) in [(20e-6, 3.125e9), (0.3e-6, 40e9), (0.0, 1e9), (1e-3, 1e6)] {
            let points = sizes.map { (bytes: Double($0), seconds: alpha + Double($0) / beta) }
            let fit = Calibration.fit(points)
            XCTAssertEqual(fit.alphaSeconds, alpha, accuracy: max(alpha, 1e-9) * 1e-9, "α for \(alpha), \(beta)")
            XCTAssertEqual(fit.bytesPerSecond, beta, accuracy: beta * 1e-9, "β for \(alpha), \(beta)")
        }
        // A line through a negative intercept: α clamps at 0, β refitted through the origin.
        let negative = Calibration.fit([(bytes: 1000.0, seconds: 0.5e-6), (bytes: 2000.0, seconds: 1.5e-6)])
        XCTAssertEqual(negative.alphaSeconds, 0)
        XCTAssertTrue(negative.bytesPerSecond > 0 && negative.bytesPerSecond.isFinite)
        // No size dependence: all latency, and the largest finite bandwidth.
        let flat = Calibration.fit([(bytes: 8.0, seconds: 2e-6), (bytes: 1048576.0, seconds: 2e-6)])
        XCTAssertEqual(flat.alphaSeconds, 2e-6, accuracy: 1e-15)
        XCTAssertEqual(flat.bytesPerSecond, Calibration.maxBytesPerSecond)
        XCTAssertEqual(Calibration.fit([]).alphaSeconds, 0)
    }

    func testExampleProfileLoads() throws {
        let path = launchDirectory.appendingPathComponent("cluster-example-25gbe.json").path
        let profile = try ClusterProfile(contentsOf: path)
        XCTAssertEqual(profile.nodes, 16)
        XCTAssertEqual(profile.node.memoryBytes, 256 << 30)
        XCTAssertEqual(profile.node.cores, 64)
        XCTAssertEqual(profile.readBandwidth(threads: 64), 200e9)
        XCTAssertEqual(profile.kernel("q4_0", threads: 64).matvecBytesPerSecond, 160e9)
        XCTAssertEqual(Set(profile.node.kernels.map(\.dtype)), ["f32", "f16", "bf16", "q8_0", "q4_0"])
        XCTAssertEqual(profile.network.collectives.map(\.kind), Calibration.collectiveKinds)
        XCTAssertEqual(profile.collective("pointToPoint", ranks: 2).alpha, 20e-6)
        XCTAssertEqual(profile.collective("pointToPoint", ranks: 2).bytesPerSecond, 3.125e9)
        XCTAssertEqual(profile.collective("allreduce", ranks: 16).alpha, 80e-6)
        // The example in cluster-profile.md is the same file.
        let doc = try String(contentsOf: launchDirectory.appendingPathComponent("cluster-profile.md"), encoding: .utf8)
        let example = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(doc.contains(example.trimmingCharacters(in: .whitespacesAndNewlines)), "cluster-profile.md shows the example file")
    }

    func testBrokenProfilesNameTheField() throws {
        let dir = try scratchDirectory(self)
        let good = try String(contentsOf: launchDirectory.appendingPathComponent("cluster-example-25gbe.json"), encoding: .utf8)
        let cases: [(String, String)] = [
            (good.replacingOccurrences(of: "\"cores\": 64,", with: ""), "node.cores"),
            (good.replacingOccurrences(of: "\"alphaSeconds\": 80e-6", with: "\"alphaSeconds\": \"80 µs\""), "alphaSeconds"),
            (good.replacingOccurrences(of: "\"kind\": \"broadcast\", ", with: ""), "kind"),
            ("{ \"description\": ", "not a cluster profile"),
        ]
        for (i, (text, field)) in cases.enumerated() {
            XCTAssertNotEqual(text, good)
            let path = "\(dir)/broken-\(i).json"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try ClusterProfile(contentsOf: path)) { error in
                let message = "\(error)"
                XCTAssertFalse(message.contains("\n"), message)
                XCTAssertTrue(message.hasPrefix(path), message)
                XCTAssertTrue(message.contains(field), "\(field): \(message)")
            }
        }
        XCTAssertThrowsError(try ClusterProfile(contentsOf: "\(dir)/missing.json")) { error in
            XCTAssertTrue("\(error)".contains("cannot read"), "\(error)")
        }
    }
}
