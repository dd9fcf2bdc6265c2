import Foundation
import GrokCheckpoint
import GrokModel
import GrokTensor

/// `grok synth --router-skew Z --router-affinity A`: routers biased so that expert popularity
/// roughly follows Zipf(Z) per layer and tokens that chose expert i in layer l tend to choose
/// π_l(i) in layer l + 1 — for expert-placement experiments (random routers route almost uniformly).
///
/// Construction (a router logit is w_e·x, x the normed residual stream; there is no router bias):
/// - a common direction ĉ: every token embedding gets κ·ĉ (scaled residual units), so every
///   token's x has a positive component along ĉ, diluted layer by layer as the residual grows
///   (≈ κ√d / √(1 + κ² + 2l) at layer l, each layer adding two RMS-1 contributions);
/// - popularity: expert e of layer l is ranked r = rank_l(e) (a seeded shuffle per layer) and its
///   router row gets (g · b_r / μ_l)·ĉ with b_r = −Z·ln(r + 1) (centred), μ_l the estimate above
///   and g a gain matching the logit noise (Gumbel scale ≈ 0.78 σ), so top-1 choices ≈ Zipf(Z);
/// - affinity: each row also gets α·u_{l,e}, unit directions orthogonal to ĉ, with
///   u_{l+1,π_l(i)} = normalise(A·u_{l,i} + (1 − A)·fresh) (π_l a seeded permutation). The
///   residual stream changes slowly from layer to layer, so a token with a large u_{l,i}·x (that
///   chose i) tends to have a large u_{l+1,π_l(i)}·x too.
///
/// The base random router (same stream as the plain model) is kept. Written to the GGUF as
/// `grokcluster.router.*` metadata: the options, each layer's experts hottest first and π_l.
/// Then `calibrate` runs the written model on a seeded corpus and moves the router rows along ĉ
/// until each layer's measured shares approach the Zipf targets (6 damped steps): on other text
/// the hottest expert's share lands within about 10% of Zipf's and the intended order holds for
/// the top ranks; the tail is noisier. Measure the trace (`grok-coordinator --trace-routing`).
public final class SkewedRouting {
    public struct Options: Sendable, Equatable {
        /// Zipf exponent of expert popularity (0 = no popularity bias).
        public var skew: Double
        /// Inter-layer affinity in [0, 1).
        public var affinity: Double
        public init(skew: Double = 0, affinity: Double = 0) {
            self.skew = skew
            self.affinity = affinity
        }

        public func validate() throws {
            guard skew.isFinite && skew >= 0 else { throw GenerationError("--router-skew: expected a number ≥ 0, got \(skew)") }
            guard affinity.isFinite && affinity >= 0 && affinity < 1 else {
                throw GenerationError("--router-affinity: expected a number in [0, 1), got \(affinity)")
            }
        }
    }

    /// Weight of the common direction in the embedding (scaled residual units, relative to RMS 1).
    static let commonWeight = 0.5
    /// Scale of the per-expert direction in a router row (the base row contributes logit std ≈ 1).
    static let directionWeight = 2.0
    /// Residual growth per layer (two RMS-1 contributions) and logit-noise gain (Gumbel scale / σ).
    static let dilution = 2.0
    static let gainFactor = 0.78

    public let options: Options
    let config: ModelConfig
    let seed: UInt64
    /// ĉ, unit, `[d]`.
    let common: [Double]
    /// Per layer, experts hottest first.
    public let popularity: [[Int]]
    /// Per layer l < L − 1, π_l(i): the expert of layer l + 1 that expert i leads to.
    public let affinityMap: [[Int]]
    /// u_{l,e}, unit and orthogonal to ĉ: `[L][E][d]`.
    let directions: [[[Double]]]

    init(_ options: Options, config: ModelConfig, seed: UInt64) {
        self.options = options
        self.config = config
        self.seed = seed
        let d = config.modelWidth, E = config.expertCount, L = config.layerCount
        func vector(_ stream: String) -> [Double] {
            Synthesizer.gaussian(count: d, std: 1, seed: seed, stream: stream).map(Double.init)
        }
        func normalise(_ v: [Double]) -> [Double] {
            let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return n > 0 ? v.map { $0 / n } : v
        }
        /// A seeded permutation of 0..<E: the order of E Gaussian draws.
        func permutation(_ stream: String) -> [Int] {
            let keys = Synthesizer.gaussian(count: E, std: 1, seed: seed, stream: stream)
            return (0..<E).sorted { (keys[$0], $0) < (keys[$1], $1) }
        }
        let c = normalise(vector("grokcluster.router.common"))
        common = c
        func orthogonal(_ v: [Double]) -> [Double] {
            let dot = zip(v, c).reduce(0) { $0 + $1.0 * $1.1 }
            return normalise(zip(v, c).map { $0 - dot * $1 })
        }
        popularity = (0..<L).map { permutation("grokcluster.router.popularity.\($0)") }
        affinityMap = (0..<max(L - 1, 0)).map { permutation("grokcluster.router.affinity.\($0)") }
        var u: [[[Double]]] = []
        for l in 0..<L {
            var layer = [[Double]](repeating: [], count: E)
            for e in 0..<E {
                let fresh = orthogonal(vector("grokcluster.router.direction.\(l).\(e)"))
                layer[e] = fresh
            }
            if l > 0 {
                let A = options.affinity
                for i in 0..<E {
                    let j = affinityMap[l - 1][i]
                    layer[j] = orthogonal(zip(u[l - 1][i], layer[j]).map { A * $0 + (1 - A) * $1 })
                }
            }
            u.append(layer)
        }
        directions = u
    }

    func addMetadata(to w: inout GGUFWriter) {
        w.set("grokcluster.router.skew", .float32(Float(options.skew)))
        w.set("grokcluster.router.affinity", .float32(Float(options.affinity)))
        w.set("grokcluster.router.popularity", .array(popularity.flatMap { $0 }.map { .int32(Int32($0)) }))
        w.set("grokcluster.router.affinity_map", .array(affinityMap.flatMap { $0 }.map { .int32(Int32($0)) }))
    }

    /// The estimated component along ĉ of a token's router input at layer `l`: κ√d diluted by
    /// the residual contributions of the layers before it (see the construction above).
    func commonProjection(layer l: Int) -> Double {
        Self.commonWeight * Double(config.modelWidth).squareRoot()
            / (1 + Self.commonWeight * Self.commonWeight + Self.dilution * Double(l)).squareRoot()
    }

    /// Adds the construction's components to a tensor's values as drawn (others unchanged).
    func adjust(_ tensor: String, _ values: inout [Float]) {
        let d = config.modelWidth, E = config.expertCount
        if tensor == "token_embd.weight" {
            // Rows of d per token; the file's embedding is multiplied by embeddingScale at run time.
            let offset = common.map { Float(Self.commonWeight * Double(d).squareRoot() * $0 / Double(config.embeddingScale)) }
            for t in 0..<(values.count / d) { for j in 0..<d { values[t * d + j] += offset[j] } }
            return
        }
        guard tensor.hasPrefix("blk."), tensor.hasSuffix(".ffn_gate_inp.weight"),
              let l = Int(tensor.dropFirst(4).prefix { $0 != "." }), l < config.layerCount else { return }
        // Centred log-popularity per rank, in logit units.
        let logs = (0..<E).map { -options.skew * log(Double($0 + 1)) }
        let mean = logs.reduce(0, +) / Double(E)
        let alpha = Self.directionWeight
        let mu = commonProjection(layer: l)
        let gain = Self.gainFactor * (1 + alpha * alpha).squareRoot()
        for (rank, e) in popularity[l].enumerated() {
            let bias = gain * (logs[rank] - mean) / mu
            for j in 0..<d {
                values[e * d + j] += Float(bias * common[j] + alpha * directions[l][e][j])
            }
        }
    }

    // MARK: - Calibration

    /// Target share of the routed (token, slot) pairs for each popularity rank: Zipf(Z) over the
    /// ranks, with no expert above 1/k (a token picks an expert at most once), renormalised.
    var targetShares: [Double] {
        let E = config.expertCount, k = Double(config.expertsPerToken)
        var shares = (0..<E).map { pow(Double($0 + 1), -options.skew) }
        for _ in 0..<E {   // cap and renormalise until stable
            let total = shares.reduce(0, +)
            shares = shares.map { min($0 / total, 1 / k) }
            let free = 1 - shares.reduce(0, +)
            let open = shares.indices.filter { shares[$0] < 1 / k }
            if free < 1e-12 || open.isEmpty { break }
            let openTotal = open.map { shares[$0] }.reduce(0, +)
            for i in open { shares[i] += free * shares[i] / openTotal }
        }
        return shares
    }

    /// Runs the written model on a seeded random corpus, measures each layer's expert shares, and
    /// moves every router row along ĉ by the log ratio of target to measured share (damped), in
    /// place in the file, a few times: the construction alone lands near Zipf(Z), not on it,
    /// because the residual stream's drift along ĉ is only estimated.
    func calibrate(path: String, iterations: Int = 6, damping: Double = 0.8) throws {
        guard options.skew > 0 else { return }
        let L = config.layerCount, E = config.expertCount, d = config.modelWidth
        let target = targetShares
        for _ in 0..<iterations {
            let shares = try measureShares(path: path)
            let file = try GGUFFile(path: path)
            var patches: [(offset: Int, bytes: [UInt8])] = []
            for l in 0..<L {
                let name = "blk.\(l).ffn_gate_inp.weight"
                guard let info = file.tensor(name), info.dtype == .f32 else { continue }
                var router = Array(UnsafeBufferPointer(start: file.data(of: info).baseAddress!.assumingMemoryBound(to: Float.self), count: E * d))
                let mu = commonProjection(layer: l)
                for (rank, e) in popularity[l].enumerated() {
                    let shift = damping * log(target[rank] / max(shares[l][e], 0.5 / Double(1 << 12))) / mu
                    for j in 0..<d { router[e * d + j] += Float(shift * common[j]) }
                }
                patches.append((file.dataOffset + info.offset, router.withUnsafeBytes { Array($0) }))
            }
            guard let handle = FileHandle(forUpdatingAtPath: path) else {
                throw GenerationError("\(path): cannot open the synthesized file to calibrate its routers")
            }
            for patch in patches {
                handle.seek(toFileOffset: UInt64(patch.offset))
                handle.write(Data(patch.bytes))
            }
            try handle.close()
        }
    }

    /// Each layer's expert shares of the routed (token, slot) pairs over 24 seeded random
    /// sequences of 24 tokens (one prefill step).
    func measureShares(path: String) throws -> [[Double]] {
        let L = config.layerCount, E = config.expertCount, k = config.expertsPerToken
        let model = try GrokModel(source: GGUFFile(path: path), pool: ThreadPool(threads: 2))
        let recorder = RoutingRecorder(expertsPerToken: k)
        model.routingTrace = recorder
        let ids = Synthesizer.gaussian(count: 24 * 24, std: 1, seed: seed, stream: "grokcluster.router.calibration")
        let tokens = ids.map { Int32(abs(Int(($0 * 1e6).rounded())) % config.vocabularySize) }
        let batch = ForwardBatch(tokens: tokens, slots: (0..<tokens.count).map { $0 / 24 }, positions: (0..<tokens.count).map { $0 % 24 })
        _ = try model.forward(batch, cache: model.makeCache(slots: 24, capacity: 24), logitRows: [])
        var shares = [[Double]](repeating: [Double](repeating: 0, count: E), count: L)
        for r in 0..<recorder.count {
            for j in 0..<k { shares[Int(recorder.layers[r])][Int(recorder.experts[r * k + j])] += 1 }
        }
        return shares.map { row in let total = row.reduce(0, +); return row.map { total > 0 ? $0 / total : 0 } }
    }
}
