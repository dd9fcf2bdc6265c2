import Foundation

/// A parallel layout, as a topology file describes it: pipeline stages (contiguous layer ranges),
/// the world ranks of each stage, whether a stage splits attention over its ranks, and how it places
/// experts. The schema is documented in `Topologies/README.md`.
///
/// A topology is checked against a model's shape by `validate(shape:worldSize:source:)`; each
/// rank then derives what it holds with `plan(rank:shape:)`, a pure value.
public struct Topology: Sendable, Equatable {
    /// How a stage in parallel mode spreads whole experts over its ranks when no explicit
    /// placement is given (n = stage ranks, E = experts).
    public enum ExpertRule: String, Sendable, Equatable, CaseIterable {
        /// Expert e on stage rank e·n/E: neighbouring experts share a rank.
        case contiguous
        /// Expert e on stage rank e mod n.
        case roundRobin = "round-robin"

        /// The stage-local rank that holds expert `e` of `experts` over `ranks` ranks.
        public func stageRank(ofExpert e: Int, experts: Int, ranks: Int) -> Int {
            switch self {
            case .contiguous: return e * ranks / experts
            case .roundRobin: return e % ranks
            }
        }
    }

    /// How one stage runs its experts.
    public struct Experts: Sendable, Equatable {
        public var mode: ExpertMode
        /// Parallel mode without an explicit `placement`: where each expert goes.
        public var rule: ExpertRule
        /// Parallel mode: for each expert, the world ranks holding it (several = replicas, in the
        /// order replicas are chosen). Nil: `rule` decides.
        public var placement: [[Int]]?
        /// Parallel mode: per-layer placements (absolute layer number) that replace the stage's.
        public var layerPlacements: [Int: [[Int]]]

        public init(mode: ExpertMode = .parallel, rule: ExpertRule = .contiguous, placement: [[Int]]? = nil,
                    layerPlacements: [Int: [[Int]]] = [:]) {
            self.mode = mode
            self.rule = rule
            self.placement = placement
            self.layerPlacements = layerPlacements
        }

        /// The default: whole experts, spread contiguously over the stage's ranks.
        public static let contiguous = Experts()
        /// Every stage rank holds a 1/n slice of every expert's FFN width.
        public static let slice = Experts(mode: .slice)
    }

    /// One pipeline stage as written in the file.
    public struct Stage: Sendable, Equatable {
        public var layers: Range<Int>
        /// World ranks; a rank's position in this array is its rank inside the stage.
        public var ranks: [Int]
        /// Attention heads and Grok-2's dense MLP split over `ranks` (false: replicated on each).
        public var tensorParallel: Bool
        public var experts: Experts

        public init(layers: Range<Int>, ranks: [Int], tensorParallel: Bool = true, experts: Experts = .contiguous) {
            self.layers = layers
            self.ranks = ranks
            self.tensorParallel = tensorParallel
            self.experts = experts
        }

        /// Ranks splitting attention heads: the stage's ranks when tensor-parallel, else 1.
        public var tensorParallelSize: Int { tensorParallel ? ranks.count : 1 }
    }

    /// Free text: what the layout is for and why it is shaped so.
    public var description: String
    /// The preset or model the layout was written for (a hint; not checked).
    public var model: String?
    /// Ranks in the world; must equal `mpirun -np`.
    public var worldSize: Int
    /// Micro-batches per multi-sequence step; nil: one per stage.
    public var microBatches: Int?
    public var stages: [Stage]
    /// Where the topology came from (a path), for error messages. Not part of equality.
    public var source: String

    public init(description: String = "", model: String? = nil, worldSize: Int, microBatches: Int? = nil,
                stages: [Stage], source: String = "(in memory)") {
        self.description = description
        self.model = model
        self.worldSize = worldSize
        self.microBatches = microBatches
        self.stages = stages
        self.source = source
    }

    /// Reads and parses a topology file (not yet validated against a model).
    public init(contentsOf path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file"
            throw TopologyError(source: path, message: reason)
        }
        try self.init(json: data, source: path)
    }

    /// One rank holding every layer: the layout of a single-process run.
    public static func singleRank(layers: Int) -> Topology {
        Topology(description: "one rank holds the whole model", worldSize: 1,
                 stages: [Stage(layers: 0..<layers, ranks: [0])], source: "single rank")
    }

    /// Micro-batches actually used: the file's value, or the number of stages.
    public var effectiveMicroBatches: Int { microBatches ?? stages.count }

    public static func == (a: Topology, b: Topology) -> Bool {
        a.description == b.description && a.model == b.model && a.worldSize == b.worldSize
            && a.microBatches == b.microBatches && a.stages == b.stages
    }
}

/// A topology that cannot be used: one line naming the file, the field and what was expected.
public struct TopologyError: Error, CustomStringConvertible, Equatable {
    public var source: String
    public var message: String

    public init(source: String, message: String) {
        self.source = source
        self.message = message
    }

    public var description: String { "topology \(source): \(message)" }
}

// MARK: - Validation

extension Topology {
    /// Checks the layout against a model's shape and, when given, the number of ranks mpirun
    /// started. Throws the first problem found as a `TopologyError` (source defaults to the file
    /// the topology was read from).
    public func validate(shape: ModelShape, worldSize started: Int?, source: String? = nil) throws {
        let source = source ?? self.source
        func fail(_ message: String) -> TopologyError { TopologyError(source: source, message: message) }
        let W = worldSize, L = shape.layers, H = shape.queryHeads, Hkv = shape.kvHeads
        let E = shape.experts, F = shape.expertWidth, D = shape.denseWidth

        guard W >= 1 else { throw fail("worldSize: expected ≥ 1, found \(W)") }
        if let started, started != W {
            throw fail("worldSize is \(W), but mpirun started \(started) rank\(started == 1 ? "" : "s")")
        }
        if let m = microBatches, m < 1 { throw fail("microBatches: expected ≥ 1, found \(m)") }
        guard !stages.isEmpty else { throw fail("stages: expected at least one stage") }

        // Every world rank in exactly one stage.
        var stageOf: [Int: Int] = [:]
        for (i, s) in stages.enumerated() {
            guard !s.ranks.isEmpty else { throw fail("stages[\(i)].ranks: expected at least one rank") }
            for r in s.ranks {
                guard r >= 0 && r < W else {
                    throw fail("stages[\(i)].ranks: rank \(r) is outside the world of \(W) rank\(W == 1 ? "" : "s") (\(Topology.span(0..<W)))")
                }
                if let j = stageOf[r] {
                    throw fail(j == i ? "stages[\(i)].ranks: rank \(r) is listed twice"
                                      : "stages[\(i)].ranks: rank \(r) is already in stages[\(j)]")
                }
                stageOf[r] = i
            }
        }
        let missing = (0..<W).filter { stageOf[$0] == nil }
        if !missing.isEmpty {
            throw fail("rank\(missing.count == 1 ? "" : "s") \(Topology.list(missing)) \(missing.count == 1 ? "is" : "are") in no stage (every world rank 0-\(W - 1) must be in exactly one)")
        }

        // Layers 0..<L covered in order, without gaps or overlaps.
        var next = 0
        for (i, s) in stages.enumerated() {
            let r = Topology.span(s.layers)
            guard !s.layers.isEmpty else { throw fail("stages[\(i)].layers: expected at least one layer") }
            if s.layers.lowerBound != next {
                if i == 0 {
                    throw fail("stages[0].layers: \(r) starts at layer \(s.layers.lowerBound), but the first stage must start at layer 0")
                } else if s.layers.lowerBound < next {
                    throw fail("stages[\(i)].layers: \(r) overlaps stages[\(i - 1)] (layers \(Topology.span(stages[i - 1].layers))); expected it to start at layer \(next)")
                } else {
                    throw fail("stages[\(i)].layers: \(r) starts at layer \(s.layers.lowerBound), but stages[\(i - 1)] ends at layer \(next - 1): layer\(s.layers.lowerBound - next == 1 ? "" : "s") \(Topology.span(next..<s.layers.lowerBound)) \(s.layers.lowerBound - next == 1 ? "is" : "are") in no stage")
                }
            }
            if s.layers.upperBound > L {
                throw fail("stages[\(i)].layers: \(r) goes past the model's last layer \(L - 1) (it has \(L) layers)")
            }
            next = s.layers.upperBound
        }
        if next < L {
            throw fail("stages end at layer \(next - 1), but the model has \(L) layers: layer\(L - next == 1 ? "" : "s") \(Topology.span(next..<L)) \(L - next == 1 ? "is" : "are") in no stage")
        }

        for (i, s) in stages.enumerated() {
            let T = s.tensorParallelSize, n = s.ranks.count
            if H % T != 0 {
                throw fail("stages[\(i)]: tensor-parallel size \(T) does not divide the \(H) query heads")
            }
            if T <= Hkv {
                if Hkv % T != 0 { throw fail("stages[\(i)]: tensor-parallel size \(T) does not divide the \(Hkv) KV heads") }
            } else if T % Hkv != 0 {
                throw fail("stages[\(i)]: tensor-parallel size \(T) is larger than the \(Hkv) KV heads but not a multiple of them (the query heads of a rank must share one KV head)")
            }
            if D > 0 && D % T != 0 {
                throw fail("stages[\(i)]: tensor-parallel size \(T) does not divide the dense MLP width \(D)")
            }
            let x = s.experts
            switch x.mode {
            case .slice:
                if F % n != 0 {
                    throw fail("stages[\(i)].experts: slicing experts over \(n) ranks needs \(n) to divide the expert width \(F)")
                }
            case .parallel:
                let stageRanks = Set(s.ranks)
                func check(_ placement: [[Int]], path: String, layer: Int?) throws {
                    guard placement.count == E else {
                        throw fail("\(path): has \(placement.count) entr\(placement.count == 1 ? "y" : "ies"), but the model has \(E) experts (one list of ranks per expert)")
                    }
                    for (e, holders) in placement.enumerated() {
                        let what = layer.map { "expert \(e) of layer \($0)" } ?? "expert \(e)"
                        guard !holders.isEmpty else { throw fail("\(path)[\(e)]: \(what) is placed on no rank") }
                        var seen = Set<Int>()
                        for r in holders {
                            guard r >= 0 && r < W else {
                                throw fail("\(path)[\(e)]: \(what) is placed on rank \(r), but the world has \(W) rank\(W == 1 ? "" : "s")")
                            }
                            guard stageRanks.contains(r) else {
                                throw fail("\(path)[\(e)]: \(what) is placed on rank \(r), which is not in stage \(i) (ranks \(Topology.list(s.ranks)))")
                            }
                            guard seen.insert(r).inserted else { throw fail("\(path)[\(e)]: \(what) lists rank \(r) twice") }
                        }
                    }
                }
                if let p = x.placement { try check(p, path: "stages[\(i)].experts.placement", layer: nil) }
                for l in x.layerPlacements.keys.sorted() {
                    guard s.layers.contains(l) else {
                        throw fail("stages[\(i)].experts.layers.\(l): layer \(l) is not in this stage (layers \(Topology.span(s.layers)))")
                    }
                    try check(x.layerPlacements[l]!, path: "stages[\(i)].experts.layers.\(l)", layer: l)
                }
            }
        }
    }
}

// MARK: - Plans

extension Topology {
    /// Every stage as the forward pass sees it. A one-rank stage is reported as not
    /// tensor-parallel and in parallel expert mode: with nothing to split, the two are the same.
    /// Call after `validate`.
    public func stagePlans(shape: ModelShape) -> [StagePlan] {
        stages.enumerated().map { i, s in
            let single = s.ranks.count == 1
            let mode: ExpertMode = single ? .parallel : s.experts.mode
            var placement: [Int: [[Int]]] = [:]
            for l in s.layers { placement[l] = expertPlacement(stage: s, layer: l, experts: shape.experts) }
            return StagePlan(index: i, layers: s.layers, ranks: s.ranks, tensorParallel: s.tensorParallel && !single,
                             expertMode: mode, placement: placement)
        }
    }

    /// For each expert of `layer`, the world ranks of `stage` holding it.
    func expertPlacement(stage s: Stage, layer: Int, experts E: Int) -> [[Int]] {
        switch s.experts.mode {
        case .slice:
            return Array(repeating: s.ranks, count: E)
        case .parallel:
            if let p = s.experts.layerPlacements[layer] ?? s.experts.placement { return p }
            return (0..<E).map { [s.ranks[s.experts.rule.stageRank(ofExpert: $0, experts: E, ranks: s.ranks.count)]] }
        }
    }

    /// What `rank` holds and computes. Call after `validate` (a rank outside the topology traps).
    public func plan(rank: Int, shape: ModelShape) -> RankPlan {
        plan(rank: rank, shape: shape, stages: stagePlans(shape: shape))
    }

    /// The plans of every rank, in rank order (for tools that look at the whole layout).
    public func plans(shape: ModelShape) -> [RankPlan] {
        let stages = stagePlans(shape: shape)
        return (0..<worldSize).map { plan(rank: $0, shape: shape, stages: stages) }
    }

    private func plan(rank: Int, shape: ModelShape, stages: [StagePlan]) -> RankPlan {
        guard let s = stages.firstIndex(where: { $0.ranks.contains(rank) }) else {
            preconditionFailure("rank \(rank) is in no stage of topology \(source); validate it first")
        }
        let stage = stages[s]
        let n = stage.ranks.count, local = stage.ranks.firstIndex(of: rank)!
        let T = stage.tensorParallelSize, i = stage.tensorParallel ? local : 0
        let H = shape.queryHeads, Hkv = shape.kvHeads, D = shape.denseWidth, F = shape.expertWidth, V = shape.vocabulary

        let queryHeads = evenSlice(H, part: i, of: T)
        let kvHeads: Range<Int>
        if T <= Hkv {
            kvHeads = evenSlice(Hkv, part: i, of: T)
        } else {
            let group = queryHeads.lowerBound / (H / Hkv)
            kvHeads = group ..< group + 1
        }
        var experts: [Int: [Int]] = [:]
        for l in stage.layers {
            experts[l] = stage.placement[l]!.indices.filter { stage.placement[l]![$0].contains(rank) }
        }
        let vocabularySlice = evenSlice(V, part: local, of: n)
        return RankPlan(
            rank: rank, worldSize: worldSize, stages: stages, stage: s,
            queryHeads: queryHeads, kvHeads: kvHeads,
            denseColumns: evenSlice(D, part: i, of: T),
            experts: experts,
            expertColumns: stage.expertMode == .slice ? evenSlice(F, part: local, of: n) : 0..<F,
            embeddingRows: s == 0 ? vocabularySlice : 0..<0,
            outputRows: s == stages.count - 1 ? vocabularySlice : 0..<0,
            microBatches: effectiveMicroBatches)
    }
}

// MARK: - Formatting

extension Topology {
    /// `0-3`, `5`, or `-` for an empty range (inclusive bounds, as topology files write them).
    public static func span(_ r: Range<Int>) -> String {
        r.isEmpty ? "-" : r.count == 1 ? "\(r.lowerBound)" : "\(r.lowerBound)-\(r.upperBound - 1)"
    }

    /// Integers in their order, runs of consecutive ones shortened: `0-3, 6, 8-9`.
    public static func list(_ values: [Int], separator: String = ", ") -> String {
        var parts: [String] = []
        var k = 0
        while k < values.count {
            var j = k
            while j + 1 < values.count && values[j + 1] == values[j] + 1 { j += 1 }
            parts.append(j == k ? "\(values[k])" : "\(values[k])-\(values[j])")
            k = j + 1
        }
        return parts.joined(separator: separator)
    }
}
