import Foundation
import GrokCheckpoint
import GrokRuntime
import XCTest

/// `grok-coordinator --trace-routing DIR` (Launch/routing-trace.md) and skewed synthetic routers
/// (`grok synth --router-skew --router-affinity`).
final class RoutingTraceTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func topology(_ name: String) -> String { repository.appendingPathComponent("Topologies/\(name).json").path }

    /// Layouts and their world sizes; nil = data parallel (no --topology).
    static let layouts: [(name: String?, ranks: Int)] = [
        ("tiny-2r-tp2", 2), ("tiny-4r-ep4", 4), ("tiny-2r-slice2", 2), ("tiny-4r-pp2-tp2", 4), ("tiny-8r-mixed", 8), (nil, 2),
    ]

    static let prompts = "The answer to life, the universe and everything is\nHello\nA distributed runtime for mixture of experts\n"

    /// The trace's files: shape [T, 4, 2] with T = Σ (prompt + generated − 1), tokens in
    /// (sequence, position) order, NumPy headers as NumPy writes them; and under every layout
    /// (real MPI processes) and data parallel, the same experts, sequence, position and meta bytes,
    /// gates within 1e-6.
    func testTraceIsTheSameUnderEveryLayout() throws {
        let dir = try scratchDirectory(self)
        let promptFile = "\(dir)/prompts.txt"
        try Self.prompts.write(toFile: promptFile, atomically: true, encoding: .utf8)
        let args = ["--prompt-file", promptFile, "--max-tokens", "6", "--temperature", "0", "--json"]
        let single = try launch("grok-coordinator", args + ["--trace-routing", "\(dir)/single"])
        XCTAssertEqual(single.status, 0, single.stderr)
        guard single.status == 0 else { return }

        // Which tokens went through the model: every prompt token, and every generated one but the last.
        var expectedSequence: [Int32] = [], expectedPosition: [Int32] = []
        for (s, line) in single.stdout.split(separator: "\n").enumerated() {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            XCTAssertEqual(object["sequence"] as? Int, s)
            let fed = (object["prompt_tokens"] as! [Int]).count + (object["generated_tokens"] as! [Int]).count - 1
            expectedSequence += [Int32](repeating: Int32(s), count: fed)
            expectedPosition += (0..<fed).map(Int32.init)
        }
        XCTAssertEqual(Set(expectedSequence).count, 3)
        let T = expectedSequence.count

        let trace = try RoutingTrace(directory: "\(dir)/single")
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/single/meta.json"))) as! [String: Any]
        XCTAssertEqual(trace.tokens, T)
        XCTAssertEqual(trace.layers, 4)
        XCTAssertEqual(trace.expertsPerToken, 2)
        XCTAssertEqual(trace.sequence, expectedSequence)
        XCTAssertEqual(trace.position, expectedPosition)
        XCTAssertEqual(meta["format"] as? String, "grokcluster-routing-trace")
        XCTAssertEqual(meta["version"] as? Int, 1)
        XCTAssertEqual(meta["layers"] as? Int, 4)
        XCTAssertEqual(meta["experts"] as? Int, 8)
        XCTAssertEqual(meta["expertsPerToken"] as? Int, 2)
        XCTAssertEqual(meta["model"] as? String, "embedded")
        XCTAssertEqual(meta["tokens"] as? Int, T)
        // Each token's two experts are distinct valid ids, best first; gates are probabilities, descending.
        for i in stride(from: 0, to: trace.choices.count, by: 2) {
            XCTAssertTrue((0..<8).contains(trace.choices[i]) && (0..<8).contains(trace.choices[i + 1]))
            XCTAssertNotEqual(trace.choices[i], trace.choices[i + 1])
            XCTAssertTrue(trace.gates[i] >= trace.gates[i + 1] && trace.gates[i + 1] > 0 && trace.gates[i] + trace.gates[i + 1] <= 1.0001)
        }
        // The headers as a NumPy reader sees them, parsed by hand.
        for (file, descr, shape) in [("experts.npy", "<i2", "(\(T), 4, 2)"), ("gates.npy", "<f4", "(\(T), 4, 2)"),
                                     ("sequence.npy", "<i4", "(\(T),)"), ("position.npy", "<i4", "(\(T),)")] {
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/single/\(file)"))
            XCTAssertEqual(Array(data.prefix(8)), [0x93] + Array("NUMPY".utf8) + [1, 0], file)
            let length = Int(data[8]) | Int(data[9]) << 8
            XCTAssertEqual((10 + length) % 64, 0, file)
            let header = String(decoding: data[10..<(10 + length)], as: UTF8.self)
            XCTAssertEqual(header.trimmingCharacters(in: .whitespacesAndNewlines),
                           "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }", file)
            let itemSize = descr == "<i2" ? 2 : 4
            XCTAssertEqual(data.count - 10 - length, shape.contains(",)") ? T * itemSize : T * 8 * itemSize, file)
        }

        var worstGate: Float = 0
        for layout in Self.layouts {
            let name = layout.name ?? "data-parallel"
            let out = "\(dir)/\(name)"
            let run = try runUnderMPI(ranks: layout.ranks, args + ["--trace-routing", out]
                                        + (layout.name.map { ["--topology", Self.topology($0)] } ?? []))
            XCTAssertEqual(run.status, 0, "\(name): \(run.stderr)")
            guard run.status == 0 else { continue }
            for file in ["experts.npy", "sequence.npy", "position.npy", "meta.json"] {
                XCTAssertEqual(FileManager.default.contents(atPath: "\(out)/\(file)"), FileManager.default.contents(atPath: "\(dir)/single/\(file)"),
                               "\(name): \(file) differs from one rank's")
            }
            let gates = try RoutingTrace(directory: out).gates
            XCTAssertEqual(gates.count, trace.gates.count, name)
            let difference = zip(gates, trace.gates).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(difference, 1e-6, name)
            worstGate = max(worstGate, difference)
        }
        print("routing trace: \(T) tokens × 4 layers × 2 experts; identical experts/sequence/position/meta under "
              + "\(Self.layouts.count) layouts (mpirun); max |Δgate| vs one rank \(worstGate)")
    }

    /// A directory that cannot be made is one error line, before any generation.
    func testUnwritableDirectoryIsOneErrorLine() throws {
        let dir = try scratchDirectory(self)
        try "x".write(toFile: "\(dir)/file", atomically: true, encoding: .utf8)
        let run = try launch("grok-coordinator", ["--tokens", "1,2,3", "--max-tokens", "2", "--trace-routing", "\(dir)/file/trace"])
        XCTAssertEqual(run.status, 1)
        XCTAssertEqual(run.stderrLines.count, 1, run.stderr)
        XCTAssertTrue(run.stderr.hasPrefix("error: --trace-routing: cannot write \(dir)/file/trace"), run.stderr)
        XCTAssertEqual(run.stdout, "")
    }

    // MARK: - Skewed synthetic routers

    struct Measured {
        var hottestShare: Double            // mean over layers of the most routed expert's share
        var hottestMatches: Int             // layers whose most routed expert is the intended hottest
        var intendedShare: Double           // mean over layers of the intended hottest expert's share
        var mappedConditional: Double       // P(π_l(i) chosen at l+1 | i chosen at l), over all (token, l, i)
        var tokens: Int
    }

    /// Synthesizes a 4096-vocabulary grok-1-tiny with `flags`, traces a prompt file and measures it.
    func measure(_ flags: [String], in dir: String, name: String) throws -> Measured {
        let model = "\(dir)/\(name).gguf"
        let synth = try launch("grok", ["synth", "--preset", "grok-1-tiny", "--vocab", "4096", "--seed", "7", "-o", model] + flags)
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let file = try GGUFFile(path: model)
        let E = 8, L = 4
        let popularity = try file.intArray("grokcluster.router.popularity")
            ?? [Int](repeating: 0, count: E * L)
        let map = try file.intArray("grokcluster.router.affinity_map") ?? []

        let promptFile = "\(dir)/prompts.txt"
        // 24 lines of 10–40 pseudo-random words (a fixed LCG): varied tokens, not one phrase repeated.
        var state: UInt64 = 5
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        let text = (0..<24).map { _ in
            (0..<(10 + next(31))).map { _ in String((0..<(2 + next(8))).map { _ in letters[next(26)] }) }.joined(separator: " ")
        }.joined(separator: "\n")
        try text.write(toFile: promptFile, atomically: true, encoding: .utf8)
        let out = "\(dir)/\(name)-trace"
        let run = try launch("grok-coordinator", ["--model", model, "--prompt-file", promptFile, "--max-tokens", "8", "--temperature", "1",
                                                  "--top-k", "0", "--top-p", "1", "--min-p", "0", "--seed", "3", "--ignore-eos", "--json",
                                                  "--trace-routing", out], timeout: 300)
        XCTAssertEqual(run.status, 0, run.stderr)
        let trace = try RoutingTrace(directory: out)
        let shares = trace.loads().map { $0.map { Double($0) / Double(max(trace.tokens * trace.expertsPerToken, 1)) } }
        var measured = Measured(hottestShare: 0, hottestMatches: 0, intendedShare: 0, mappedConditional: 0, tokens: trace.tokens)
        for l in 0..<L {
            let hottest = shares[l].indices.max { shares[l][$0] < shares[l][$1] }!
            measured.hottestShare += shares[l][hottest] / Double(L)
            if hottest == popularity[l * E] { measured.hottestMatches += 1 }
            measured.intendedShare += shares[l][popularity[l * E]] / Double(L)
        }
        if map.count == (L - 1) * E {
            var hits = 0, total = 0
            for t in 0..<trace.tokens {
                for l in 0..<(L - 1) {
                    let next = Set((0..<2).map { trace.expert(token: t, layer: l + 1, choice: $0) })
                    for j in 0..<2 {
                        let i = trace.expert(token: t, layer: l, choice: j)
                        total += 1
                        if next.contains(map[l * E + i]) { hits += 1 }
                    }
                }
            }
            measured.mappedConditional = Double(hits) / Double(max(total, 1))
        }
        return measured
    }

    /// The default synthesizer is unchanged by the new options (same bytes); skew 1.2 makes the
    /// hottest expert take well over 2/E of the routing and be the intended one; affinity 0.8 makes
    /// the mapped expert of the next layer more likely than affinity 0 does.
    func testSkewedRoutersMeasured() throws {
        let dir = try scratchDirectory(self)
        let plain = try measure([], in: dir, name: "plain")
        let skewed = try measure(["--router-skew", "1.2"], in: dir, name: "skew")
        let noAffinity = try measure(["--router-skew", "1.2", "--router-affinity", "0"], in: dir, name: "skew-a0")
        let affine = try measure(["--router-skew", "1.2", "--router-affinity", "0.8"], in: dir, name: "skew-a08")
        let affineOnly = try measure(["--router-affinity", "0.8"], in: dir, name: "a08")
        let uniformOnly = try measure(["--router-skew", "0"], in: dir, name: "a0")
        let uniform = 1.0 / 8
        print(String(format: "router skew (grok-1-tiny, 4096 vocab, %d tokens): hottest expert's share of routing: plain %.3f, "
                     + "Z=1.2 %.3f (intended hottest: %.3f, the hottest in %d/4 layers), Z=1.2 A=0.8 %.3f, Z=0 %.3f; uniform %.3f", skewed.tokens,
                     plain.hottestShare, skewed.hottestShare, skewed.intendedShare, skewed.hottestMatches, affine.hottestShare,
                     uniformOnly.hottestShare, uniform))
        print(String(format: "router affinity: P(π(i) in layer l+1 | i in layer l): Z=1.2 A=0 %.3f, Z=1.2 A=0.8 %.3f; "
                     + "Z=0 A=0 %.3f, Z=0 A=0.8 %.3f; independent choice of 2 of 8 = %.3f",
                     noAffinity.mappedConditional, affine.mappedConditional, uniformOnly.mappedConditional,
                     affineOnly.mappedConditional, 2.0 / 8))
        XCTAssertEqual(skewed.hottestShare, noAffinity.hottestShare, accuracy: 1e-12, "affinity 0 is the default affinity")
        XCTAssertGreaterThan(skewed.hottestShare, 2 * uniform)
        XCTAssertGreaterThan(skewed.intendedShare, 1.5 * uniform)
        // Calibrated at synthesis: the intended hottest expert is the hottest in every layer, and
        // its share is near Zipf(1.2)'s first rank over 8 experts (0.429), on text it never saw.
        XCTAssertEqual(skewed.hottestMatches, 4)
        XCTAssertEqual(skewed.intendedShare, 0.429, accuracy: 0.25 * 0.429)
        XCTAssertGreaterThan(affine.mappedConditional, noAffinity.mappedConditional + 0.05)
        XCTAssertGreaterThan(affineOnly.mappedConditional, uniformOnly.mappedConditional + 0.1)

        // No option: the plain file (same bytes as before the options existed: checked against the
        // previous build's output by hand, and the existing reference tests use the embedded default).
        let a = "\(dir)/default.gguf", b = "\(dir)/explicit.gguf"
        XCTAssertEqual(try launch("grok", ["synth", "--preset", "grok-1-tiny", "--vocab", "4096", "--seed", "7", "-o", a]).status, 0)
        XCTAssertEqual(FileManager.default.contents(atPath: a), FileManager.default.contents(atPath: "\(dir)/plain.gguf"))
        let bad = try launch("grok", ["synth", "--router-affinity", "1", "-o", b])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--router-affinity"), bad.stderr)
    }
}
