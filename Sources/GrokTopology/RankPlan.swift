/// The dimensions of a model that a layout has to divide. The topology layer knows shapes, not
/// weights or math.
public struct ModelShape: Sendable, Equatable {
    public var layers: Int
    public var queryHeads: Int
    public var kvHeads: Int
    public var experts: Int
    public var vocabulary: Int

    public init(layers: Int, queryHeads: Int, kvHeads: Int, experts: Int, vocabulary: Int) {
        self.layers = layers
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.experts = experts
        self.vocabulary = vocabulary
    }
}

/// What one rank holds and computes: a pure value derived from a topology, the model shape and
/// the rank. The forward pass reads only the weights a plan names and communicates at the points
/// where a plan's slices must be joined (after attention, after the MoE, for the logits).
public struct RankPlan: Sendable, Equatable {
    public var rank: Int
    public var worldSize: Int
    /// Layers this rank's pipeline stage runs.
    public var layers: Range<Int>
    /// Query heads of this rank's tensor-parallel slice; KV heads follow their query groups.
    public var queryHeads: Range<Int>
    public var kvHeads: Range<Int>
    /// Experts held on this rank, per layer (indexed by absolute layer number).
    public var experts: [Int: [Int]]
    /// Vocabulary rows of the embedding/output head held here.
    public var vocabulary: Range<Int>

    public init(rank: Int, worldSize: Int, layers: Range<Int>, queryHeads: Range<Int>, kvHeads: Range<Int>,
                experts: [Int: [Int]], vocabulary: Range<Int>) {
        self.rank = rank
        self.worldSize = worldSize
        self.layers = layers
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.experts = experts
        self.vocabulary = vocabulary
    }

    /// One rank holding everything: the plan of a single-process run.
    public static func whole(_ shape: ModelShape) -> RankPlan {
        let all = Array(0..<shape.experts)
        return RankPlan(rank: 0, worldSize: 1, layers: 0..<shape.layers, queryHeads: 0..<shape.queryHeads,
                        kvHeads: 0..<shape.kvHeads,
                        experts: Dictionary(uniqueKeysWithValues: (0..<shape.layers).map { ($0, all) }),
                        vocabulary: 0..<shape.vocabulary)
    }

    /// True when this plan holds every weight of `shape` (no communication needed).
    public func isWhole(_ shape: ModelShape) -> Bool { self == RankPlan.whole(shape) }
}
