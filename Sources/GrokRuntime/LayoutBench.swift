import Foundation
import GrokTopology

/// `grok bench --topology`: runs the real runtime (grok-coordinator under mpirun) on a layout and
/// reads back what it measured, to put beside `grok plan`'s prediction.
public enum LayoutBench {
    public struct Measured: Codable, Sendable {
        public var batch: Int
        public var decodeSteps: Int
        /// Wall time of one decode step (rank 0: command, forward on every rank, logits, sampling).
        public var stepSeconds: Double
        public var tokensPerSecond: Double
        /// The busiest rank's share of forward time spent communicating (from --stats).
        public var communicationShare: Double
        public var prefillSeconds: Double
        public var promptTokens: Int
        public var peakResidentBytes: [Int]
        /// Rank 0's calls per forward step, per collective kind (from --stats).
        public var messagesPerStep: [String: Double]
    }

    /// Launches `ranks` processes of `coordinator` on `model` under `topology`, generating `tokens`
    /// tokens for each of `batch` prompts; `mpirun` with the settings in `environment`. With
    /// `traceRouting`, the run records its routing there.
    public static func run(mpirun: String, coordinator: String, model: String, topology: String, ranks: Int, batch: Int,
                           tokens: Int, threads: Int, environment: [String: String], scratch: String,
                           traceRouting: String? = nil) throws -> Measured {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let prompts = "\(scratch)/prompts.txt", stats = "\(scratch)/stats.json"
        try (0..<batch).map { "Prompt number \($0 + 1) of the batch, a few words long" }.joined(separator: "\n")
            .write(toFile: prompts, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: mpirun)
        process.arguments = ["--oversubscribe", "--timeout", "600"] + (threads > 1 ? ["--bind-to", "none"] : []) + ["-np", "\(ranks)", coordinator,
                             "--model", model, "--topology", topology, "--prompt-file", prompts, "--max-tokens", "\(tokens)",
                             "--temperature", "0", "--ignore-eos", "--threads", "\(threads)", "--json", "--stats-json", stats]
            + (traceRouting.map { ["--trace-routing", $0] } ?? [])
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let line = String(decoding: errors, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("error:") } ?? "exit \(process.terminationStatus)"
            throw ProfileError("bench \(topology): the run failed: \(line)")
        }
        let lines = String(decoding: output, as: UTF8.self).split(separator: "\n")
        guard let first = lines.first, let object = try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any],
              let timings = object["timings"] as? [String: Double] else {
            throw ProfileError("bench \(topology): no --json output")
        }
        let steps = max(tokens - 1, 1)
        let decode = timings["decode_seconds"] ?? 0
        let ranksStats = (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [[String: Any]]) ?? []
        let share = ranksStats.map { r -> Double in
            let forward = r["forwardSeconds"] as? Double ?? 0, compute = r["computeSeconds"] as? Double ?? 0
            return forward > 0 ? (forward - compute) / forward : 0
        }.max() ?? 0
        let promptTokens = lines.compactMap { line -> Int? in
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]).flatMap { ($0["prompt_tokens"] as? [Any])?.count }
        }.reduce(0, +)
        var messages: [String: Double] = [:]
        if let rank0 = ranksStats.first, let forwardSteps = rank0["forwardSteps"] as? Int, forwardSteps > 0,
           let communication = rank0["communication"] as? [String: [String: Any]] {
            for (kind, entry) in communication where kind != "broadcast" {
                messages[kind] = Double(entry["calls"] as? Int ?? 0) / Double(forwardSteps)
            }
        }
        return Measured(batch: batch, decodeSteps: steps, stepSeconds: decode / Double(steps),
                        tokensPerSecond: Double(batch * steps) / max(decode, 1e-9), communicationShare: share,
                        prefillSeconds: timings["prefill_seconds"] ?? 0, promptTokens: promptTokens,
                        peakResidentBytes: ranksStats.map { $0["peakResidentBytes"] as? Int ?? 0 }, messagesPerStep: messages)
    }
}
