import Foundation
import GrokTensor

/// What the planner knows about the machines: one node type and the network between nodes.
/// Written by `grok calibrate` (measured), by hand (e.g. "16 nodes, 256 GiB, 200 GB/s, 25 GbE
/// with 20 µs latency"), or `ClusterProfile.default`. Schema: `Launch/cluster-profile.md`.
public struct ClusterProfile: Codable, Sendable, Equatable {
    /// Free text: where the figures come from.
    public var description: String
    /// Nodes available (for `grok plan --search`); nil: as many as a layout asks for.
    public var nodes: Int?
    public var node: Node
    public var network: Network

    public struct Node: Codable, Sendable, Equatable {
        public var memoryBytes: Int
        public var cores: Int
        /// Read bandwidth (bytes/s) with each thread count measured; the planner interpolates.
        public var readBandwidth: [ThreadRate]
        /// Our kernels' throughput per dtype and thread count.
        public var kernels: [KernelRate]
        /// Fixed costs of the forward pass beyond reading weights (norms, RoPE, routing, softmax,
        /// buffers, thread hand-offs), per layer per micro-batch and per layer per token, measured
        /// on a tiny model by `grok calibrate`; absent: 0.
        public var layerOverheadSeconds: Double?
        public var tokenLayerOverheadSeconds: Double?
        /// Read bandwidth of each of N single-thread processes streaming at once (`threads` = N):
        /// how ranks sharing a node share its memory bus; absent: the thread figures, shared out.
        public var processReadBandwidth: [ThreadRate]?
        /// Seconds per element of the FFN activation (gelu(gate)·up) with tanh (Grok-1) and erf
        /// (Grok-2) GELU, one thread; absent: 0.
        public var geluTanhSecondsPerElement: Double?
        public var geluErfSecondsPerElement: Double?

        public init(memoryBytes: Int, cores: Int, readBandwidth: [ThreadRate], kernels: [KernelRate],
                    layerOverheadSeconds: Double? = nil, tokenLayerOverheadSeconds: Double? = nil) {
            self.memoryBytes = memoryBytes
            self.cores = cores
            self.readBandwidth = readBandwidth
            self.kernels = kernels
            self.layerOverheadSeconds = layerOverheadSeconds
            self.tokenLayerOverheadSeconds = tokenLayerOverheadSeconds
        }
    }

    public struct ThreadRate: Codable, Sendable, Equatable {
        public var threads: Int
        public var bytesPerSecond: Double
        public init(threads: Int, bytesPerSecond: Double) {
            self.threads = threads
            self.bytesPerSecond = bytesPerSecond
        }
    }

    public struct KernelRate: Codable, Sendable, Equatable {
        /// "f32", "bf16", "q8_0", …
        public var dtype: String
        public var threads: Int
        /// Matrix-vector (one token): weight bytes streamed per second.
        public var matvecBytesPerSecond: Double
        /// Matrix-matrix (a batch of 64 tokens, the sgemm path): floating-point operations per second.
        public var matmatFlopsPerSecond: Double
        /// A small batch (8 tokens: the SIMD dot-product path the kernels take up to 16 tokens),
        /// FLOP/s over the matrix-vector matrix; absent in hand-written profiles (then matmat's).
        public var smallBatchFlopsPerSecond: Double?
        /// The direct path (1–16 tokens) measured per token count and row length: weight bytes
        /// multiplied by all the tokens per second. The planner interpolates between them; absent
        /// in hand-written profiles (then matvec's rate, or the small-batch FLOP rate, whichever
        /// is slower).
        public var direct: [TokenRate]?
        public init(dtype: String, threads: Int, matvecBytesPerSecond: Double, matmatFlopsPerSecond: Double,
                    smallBatchFlopsPerSecond: Double? = nil, direct: [TokenRate]? = nil) {
            self.dtype = dtype
            self.threads = threads
            self.matvecBytesPerSecond = matvecBytesPerSecond
            self.matmatFlopsPerSecond = matmatFlopsPerSecond
            self.smallBatchFlopsPerSecond = smallBatchFlopsPerSecond
            self.direct = direct
        }
    }

    public struct TokenRate: Codable, Sendable, Equatable {
        public var tokens: Int
        public var bytesPerSecond: Double
        /// Row length of the matrix measured (short rows are slower per byte at a few tokens);
        /// absent: `ClusterProfile.kernelColumns`.
        public var columns: Int?
        public init(tokens: Int, bytesPerSecond: Double, columns: Int? = nil) {
            self.tokens = tokens
            self.bytesPerSecond = bytesPerSecond
            self.columns = columns
        }
    }

    /// The row length of the kernel measurements that do not name one (`grok calibrate`'s
    /// matrices before it measured several row lengths).
    public static let kernelColumns = 4096

    public struct Network: Codable, Sendable, Equatable {
        /// Per collective the runtime uses: `t = alphaSeconds + bytes / bytesPerSecond`, fitted
        /// for a group of `ranks` (bytes: what one rank contributes or sends).
        public var collectives: [Collective]
        public init(collectives: [Collective]) { self.collectives = collectives }
    }

    public struct Collective: Codable, Sendable, Equatable {
        /// "pointToPoint", "allreduce", "allgather", "alltoallv", "broadcast".
        public var kind: String
        public var ranks: Int
        public var alphaSeconds: Double
        public var bytesPerSecond: Double
        public init(kind: String, ranks: Int, alphaSeconds: Double, bytesPerSecond: Double) {
            self.kind = kind
            self.ranks = ranks
            self.alphaSeconds = alphaSeconds
            self.bytesPerSecond = bytesPerSecond
        }
    }

    public init(description: String, nodes: Int?, node: Node, network: Network) {
        self.description = description
        self.nodes = nodes
        self.node = node
        self.network = network
    }

    /// The profile used without `--cluster`: a commodity dual-channel-per-socket server class —
    /// 256 GiB, 64 cores, 200 GB/s read bandwidth with all cores (about 8 channels of DDR4-3200
    /// at 78 %, field-notes.md §4), kernels at 80 % of bandwidth, 1.5 TFLOP/s f32 matrix-matrix;
    /// 25 GbE between nodes (3.125 GB/s) with 20 µs MPI latency over TCP (field-notes.md §4).
    public static let `default`: ClusterProfile = {
        let bandwidth = 200e9
        let kernels = ["f32", "f16", "bf16", "q8_0", "q4_0"].map {
            KernelRate(dtype: $0, threads: 64, matvecBytesPerSecond: 0.8 * bandwidth, matmatFlopsPerSecond: 1.5e12)
        }
        let network = ["pointToPoint", "allreduce", "allgather", "alltoallv", "broadcast"].map {
            Collective(kind: $0, ranks: 2, alphaSeconds: 20e-6, bytesPerSecond: 3.125e9)
        }
        return ClusterProfile(
            description: "default profile \"commodity-25gbe\": 256 GiB, 64 cores, 200 GB/s read, 25 GbE with 20 µs latency (no measurement; give --cluster)",
            nodes: nil,
            node: Node(memoryBytes: 256 << 30, cores: 64,
                       readBandwidth: [ThreadRate(threads: 1, bytesPerSecond: 15e9), ThreadRate(threads: 64, bytesPerSecond: bandwidth)],
                       kernels: kernels),
            network: Network(collectives: network))
    }()

    /// Reads a profile, with one-line errors naming the file.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProfileError("--cluster: cannot read \(path)")
        }
        do { self = try JSONDecoder().decode(ClusterProfile.self, from: data) } catch let DecodingError.keyNotFound(key, context) {
            throw ProfileError("\(path): \((context.codingPath + [key]).map(\.stringValue).joined(separator: ".")): missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw ProfileError("\(path): \(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)")
        } catch {
            throw ProfileError("\(path): not a cluster profile (\(error))")
        }
        guard node.memoryBytes > 0, node.cores > 0, !node.readBandwidth.isEmpty, !network.collectives.isEmpty else {
            throw ProfileError("\(path): node.memoryBytes, node.cores, node.readBandwidth and network.collectives must be given")
        }
    }

    /// Read bandwidth with `threads` threads: linear between measured points, flat beyond.
    public func readBandwidth(threads: Int) -> Double {
        interpolate(node.readBandwidth.map { (Double($0.threads), $0.bytesPerSecond) }, at: Double(threads))
    }

    /// The kernels' rates for `dtype` at `threads` and `tokens` tokens per matrix product: the
    /// small-batch FLOP rate up to 16 tokens (the kernels' direct path), matmat's beyond;
    /// interpolated over measured thread counts, f32's when this dtype was not measured.
    public func kernel(_ dtype: String, threads: Int, tokens: Double = 64) -> (matvecBytesPerSecond: Double, matmatFlopsPerSecond: Double) {
        var rows = node.kernels.filter { $0.dtype == dtype }
        if rows.isEmpty { rows = node.kernels.filter { $0.dtype == "f32" } }
        if rows.isEmpty { rows = node.kernels }
        let t = Double(threads)
        let flops = rows.map { (Double($0.threads), tokens <= 16 ? $0.smallBatchFlopsPerSecond ?? $0.matmatFlopsPerSecond : $0.matmatFlopsPerSecond) }
        return (interpolate(rows.map { (Double($0.threads), $0.matvecBytesPerSecond) }, at: t), interpolate(flops, at: t))
    }

    /// Each rank's read bandwidth when `ranks` ranks of `threads` threads stream on one node.
    public func perRankBandwidth(ranks: Int, threads: Int) -> Double {
        if threads == 1, ranks > 1, let processes = node.processReadBandwidth, let most = processes.max(by: { $0.threads < $1.threads }) {
            // Beyond the most processes measured the node's total stays, shared by more ranks.
            if ranks > most.threads { return most.bytesPerSecond * Double(most.threads) / Double(ranks) }
            return interpolate(processes.map { (Double($0.threads), $0.bytesPerSecond) }, at: Double(ranks))
        }
        return readBandwidth(threads: min(threads * ranks, node.cores)) / Double(ranks)
    }

    /// The direct path's weight-bytes rate for `tokens` tokens of `dtype` at `threads` over rows
    /// of `columns` values, when measured: interpolated over token counts, then over row lengths
    /// (on a log scale, flat beyond the measured ones), then over thread counts.
    public func directRate(_ dtype: String, threads: Int, tokens: Double, columns: Int) -> Double? {
        let rows = node.kernels.filter { $0.dtype == dtype && $0.direct != nil }
        guard !rows.isEmpty else { return nil }
        let perThreads = rows.map { k -> (Double, Double) in
            let byColumns = Dictionary(grouping: k.direct!) { $0.columns ?? Self.kernelColumns }
            let perColumns = byColumns.map { (log2(Double($0.key)), interpolate($0.value.map { (Double($0.tokens), $0.bytesPerSecond) }, at: tokens)) }
            return (Double(k.threads), interpolate(perColumns, at: log2(Double(max(columns, 1)))))
        }
        return interpolate(perThreads, at: Double(threads))
    }

    /// α and bytes/s of `kind` for a group of `ranks` (the closest measured group size).
    public func collective(_ kind: String, ranks: Int) -> (alpha: Double, bytesPerSecond: Double) {
        let rows = network.collectives.filter { $0.kind == kind }
        guard let best = (rows.isEmpty ? network.collectives : rows).min(by: { abs($0.ranks - ranks) < abs($1.ranks - ranks) }) else {
            return (0, .infinity)
        }
        return (best.alphaSeconds, best.bytesPerSecond)
    }
}

/// A cluster profile that cannot be used: one line.
public struct ProfileError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Piecewise-linear interpolation through `points` (x ascending after sorting), flat outside.
func interpolate(_ points: [(Double, Double)], at x: Double) -> Double {
    let sorted = points.sorted { $0.0 < $1.0 }
    guard let first = sorted.first, let last = sorted.last else { return 0 }
    if x <= first.0 { return first.1 }
    if x >= last.0 { return last.1 }
    for (a, b) in zip(sorted, sorted.dropFirst()) where x <= b.0 {
        return a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0)
    }
    return last.1
}
