import Foundation
import GrokModel
import GrokCheckpoint
import GrokComm
import GrokTensor

/// `grok calibrate`: measures this machine and the links between the ranks of an MPI job and
/// returns a `ClusterProfile` (schema and methods: `Launch/cluster-profile.md`).
///
/// Node figures come from rank 0's node alone: rank 0 measures while the other ranks on its host
/// wait without using a core (they poll a flag file; an MPI barrier would spin on a core the
/// measurement needs). Network figures come from collectives over the whole world communicator,
/// every rank taking part; results are valid on rank 0.
public enum Calibration {
    /// Dtypes whose kernels are measured, by their names in the profile.
    public static let dtypes: [DType] = [.f32, .f16, .bf16, .q8_0, .q4_0]
    /// The collectives the runtime uses, by their names in the profile.
    public static let collectiveKinds = ["pointToPoint", "allreduce", "allgather", "alltoallv", "broadcast"]

    public struct Options: Sendable {
        /// Highest thread count measured (1, 2, 4, … up to it, and it).
        public var maxThreads: Int
        /// Buffer read by `MemoryBandwidth.measureRead`: far beyond the last-level cache.
        public var readBytes = 512 << 20
        /// Bytes of the matrix streamed by the matrix-vector measurement, per dtype (rows of `columns`).
        public var matvecBytes = 256 << 20
        /// Rows of the matrix-matrix measurement (`columns` wide, `matmatTokens` tokens).
        public var matmatRows = 2048
        public var matmatTokens = 64
        /// Row length of the kernel matrices (a multiple of 32).
        public var columns = ClusterProfile.kernelColumns
        /// Row lengths the direct path (1–16 tokens) is also measured at: at a few tokens, short
        /// rows are slower per byte (10–35% at 1024 against 4096 on this machine's q8_0).
        public var directColumns = [1024]
        /// Timed repetitions of each kernel measurement (after one warm-up); the median is kept.
        public var kernelRepetitions = 5
        /// The probe model whose decode steps measure the forward pass's costs beyond its matrix
        /// products: a Grok-1 of this width and layer count with 2 experts of `probeFFN` (top-2,
        /// so every step reads every matrix), f32. The default is ~0.4 GB, far beyond any
        /// last-level cache.
        public var probeWidth = 768
        public var probeLayers = 6
        public var probeFFN = 3072
        /// Largest message (bytes one rank contributes or sends); sizes are 8 B and 16 B, 64 B, … (powers of 4) up to it.
        public var maxMessageBytes = 16 << 20
        /// Timed repetitions per message size: small (≤ 64 KiB), medium (≤ 1 MiB), large; after `warmup` untimed ones.
        public var messageRepetitions = (small: 40, medium: 15, large: 6)
        public var warmup = 2

        public init(maxThreads: Int = ProcessInfo.processInfo.activeProcessorCount) {
            self.maxThreads = max(1, maxThreads)
        }

        /// Small sizes and few repetitions: a few seconds in all, for tests (figures are rough:
        /// the buffers fit in a large cache).
        public static func quick(maxThreads: Int = ProcessInfo.processInfo.activeProcessorCount) -> Options {
            var o = Options(maxThreads: maxThreads)
            o.readBytes = 64 << 20
            o.matvecBytes = 16 << 20
            o.matmatRows = 256
            o.columns = 2048
            o.directColumns = [512]
            o.kernelRepetitions = 3
            o.probeWidth = 256
            o.probeLayers = 2
            o.probeFFN = 512
            o.maxMessageBytes = 1 << 20
            o.messageRepetitions = (small: 10, medium: 5, large: 3)
            o.warmup = 1
            return o
        }

        /// 1, 2, 4, … below `maxThreads`, then `maxThreads`.
        public var threadCounts: [Int] {
            var counts: [Int] = []
            var t = 1
            while t < maxThreads { counts.append(t); t *= 2 }
            counts.append(maxThreads)
            return counts
        }

        /// 8 B, then 16 B, 64 B, 256 B, … (powers of 4) up to `maxMessageBytes`, which is always included.
        public var messageSizes: [Int] {
            var sizes = [8]
            var b = 16
            while b < maxMessageBytes { sizes.append(b); b *= 4 }
            if maxMessageBytes / 4 * 4 > sizes.last! { sizes.append(maxMessageBytes / 4 * 4) }
            return sizes
        }
    }

    // MARK: - Node

    /// Read bandwidth with each of `options.threadCounts` threads (`MemoryBandwidth.measureRead`:
    /// the median of 7 passes over `options.readBytes`: this is what runs see, and it moves less
    /// than the fastest pass on a shared machine).
    public static func measureReadBandwidth(_ options: Options, pools: [Int: ThreadPool], log: (String) -> Void = { _ in }) -> [ClusterProfile.ThreadRate] {
        options.threadCounts.map { t in
            log("read bandwidth, \(t) thread\(t == 1 ? "" : "s") …\n")
            return ClusterProfile.ThreadRate(threads: t, bytesPerSecond: MemoryBandwidth.measureRead(bytes: options.readBytes, threads: t, pool: pools[t],
                                                                                                    statistic: .median, passes: 7))
        }
    }

    /// Per dtype and thread count: matrix-vector weight bytes/s (n = 1 over `matvecBytes` of
    /// weights) and matrix-matrix FLOP/s (n = `matmatTokens` over `matmatRows` rows), with
    /// `Kernels.matmul`; median of `kernelRepetitions` after a warm-up.
    public static func measureKernels(_ options: Options, pools: [Int: ThreadPool], log: (String) -> Void = { _ in }) -> [ClusterProfile.KernelRate] {
        let cols = options.columns
        var random = SplitMix64(seed: 0x9E37_79B9)
        func value() -> Float { Float(random.next() >> 40) / Float(1 << 23) - 1 }   // deterministic, in [-1, 1)
        let seedRows = 64
        let seedValues = (0..<seedRows * cols).map { _ in value() }
        let x = (0..<options.matmatTokens * cols).map { _ in value() }
        var rates: [ClusterProfile.KernelRate] = []
        for dtype in dtypes {
            log("kernels, \(dtype.name.lowercased()) …\n")
            // 64 random rows, quantized once and repeated to fill the matrix.
            let seed = seedValues.withUnsafeBufferPointer { Quantizer.quantize($0, to: dtype) }
            let rowBytes = dtype.rowBytes(cols)
            let rows = max(seedRows, options.matvecBytes / rowBytes / seedRows * seedRows)
            let storage = UnsafeMutableRawPointer.allocate(byteCount: rows * rowBytes, alignment: 4096)
            defer { storage.deallocate() }
            seed.withUnsafeBytes { bytes in
                for r in stride(from: 0, to: rows, by: seedRows) {
                    (storage + r * rowBytes).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                }
            }
            let w = WeightMatrix(base: storage, dtype: dtype, rows: rows, cols: cols)
            let batchRows = min(rows, max(16, options.matmatRows))
            let batch = w.rows(0..<batchRows)
            let shortest = ([cols] + options.directColumns).min()!
            var y = [Float](repeating: 0, count: max(16 * rows * cols / shortest, options.matmatTokens * batchRows))
            for t in options.threadCounts {
                let pool = pools[t]!
                /// Median seconds of `m` times `n` tokens of x.
                func time(_ m: WeightMatrix, tokens n: Int) -> Double {
                    x.withUnsafeBufferPointer { xp in
                        y.withUnsafeMutableBufferPointer { yp in
                            medianSeconds(options.kernelRepetitions) { Kernels.matmul(m, x: xp.baseAddress!, n: n, y: yp.baseAddress!, pool: pool) }
                        }
                    }
                }
                let matvec = time(w, tokens: 1)
                let matmat = time(batch, tokens: options.matmatTokens)
                // The direct path per token count and row length (weight bytes ÷ time), for the
                // planner to interpolate; 8 tokens at `columns` also gives the small-batch FLOP rate.
                var direct: [ClusterProfile.TokenRate] = [], small = 0.0
                for c in [cols] + options.directColumns where c % 32 == 0 {
                    let m = WeightMatrix(base: storage, dtype: dtype, rows: rows * cols / c, cols: c)
                    for n in [1, 2, 4, 8, 16] {
                        let seconds = n == 1 && c == cols ? matvec : time(m, tokens: n)
                        if n == 8 && c == cols { small = seconds }
                        direct.append(ClusterProfile.TokenRate(tokens: n, bytesPerSecond: Double(m.byteCount) / seconds, columns: c))
                    }
                }
                let flops = 2 * Double(batchRows) * Double(cols) * Double(options.matmatTokens)
                rates.append(ClusterProfile.KernelRate(dtype: dtype.name.lowercased(), threads: t,
                                                       matvecBytesPerSecond: Double(w.byteCount) / matvec,
                                                       matmatFlopsPerSecond: flops / matmat,
                                                       smallBatchFlopsPerSecond: 2 * Double(rows) * Double(cols) * 8 / small,
                                                       direct: direct))
            }
        }
        return rates
    }

    /// The node section: memory, cores, read bandwidth and kernel rates of this process's node.
    public static func measureNode(_ options: Options, log: (String) -> Void = { _ in }) -> ClusterProfile.Node {
        BLAS.setThreads(1)  // our pool parallelises; mpirun's binding would change OpenBLAS's default
        var pools: [Int: ThreadPool] = [:]
        for t in options.threadCounts { pools[t] = ThreadPool(threads: t) }
        let bandwidth = measureReadBandwidth(options, pools: pools, log: log)
        let kernels = measureKernels(options, pools: pools, log: log)
        let gelu = measureActivation()
        var overhead = (layer: 0.0, tokenLayer: 0.0)
        do { overhead = try measureOverhead(options, geluTanh: gelu.tanh, log: log) } catch {
            log("forward-pass overhead not measured (recorded as 0): \(error)\n")
        }
        var node = ClusterProfile.Node(memoryBytes: Int(clamping: ProcessInfo.processInfo.physicalMemory),
                                       cores: ProcessInfo.processInfo.activeProcessorCount,
                                       readBandwidth: bandwidth, kernels: kernels,
                                       layerOverheadSeconds: overhead.layer, tokenLayerOverheadSeconds: overhead.tokenLayer)
        (node.geluTanhSecondsPerElement, node.geluErfSecondsPerElement) = gelu
        return node
    }

    /// The FFN activation g = gelu(g)·u as the forward pass computes it, per element (1M elements).
    static func measureActivation() -> (tanh: Double, erf: Double) {
        var g = (0..<(1 << 20)).map { Float($0 % 997) / 300 - 1.5 }
        let u = g
        func time(_ gelu: (Float) -> Float) -> Double {
            medianSeconds(5) { for i in g.indices { g[i] = gelu(g[i]) * u[i] } } / Double(g.count)
        }
        return (time(Ops.geluTanh), time(Ops.geluErf))
    }

    /// The forward pass's costs beyond its matrix products (norms, RoPE, attention, routing,
    /// buffers, hand-offs), per layer and per layer-token: decode steps of a synthesized probe
    /// model (`options.probe…`, written to a temporary file and mapped as the runtime maps a
    /// GGUF) at batch 1 and 8, minus what its weights take through the kernels at that token
    /// count and minus the FFN activation (`geluTanh` per element, priced on its own), over the
    /// layers. The kernels are timed on a matrix beside the probe in the same rounds, so that the
    /// machine's drift between measurements does not land in the difference; median of 3 rounds.
    static func measureOverhead(_ options: Options, geluTanh: Double, log: (String) -> Void) throws -> (layer: Double, tokenLayer: Double) {
        log("forward-pass overhead (probe model) …\n")
        var c = Grok1.small
        c.modelWidth = options.probeWidth; c.layerCount = options.probeLayers; c.expertFFNWidth = options.probeFFN
        c.queryHeads = max(1, options.probeWidth / 128); c.headDim = options.probeWidth / c.queryHeads; c.kvHeads = 1
        c.expertCount = 2; c.expertsPerToken = 2; c.contextLength = 256
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("grok-calibrate-probe-\(getpid()).gguf")
        try Synthesizer.write(c, dtype: .f32, seed: 7, name: "calibration probe", to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pool = ThreadPool(threads: 1)
        let model = try GrokModel(source: GGUFFile(path: path), pool: pool)
        let weights = Double(model.activeWeightBytesPerToken)
        let layers = Double(c.layerCount)
        let gelu = geluTanh * Double(c.expertsPerToken * c.expertFFNWidth)    // per layer-token (its GELU is Grok-1's tanh)

        // A matrix as large as the probe's weights, for the kernels' rate at 1 and 8 tokens.
        let cols = c.modelWidth, rows = max(64, Int(weights) / (cols * 4))
        let storage = UnsafeMutablePointer<Float>.allocate(capacity: rows * cols)
        defer { storage.deallocate() }
        for i in 0..<(rows * cols) { storage[i] = Float(i % 1009) / 1009 - 0.5 }
        let matrix = WeightMatrix(base: UnsafeRawPointer(storage), dtype: .f32, rows: rows, cols: cols)
        let x = [Float](repeating: 0.01, count: 8 * cols)
        var y = [Float](repeating: 0, count: 8 * rows)
        func kernelSeconds(tokens n: Int) -> Double {
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    medianSeconds(options.kernelRepetitions) { Kernels.matmul(matrix, x: xp.baseAddress!, n: n, y: yp.baseAddress!, pool: pool) }
                }
            } * weights / Double(matrix.byteCount)
        }
        let cache = model.makeCache(slots: 8, capacity: c.contextLength)
        var position = 0
        func stepSeconds(batch: Int) throws -> Double {
            var times: [Double] = []
            for _ in 0..<12 {
                if position >= c.contextLength { position = 0 }   // positions are rewritten in place
                let b = ForwardBatch(tokens: (0..<batch).map { Int32(($0 * 31 + position * 7) % c.vocabularySize) },
                                     slots: Array(0..<batch), positions: Array(repeating: position, count: batch))
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try model.forward(b, cache: cache, logitRows: Array(0..<batch))
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                position += 1
            }
            return median(Array(times.dropFirst(2)))
        }
        // Per layer, the excess e(n) over the kernels and the activation at n tokens; fitted as
        // a + b·n through n = 1 and 8. A negative a (the per-token part grows faster than
        // linearly from 1 token) leaves a = 0 and b = e(8)/8.
        var one: [Double] = [], eight: [Double] = []
        for _ in 0..<3 {
            one.append((try stepSeconds(batch: 1) - kernelSeconds(tokens: 1) - layers * gelu) / layers)
            eight.append((try stepSeconds(batch: 8) - kernelSeconds(tokens: 8) - 8 * layers * gelu) / layers)
        }
        let e1 = max(0, median(one)), e8 = max(0, median(eight))
        let b = max(0, (e8 - e1) / 7), a = e1 - b
        return a >= 0 ? (a, b) : (0, e8 / 8)
    }

    // MARK: - Network

    /// One timing per message size: `bytes` as the profile counts them (what one rank contributes
    /// or sends) and the median over repetitions of the slowest rank's time.
    public struct Point: Sendable, Equatable {
        public var bytes: Int
        public var seconds: Double
        public init(bytes: Int, seconds: Double) {
            self.bytes = bytes
            self.seconds = seconds
        }
    }

    /// Measures every collective of `collectiveKinds` over `comm` (a collective call: every rank
    /// must make it) and fits α and β to each. The result is valid on every rank.
    public static func measureCollectives(_ comm: Communicator, _ options: Options,
                                          log: (String) -> Void = { _ in }) throws -> [(ClusterProfile.Collective, [Point])] {
        guard comm.size >= 2 else {
            throw CalibrationError("calibrate: the network part needs at least 2 ranks (run under mpirun -np 2 or more), or give --node-only")
        }
        let sizes = options.messageSizes
        let largest = sizes.max()!
        let p = comm.size
        // Buffers large enough for every size (allgather receives p · largest, alltoallv sends
        // largest / (p − 1) to each of p ranks).
        let capacity = p * (largest / 4 + 1)
        let send = UnsafeMutablePointer<Float>.allocate(capacity: capacity)
        let receive = UnsafeMutablePointer<Float>.allocate(capacity: capacity)
        defer { send.deallocate(); receive.deallocate() }
        send.initialize(repeating: 0, count: capacity)
        receive.initialize(repeating: 0, count: capacity)

        var results: [(ClusterProfile.Collective, [Point])] = []
        for kind in collectiveKinds {
            log("collective \(kind) …\n")
            var points: [Point] = []
            for size in sizes {
                let reps = size <= 64 << 10 ? options.messageRepetitions.small
                    : size <= 1 << 20 ? options.messageRepetitions.medium : options.messageRepetitions.large
                let floats = max(1, size / 4)
                let point: Point
                switch kind {
                case "pointToPoint":
                    // Ping-pong between ranks 0 and 1; the others only take part in the barriers.
                    let t = try time(comm, reps: reps, warmup: options.warmup, rank0Only: true) {
                        if comm.rank == 0 {
                            try comm.send(send, count: size, to: 1, tag: 71)
                            try comm.receive(receive, count: size, from: 1, tag: 72)
                        } else if comm.rank == 1 {
                            try comm.receive(receive, count: size, from: 0, tag: 71)
                            try comm.send(send, count: size, to: 0, tag: 72)
                        }
                    }
                    point = Point(bytes: size, seconds: t / 2)
                case "allreduce":
                    // Zeros stay zeros: repeated in-place sums cannot overflow.
                    point = Point(bytes: 4 * floats, seconds: try time(comm, reps: reps, warmup: options.warmup) {
                        try comm.allreduceSum(send, count: floats)
                    })
                case "allgather":
                    point = Point(bytes: 4 * floats, seconds: try time(comm, reps: reps, warmup: options.warmup) {
                        try comm.allgather(send, count: floats, into: receive)
                    })
                case "alltoallv":
                    // Equal counts to every rank (this one too, as the runtime's calls do); bytes = what one
                    // rank sends to the others (the block it keeps is not sent): `size` spread over p − 1.
                    let each = max(1, floats / (p - 1))
                    let counts = [Int](repeating: each, count: p), offsets = (0..<p).map { $0 * each }
                    point = Point(bytes: 4 * each * (p - 1), seconds: try time(comm, reps: reps, warmup: options.warmup) {
                        try comm.alltoallv(send, sendCounts: counts, sendOffsets: offsets, into: receive,
                                           receiveCounts: counts, receiveOffsets: offsets)
                    })
                case "broadcast":
                    point = Point(bytes: size, seconds: try time(comm, reps: reps, warmup: options.warmup) {
                        try comm.broadcast(send, count: size, root: 0)
                    })
                default:
                    fatalError("unknown collective \(kind)")
                }
                points.append(point)
            }
            let fitted = fit(points.map { (Double($0.bytes), $0.seconds) })
            results.append((ClusterProfile.Collective(kind: kind, ranks: kind == "pointToPoint" ? 2 : p,
                                                      alphaSeconds: fitted.alphaSeconds, bytesPerSecond: fitted.bytesPerSecond), points))
        }
        return results
    }

    /// `body` timed on every rank between a barrier and its return, `reps` times after `warmup`
    /// untimed calls; per repetition the slowest rank's time (or rank 0's with `rank0Only`), and
    /// the median of those. Collective: every rank gets the same value.
    static func time(_ comm: Communicator, reps: Int, warmup: Int, rank0Only: Bool = false, _ body: () throws -> Void) throws -> Double {
        for _ in 0..<warmup {
            try comm.barrier()
            try body()
        }
        var mine: [Double] = []
        for _ in 0..<max(1, reps) {
            try comm.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            mine.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let bytes = mine.withUnsafeBytes { Array($0) }
        let all = try comm.allgatherBytes(bytes).map { part in
            part.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        }
        let perRep = (0..<mine.count).map { i in rank0Only ? all[0][i] : all.map { $0[i] }.max()! }
        return median(perRep)
    }

    /// Least-squares fit of `t = α + bytes / β` to (bytes, seconds) points, each weighted by
    /// 1 / seconds² (relative errors: small messages, which fix α, count as much as large ones,
    /// which fix β). α is clamped at 0 (then the slope is refitted through the origin); a slope
    /// that is not positive (no size dependence measurable) gives `maxBytesPerSecond`.
    /// Points lying exactly on such a line are recovered exactly.
    public static func fit(_ points: [(bytes: Double, seconds: Double)]) -> (alphaSeconds: Double, bytesPerSecond: Double) {
        let usable = points.filter { $0.seconds > 0 && $0.seconds.isFinite && $0.bytes >= 0 }
        guard !usable.isEmpty else { return (0, maxBytesPerSecond) }
        var sw = 0.0, sb = 0.0, sbb = 0.0, st = 0.0, sbt = 0.0
        for (b, t) in usable {
            let w = 1 / (t * t)
            sw += w; sb += w * b; sbb += w * b * b; st += w * t; sbt += w * b * t
        }
        let det = sw * sbb - sb * sb
        var alpha: Double, slope: Double
        if usable.count >= 2 && det > 1e-12 * sw * sbb {
            slope = (sw * sbt - sb * st) / det
            alpha = (st - slope * sb) / sw
        } else {
            // One size only: no slope to fit; all of the time is latency.
            alpha = st / sw
            slope = 0
        }
        if alpha < 0 {
            alpha = 0
            slope = sbb > 0 ? sbt / sbb : 0
        }
        let bandwidth = slope > 0 ? min(maxBytesPerSecond, 1 / slope) : maxBytesPerSecond
        return (alpha, bandwidth)
    }

    /// The bandwidth recorded when none is measurable (JSON has no infinity): 1 PB/s.
    public static let maxBytesPerSecond = 1e15

    /// Distinct host names over the ranks of `comm` (collective), in rank order of first appearance,
    /// and every rank's host.
    public static func hosts(_ comm: Communicator) throws -> (distinct: [String], perRank: [String]) {
        let names = try comm.allgatherBytes(Array(hostName().utf8)).map { String(decoding: $0, as: UTF8.self) }
        var distinct: [String] = []
        for n in names where !distinct.contains(n) { distinct.append(n) }
        return (distinct, names)
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return String(cString: buffer)
    }

    // MARK: - The whole calibration

    /// Collective over `comm`: rank 0 measures its node (the other ranks on its host wait idle),
    /// then every rank takes part in the network measurements (unless `nodeOnly`: the default
    /// profile's network is kept). The profile is complete on rank 0 only.
    public static func calibrate(_ comm: Communicator, _ options: Options, nodeOnly: Bool,
                                 log: (String) -> Void = { _ in }) throws -> (profile: ClusterProfile, points: [String: [Point]]) {
        if !nodeOnly && comm.size < 2 {
            throw CalibrationError("calibrate: the network part needs at least 2 ranks (run under mpirun -np 2 or more), or give --node-only for the node section alone")
        }
        // Rank 0 checks it may use the cores it is to measure with; every rank learns the verdict.
        var verdict: [UInt8] = []
        if comm.rank == 0, let allowed = CoordinatorRun.allowedCores(), allowed < options.maxThreads {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let why = allowed < cores ? " of the node's \(cores) (mpirun binds up to 2 ranks to one core each: add --bind-to none, or give --threads-max \(allowed))"
                : " (give --threads-max \(allowed) or fewer)"
            verdict = Array("calibrate: measuring with up to \(options.maxThreads) threads but this process may only run on \(allowed) core\(allowed == 1 ? "" : "s")\(why)".utf8)
        }
        try comm.broadcast(&verdict, root: 0)
        if !verdict.isEmpty { throw CalibrationError(String(decoding: verdict, as: UTF8.self)) }

        let (hosts, perRank) = try self.hosts(comm)
        // A job-unique flag file tells rank 0's neighbours that the node measurement is over.
        var token = comm.rank == 0 ? Array(UUID().uuidString.utf8) : []
        try comm.broadcast(&token, root: 0)
        let flag = (NSTemporaryDirectory() as NSString).appendingPathComponent("grok-calibrate-\(String(decoding: token, as: UTF8.self)).done")
        var node: ClusterProfile.Node?
        if comm.rank == 0 {
            node = measureNode(options, log: log)
            _ = FileManager.default.createFile(atPath: flag, contents: Data())
        } else if perRank[comm.rank] == perRank[0] {
            // Bounded, so that a flag that could not be written costs a wait, not a hang.
            let deadline = Date().addingTimeInterval(900)
            while !FileManager.default.fileExists(atPath: flag) && Date() < deadline { usleep(20_000) }
        }
        try comm.barrier()
        if comm.rank == 0 { try? FileManager.default.removeItem(atPath: flag) }

        // Ranks sharing rank 0's host stream at once, one thread each: their share of its bus.
        let local = perRank.filter { $0 == perRank[0] }.count
        var streamed: [Float] = [0]
        // Every process of the host writes its buffer, then all start reading together (a barrier
        // of the host's ranks), so that the median pass is one where all of them stream.
        let host = local > 1 ? try comm.split(color: perRank[comm.rank] == perRank[0] ? 0 : nil, key: comm.rank) : nil
        if let host {
            if comm.rank == 0 { log("read bandwidth, \(local) processes at once …\n") }
            var failure: Error?
            streamed[0] = Float(MemoryBandwidth.measureRead(bytes: options.readBytes, threads: 1, pool: nil, statistic: .median, passes: 7) {
                do { try host.barrier() } catch { failure = error }
            } / 1e9)
            if let failure { throw failure }
        }
        try comm.allreduceSum(&streamed, count: 1)
        if comm.rank == 0, local > 1, let solo = node?.readBandwidth.first(where: { $0.threads == 1 }) {
            node?.processReadBandwidth = [solo, ClusterProfile.ThreadRate(threads: local, bytesPerSecond: Double(streamed[0]) * 1e9 / Double(local))]
        }

        var network = ClusterProfile.default.network
        var points: [String: [Point]] = [:]
        if !nodeOnly {
            let measured = try measureCollectives(comm, options, log: log)
            network = ClusterProfile.Network(collectives: measured.map(\.0))
            for (c, p) in measured { points[c.kind] = p }
        }

        let date = ISO8601DateFormatter().string(from: Date())
        let ranksPerHost = (comm.size + hosts.count - 1) / hosts.count
        var description = "measured by grok calibrate\(nodeOnly ? " --node-only" : "") on \(date): node = \(hosts[0])"
            + " (\(Kernels.isa) kernels, read buffer \(options.readBytes >> 20) MiB, matrix-vector over \(options.matvecBytes >> 20) MiB)"
        if nodeOnly {
            description += "; network: the default profile's (25 GbE, 20 µs; not measured)"
        } else {
            description += "; network: \(comm.size) ranks on \(hosts.count) host\(hosts.count == 1 ? "" : "s") (\(hosts.joined(separator: ", ")))"
            if hosts.count == 1 {
                description += ", all on one host: the collectives ran over shared memory, not a network — right for validating"
                    + " the planner against runs on this machine (which use the same transport), not for a cluster"
            } else if ranksPerHost > 1 {
                description += ", up to \(ranksPerHost) ranks per host: the collectives mix shared memory and the network"
            }
        }
        let profile = ClusterProfile(description: description,
                                     nodes: nodeOnly && comm.size == 1 ? nil : hosts.count,
                                     node: node ?? ClusterProfile.default.node, network: network)
        return (profile, points)
    }

    /// The figures as a readable table.
    public static func summary(_ profile: ClusterProfile, points: [String: [Point]] = [:]) -> String {
        var s = "node: \(profile.node.cores) cores, \(String(format: "%.1f", Double(profile.node.memoryBytes) / Double(1 << 30))) GiB"
        if let nodes = profile.nodes { s += "; nodes: \(nodes)" }
        s += "\n\nread bandwidth\n  threads      GB/s\n"
        for r in profile.node.readBandwidth {
            s += String(format: "  %7d  %8.2f\n", r.threads, r.bytesPerSecond / 1e9)
        }
        s += "\nkernels (matrix-vector: weight bytes/s; matrix-matrix: FLOP/s)\n  dtype  threads  matvec GB/s  matmat GFLOP/s\n"
        for k in profile.node.kernels {
            s += "  " + pad(k.dtype, 5) + String(format: "  %7d  %11.2f  %14.1f\n", k.threads,
                        k.matvecBytesPerSecond / 1e9, k.matmatFlopsPerSecond / 1e9)
        }
        s += "\nnetwork (t = α + bytes / β)\(points.isEmpty ? ", not measured" : "")\n  collective    ranks    α (µs)    β (GB/s)"
        s += points.isEmpty ? "\n" : "   fit error (max)   measured: bytes → µs\n"
        for c in profile.network.collectives {
            s += "  " + pad(c.kind, 12) + String(format: "  %5d  %8.2f  %10.3f", c.ranks, c.alphaSeconds * 1e6, c.bytesPerSecond / 1e9)
            if let p = points[c.kind], !p.isEmpty {
                let worst = p.map { abs(c.alphaSeconds + Double($0.bytes) / c.bytesPerSecond - $0.seconds) / $0.seconds }.max()!
                s += String(format: "   %15.0f%%   ", 100 * worst)
                s += p.map { "\(byteLabel($0.bytes))→\(String(format: "%.1f", $0.seconds * 1e6))" }.joined(separator: " ")
            }
            s += "\n"
        }
        return s
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    static func byteLabel(_ bytes: Int) -> String {
        bytes >= 1 << 20 && bytes % (1 << 20) == 0 ? "\(bytes >> 20)M"
            : bytes >= 1 << 10 && bytes % (1 << 10) == 0 ? "\(bytes >> 10)K" : "\(bytes)"
    }

    /// The profile as `grok calibrate` writes it: pretty-printed JSON with sorted keys.
    public static func json(_ profile: ClusterProfile) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(profile)
        data.append(0x0A)
        return data
    }

    // MARK: - Helpers

    /// Median seconds of `reps` timed calls of `body` after one untimed call.
    static func medianSeconds(_ reps: Int, _ body: () -> Void) -> Double {
        body()
        var times: [Double] = []
        for _ in 0..<max(1, reps) {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return median(times)
    }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// A calibration that cannot run: one line.
public struct CalibrationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
