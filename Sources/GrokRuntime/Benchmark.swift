import Foundation
import GrokCheckpoint
import GrokModel
import GrokTensor

/// `grok bench`: prefill and decode speed of a synthetic model of about `targetBytes` at each
/// dtype, against the decode floor = weight bytes read per token / measured read bandwidth.
public enum Benchmark {
    public struct Row: Sendable {
        public var dtype: DType
        public var threads: Int
        public var fileBytes: Int
        public var activeBytesPerToken: Int
        public var prefillTokensPerSecond: Double
        public var decodeTokensPerSecond: Double
        public var bandwidth: Double          // bytes/s, measured with the same thread count
        /// Decode speed as a fraction of the bandwidth floor: (bytes per token · tokens/s) / bandwidth.
        public var fractionOfFloor: Double { Double(activeBytesPerToken) * decodeTokensPerSecond / bandwidth }
    }

    /// The benchmark shape: a Grok-1 layout with rows as long as the real model's (width 4096;
    /// 32/8 heads of 128; 8 experts, top-2; vocabulary 4096). The expert width (4096, halved
    /// while one layer would not fit) and the layer count make the file about `targetBytes` at `dtype`.
    public static func config(dtype: DType, targetBytes: Int) -> ModelConfig {
        var c = Grok1.small
        c.modelWidth = 4096
        c.queryHeads = 32
        c.kvHeads = 8
        c.expertFFNWidth = 4096
        c.layerCount = 1
        func layerBytes() -> Int { dtype.rowBytes(c.parameterCount - c.vocabularySize * c.modelWidth - c.modelWidth) }
        let fixed = dtype.rowBytes(c.vocabularySize * c.modelWidth)
        while c.expertFFNWidth > 512 && fixed + layerBytes() > targetBytes { c.expertFFNWidth /= 2 }
        c.layerCount = max(1, Int((Double(targetBytes - fixed) / Double(layerBytes())).rounded()))
        return c
    }

    /// Synthesizes (or reuses) the model for `dtype` under `directory` and measures it.
    public static func run(dtype: DType, threads: Int, targetBytes: Int, directory: String,
                           promptTokens: Int, decodeTokens: Int, log: (String) -> Void) throws -> Row {
        let config = self.config(dtype: dtype, targetBytes: targetBytes)
        let path = (directory as NSString).appendingPathComponent(
            "bench-d\(config.modelWidth)-f\(config.expertFFNWidth)-\(config.layerCount)L-\(dtype.name.lowercased()).gguf")
        if !FileManager.default.fileExists(atPath: path) {
            log("synthesizing \(path) …\n")
            try Synthesizer.write(config, dtype: dtype, seed: 7, name: "bench-\(dtype.name)", to: path + ".tmp")
            try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
        }
        let file = try GGUFFile(path: path)
        let model = try GrokModel(source: file, pool: ThreadPool(threads: threads))
        // Touch every weight once so the page cache, not the disk, is measured.
        _ = file.tensors.reduce(0) { sum, t in
            let d = file.data(of: t)
            return stride(from: 0, to: d.count, by: 4096).reduce(sum) { $0 &+ Int(d[$1]) }
        }
        let prompt = (0..<promptTokens).map { Int32(($0 * 7919) % config.vocabularySize) }
        let batch = ForwardBatch(tokens: prompt, slots: Array(repeating: 0, count: promptTokens), positions: Array(0..<promptTokens))
        // Prefill: best of two passes on fresh caches (the first also pays for first-touch allocations).
        var prefill = Double.infinity
        var cache = model.makeCache(slots: 1, capacity: promptTokens + decodeTokens + 1)
        var logits = FloatBuffer(rows: 0, columns: 0)
        for _ in 0..<2 {
            cache = model.makeCache(slots: 1, capacity: promptTokens + decodeTokens + 1)
            let start = Date()
            logits = try model.forward(batch, cache: cache, logitRows: [promptTokens - 1])
            prefill = min(prefill, Date().timeIntervalSince(start))
        }
        var token = Int32(Sampler.argmax(logits.array))
        // This machine's bandwidth drifts over seconds: measure it right before and right after
        // the decode and divide by the larger (the conservative fraction).
        let pool = model.pool
        let before = MemoryBandwidth.measureRead(bytes: bandwidthProbeBytes, threads: threads, pool: pool)
        let start = Date()
        for step in 0..<decodeTokens {
            let one = ForwardBatch(tokens: [token], slots: [0], positions: [promptTokens + step])
            logits = try model.forward(one, cache: cache, logitRows: [0])
            token = Int32(Sampler.argmax(logits.array))
        }
        let decode = Date().timeIntervalSince(start)
        let after = MemoryBandwidth.measureRead(bytes: bandwidthProbeBytes, threads: threads, pool: pool)
        let bandwidth = max(before, after)
        return Row(dtype: dtype, threads: threads, fileBytes: file.fileSize,
                   activeBytesPerToken: model.activeWeightBytesPerToken,
                   prefillTokensPerSecond: Double(promptTokens) / prefill,
                   decodeTokensPerSecond: Double(decodeTokens) / decode, bandwidth: bandwidth)
    }

    /// Far larger than the last-level cache (32 MiB here).
    static let bandwidthProbeBytes = 512 << 20

    public static let header = "dtype  threads  file GB  read MB/token  prefill tok/s  decode tok/s  bandwidth GB/s  floor tok/s  of floor"

    public static func format(_ r: Row) -> String {
        String(format: "%-5@  %7d  %7.2f  %13.1f  %13.1f  %12.2f  %14.1f  %11.2f  %7.1f%%",
               r.dtype.name as NSString, r.threads, Double(r.fileBytes) / 1e9, Double(r.activeBytesPerToken) / 1e6,
               r.prefillTokensPerSecond, r.decodeTokensPerSecond, r.bandwidth / 1e9,
               r.bandwidth / Double(r.activeBytesPerToken), 100 * r.fractionOfFloor)
    }
}
