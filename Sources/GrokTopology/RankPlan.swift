/// The dimensions of a model that a layout has to divide. The topology layer knows shapes, not
/// weights or math.
public struct ModelShape: Sendable, Equatable {
    public var layers: Int
    public var queryHeads: Int
    public var kvHeads: Int
    public var experts: Int
    public var expertsPerToken: Int
    /// Hidden width of one expert's FFN (Grok-1 32768, Grok-2 16384).
    public var expertWidth: Int
    /// Hidden width of Grok-2's dense MLP beside the MoE (0 for Grok-1).
    public var denseWidth: Int
    public var vocabulary: Int

    public init(layers: Int, queryHeads: Int, kvHeads: Int, experts: Int, expertsPerToken: Int = 2,
                expertWidth: Int, denseWidth: Int, vocabulary: Int) {
        self.layers = layers
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.experts = experts
        self.expertsPerToken = expertsPerToken
        self.expertWidth = expertWidth
        self.denseWidth = denseWidth
        self.vocabulary = vocabulary
    }
}

/// Part `part` of `parts` contiguous, near-equal pieces of `0..<total` (how heads, columns and
/// vocabulary rows are shared out over a group of ranks).
public func evenSlice(_ total: Int, part: Int, of parts: Int) -> Range<Int> {
    part * total / parts ..< (part + 1) * total / parts
}

/// How a stage runs its experts.
public enum ExpertMode: String, Sendable, Equatable, Codable {
    /// Whole experts live on the ranks a placement names; tokens travel to them (all-to-all).
    case parallel
    /// Every rank of the stage holds a slice of every expert's FFN width; partial sums are reduced.
    case slice
}

/// One pipeline stage: a contiguous range of layers run by a group of ranks.
public struct StagePlan: Sendable, Equatable {
    public var index: Int
    public var layers: Range<Int>
    /// World ranks of the stage; a rank's position in this array is its rank inside the stage group.
    public var ranks: [Int]
    /// Attention heads (and Grok-2's dense MLP) split across `ranks`; false: replicated on each.
    public var tensorParallel: Bool
    public var expertMode: ExpertMode
    /// For every layer of the stage, for every expert: the world ranks holding it (one or more,
    /// in the order replicas are chosen). In slice mode every expert lists every stage rank.
    public var placement: [Int: [[Int]]]

    public init(index: Int, layers: Range<Int>, ranks: [Int], tensorParallel: Bool, expertMode: ExpertMode,
                placement: [Int: [[Int]]]) {
        self.index = index
        self.layers = layers
        self.ranks = ranks
        self.tensorParallel = tensorParallel
        self.expertMode = expertMode
        self.placement = placement
    }

    /// Ranks splitting attention heads: the stage's ranks when tensor-parallel, else 1.
    public var tensorParallelSize: Int { tensorParallel ? ranks.count : 1 }
}

/// What one rank holds and computes: a pure value derived from a topology, the model shape and
/// the rank. The forward pass reads only the weights a plan names and communicates at the points
/// where a plan's slices must be joined (after attention, after the MoE, between stages, for the
/// logits).
public struct RankPlan: Sendable, Equatable {
    public var rank: Int
    public var worldSize: Int
    /// Every stage of the pipeline (activations flow from stage i to stage i+1).
    public var stages: [StagePlan]
    /// Index of this rank's stage in `stages`.
    public var stage: Int
    /// Query heads of this rank's tensor-parallel slice; KV heads follow their query groups (one
    /// replicated KV head when the group is larger than the KV heads).
    public var queryHeads: Range<Int>
    public var kvHeads: Range<Int>
    /// Columns of Grok-2's dense MLP hidden width held here (gate/up rows, down columns).
    public var denseColumns: Range<Int>
    /// Experts held on this rank, per layer of its stage (absolute layer number → expert ids).
    public var experts: [Int: [Int]]
    /// Columns of each held expert's FFN width (the whole width unless the stage slices experts).
    public var expertColumns: Range<Int>
    /// Embedding rows held here (first stage only; empty elsewhere).
    public var embeddingRows: Range<Int>
    /// Output-head rows held here (last stage only; empty elsewhere).
    public var outputRows: Range<Int>
    /// Micro-batches a multi-sequence forward step is cut into when there are several stages.
    public var microBatches: Int

    public init(rank: Int, worldSize: Int, stages: [StagePlan], stage: Int, queryHeads: Range<Int>,
                kvHeads: Range<Int>, denseColumns: Range<Int>, experts: [Int: [Int]], expertColumns: Range<Int>,
                embeddingRows: Range<Int>, outputRows: Range<Int>, microBatches: Int) {
        self.rank = rank
        self.worldSize = worldSize
        self.stages = stages
        self.stage = stage
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.denseColumns = denseColumns
        self.experts = experts
        self.expertColumns = expertColumns
        self.embeddingRows = embeddingRows
        self.outputRows = outputRows
        self.microBatches = microBatches
    }

    /// This rank's stage.
    public var stagePlan: StagePlan { stages[stage] }
    /// Layers this rank's pipeline stage runs.
    public var layers: Range<Int> { stagePlan.layers }
    public var isFirstStage: Bool { stage == 0 }
    public var isLastStage: Bool { stage == stages.count - 1 }

    /// One rank holding everything: the plan of a single-process run.
    public static func whole(_ shape: ModelShape) -> RankPlan {
        let all = Array(0..<shape.experts)
        let stage = StagePlan(index: 0, layers: 0..<shape.layers, ranks: [0], tensorParallel: false, expertMode: .parallel,
                              placement: Dictionary(uniqueKeysWithValues: (0..<shape.layers).map { ($0, all.map { _ in [0] }) }))
        return RankPlan(rank: 0, worldSize: 1, stages: [stage], stage: 0, queryHeads: 0..<shape.queryHeads,
                        kvHeads: 0..<shape.kvHeads, denseColumns: 0..<shape.denseWidth,
                        experts: Dictionary(uniqueKeysWithValues: (0..<shape.layers).map { ($0, all) }),
                        expertColumns: 0..<shape.expertWidth, embeddingRows: 0..<shape.vocabulary,
                        outputRows: 0..<shape.vocabulary, microBatches: 1)
    }
}
