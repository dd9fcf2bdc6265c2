import Foundation
import GrokTopology

/// How `grok place` spreads each layer's experts (and their replicas) over R ranks. Loads are the
/// trace's tokens per (layer, expert). Details and sources: Launch/placement.md, field-notes §2.4,
/// §2.6, §2.8.
public enum PlacementStrategy: String, Sendable, CaseIterable, Codable {
    /// Expert e on rank ⌊e·R/E⌋ (the runtime's default rule). Ignores redundant slots.
    case contiguous
    /// Expert e on rank e mod R. Ignores redundant slots.
    case roundRobin = "round-robin"
    /// Longest-processing-time greedy: copies (replicas from the redundant slots, chosen as EPLB
    /// does) by load descending, each onto the least-loaded rank with room. Counts may differ.
    case greedy
    /// DeepSeek EPLB (global policy): replicate (each spare slot to the expert with the highest
    /// load per copy), then balanced packing (heaviest copy onto the lightest rank that has fewer
    /// than (E+S)/R copies): every rank holds the same number of experts.
    case eplb
    /// FasterMoE-style shadowing: the ⌊S/(R−1)⌋ hottest experts on every rank (rows for them never
    /// leave their owner), the rest by greedy.
    case shadow
    /// Lina/ExFlow affinity: each layer's experts go where the previous layer's experts that its
    /// tokens came from live (co-occurrence counts, greedy), within a load tolerance.
    case affinity

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// What a placement must respect.
public struct PlacementOptions: Sendable, Equatable {
    /// Ranks of the expert-parallel stage.
    public var ranks: Int
    /// Extra expert copies per layer, over all ranks (EPLB's R physical − E logical experts).
    public var redundantSlots: Int
    /// Experts (copies included) a rank may hold per layer; nil: no limit beyond the strategy's.
    public var maxExpertsPerRank: Int?
    /// Affinity: a rank may take an expert while its load stays within (1 + tolerance) × the
    /// balanced share (or the heaviest single copy, when that is larger).
    public var affinityTolerance: Double

    public init(ranks: Int, redundantSlots: Int = 0, maxExpertsPerRank: Int? = nil, affinityTolerance: Double = 0.10) {
        self.ranks = ranks
        self.redundantSlots = redundantSlots
        self.maxExpertsPerRank = maxExpertsPerRank
        self.affinityTolerance = affinityTolerance
    }
}

public enum PlacementStrategies {
    /// Places every layer of `trace` with `strategy`.
    public static func place(_ strategy: PlacementStrategy, trace: RoutingTrace, options: PlacementOptions) throws -> ExpertPlacement {
        try place(strategy, loads: trace.loads(), transitions: strategy == .affinity ? trace.transitions() : nil, options: options)
    }

    /// Places every layer given `loads[l][e]` (and, for affinity, `transitions[l][p][q]`: tokens
    /// choosing p at layer l and q at layer l+1).
    public static func place(_ strategy: PlacementStrategy, loads: [[Int]], transitions: [[[Int]]]? = nil,
                             options: PlacementOptions) throws -> ExpertPlacement {
        let R = options.ranks, S = options.redundantSlots, E = loads.first?.count ?? 0
        guard R >= 1 else { throw PlacementError("--ranks: expected ≥ 1, found \(R)") }
        guard E >= 1 else { throw PlacementError("the trace has no experts") }
        guard S >= 0 else { throw PlacementError("--redundant: expected ≥ 0, found \(S)") }
        if let M = options.maxExpertsPerRank {
            guard M >= 1 else { throw PlacementError("--max-experts-per-rank: expected ≥ 1, found \(M)") }
            guard E <= R * M else {
                throw PlacementError("--max-experts-per-rank \(M): \(R) rank\(R == 1 ? "" : "s") hold at most \(R * M) experts per layer, but there are \(E)")
            }
        }
        let usesSlots = strategy != .contiguous && strategy != .roundRobin
        if usesSlots && S > E * (R - 1) {
            throw PlacementError("--redundant \(S): at most \(E * (R - 1)) extra copies fit (each of the \(E) experts on at most the \(R) ranks, one copy each)")
        }
        if usesSlots, let M = options.maxExpertsPerRank, E + S > R * M, strategy != .shadow {
            throw PlacementError("--redundant \(S) with --max-experts-per-rank \(M): \(E) experts + \(S) copies do not fit in \(R) × \(M) slots")
        }
        switch strategy {
        case .contiguous, .roundRobin:
            let rule: Topology.ExpertRule = strategy == .contiguous ? .contiguous : .roundRobin
            if let M = options.maxExpertsPerRank, (E + R - 1) / R > M {
                throw PlacementError("--max-experts-per-rank \(M): \(strategy.rawValue) puts \((E + R - 1) / R) experts on a rank")
            }
            let layer = (0..<E).map { [rule.stageRank(ofExpert: $0, experts: E, ranks: R)] }
            return ExpertPlacement(ranks: R, layers: Array(repeating: layer, count: loads.count))
        case .greedy:
            return ExpertPlacement(ranks: R, layers: try loads.map { try greedy(loads: $0, options: options) })
        case .eplb:
            return ExpertPlacement(ranks: R, layers: try loads.map { try eplb(loads: $0, options: options) })
        case .shadow:
            return ExpertPlacement(ranks: R, layers: try loads.map { try shadow(loads: $0, options: options) })
        case .affinity:
            return ExpertPlacement(ranks: R, layers: try affinity(loads: loads, transitions: transitions ?? [], options: options))
        }
    }

    // MARK: - Pieces

    /// EPLB's replication: every expert starts with one copy; each of `slots` spare slots goes to
    /// the expert with the largest load/copies (ties: the lower index), never beyond `maxCopies`.
    public static func replicate(loads: [Int], slots: Int, maxCopies: Int) -> [Int] {
        var copies = [Int](repeating: 1, count: loads.count)
        for _ in 0..<slots {
            var best = -1
            for e in loads.indices where copies[e] < maxCopies {
                if best < 0 || Double(loads[e]) / Double(copies[e]) > Double(loads[best]) / Double(copies[best]) { best = e }
            }
            if best < 0 { break }
            copies[best] += 1
        }
        return copies
    }

    /// One copy of an expert with its share of the load.
    struct Item {
        var expert: Int
        var weight: Double
    }

    /// The copies of every expert, heaviest first (ties: lower expert first).
    static func items(loads: [Int], copies: [Int]) -> [Item] {
        var list: [Item] = []
        for e in loads.indices { for _ in 0..<copies[e] { list.append(Item(expert: e, weight: Double(loads[e]) / Double(copies[e]))) } }
        return list.enumerated().sorted { a, b in
            a.element.weight != b.element.weight ? a.element.weight > b.element.weight : a.offset < b.offset
        }.map(\.element)
    }

    /// Packing state: experts per rank and their summed weights.
    struct Bins {
        var held: [[Int]]
        var weights: [[Double]]
        var load: [Double]
        init(ranks: Int) {
            held = Array(repeating: [], count: ranks)
            weights = Array(repeating: [], count: ranks)
            load = Array(repeating: 0, count: ranks)
        }
        mutating func put(_ item: Item, on r: Int) {
            held[r].append(item.expert)
            weights[r].append(item.weight)
            load[r] += item.weight
        }
        mutating func remove(at i: Int, from r: Int) -> Item {
            let item = Item(expert: held[r].remove(at: i), weight: weights[r].remove(at: i))
            load[r] -= item.weight
            return item
        }
        /// `layers[l][e]`: the ranks holding e, ascending.
        func placement(experts: Int) -> [[Int]] {
            var out = [[Int]](repeating: [], count: experts)
            for (r, list) in held.enumerated() { for e in list { out[e].append(r) } }
            return out
        }
    }

    /// Puts `items` in order, each on the lightest rank with fewer than `capacity` copies that
    /// does not already hold the same expert (ties: fewer copies, then the lower rank). When every
    /// rank with room already holds that expert, a copy of another expert moves onto it to make
    /// room elsewhere (rare: only the last copies can meet this).
    static func pack(_ items: [Item], into bins: inout Bins, capacity: Int, what: String) throws {
        let R = bins.held.count
        func lighter(_ a: Int, _ b: Int) -> Bool {
            (bins.load[a], bins.held[a].count, a) < (bins.load[b], bins.held[b].count, b)
        }
        for item in items {
            let open = (0..<R).filter { bins.held[$0].count < capacity }
            if let r = open.filter({ !bins.held[$0].contains(item.expert) }).min(by: lighter) {
                bins.put(item, on: r)
                continue
            }
            guard let target = open.min(by: lighter) else {
                throw PlacementError("\(what): no rank has room for a copy of expert \(item.expert) (\(R) ranks × \(capacity))")
            }
            // Swap: a copy x from rank c (which lacks item.expert) moves to target; item goes to c.
            var done = false
            search: for c in (0..<R).sorted(by: lighter) where c != target && !bins.held[c].contains(item.expert) {
                for (i, x) in bins.held[c].enumerated() where !bins.held[target].contains(x) {
                    let moved = bins.remove(at: i, from: c)
                    precondition(moved.expert == x)
                    bins.put(moved, on: target)
                    bins.put(item, on: c)
                    done = true
                    break search
                }
            }
            if !done { throw PlacementError("\(what): cannot place a copy of expert \(item.expert) on a rank that lacks it") }
        }
    }

    // MARK: - Strategies (one layer)

    /// Greedy LPT with EPLB's replication: copies by load descending onto the least-loaded rank
    /// with room (`maxExpertsPerRank`, else unlimited) that lacks that expert.
    public static func greedy(loads: [Int], options: PlacementOptions) throws -> [[Int]] {
        let R = options.ranks
        let copies = replicate(loads: loads, slots: options.redundantSlots, maxCopies: R)
        var bins = Bins(ranks: R)
        try pack(items(loads: loads, copies: copies), into: &bins, capacity: options.maxExpertsPerRank ?? Int.max, what: "greedy")
        return bins.placement(experts: loads.count)
    }

    /// DeepSeek EPLB, global policy (field-notes §2.6): replicate into the S spare slots (the
    /// expert with the highest load per copy gets the next copy), then `balanced_packing`: copies
    /// by load/copies descending, each onto the lightest rank that holds fewer than (E+S)/R.
    public static func eplb(loads: [Int], options: PlacementOptions) throws -> [[Int]] {
        let R = options.ranks, E = loads.count, S = options.redundantSlots
        guard (E + S) % R == 0 else {
            let up = ((E + S + R - 1) / R) * R - E
            throw PlacementError("eplb: \(E) experts + \(S) redundant = \(E + S) copies do not split evenly over \(R) ranks (EPLB gives every rank the same number; try --redundant \(up))")
        }
        let perRank = (E + S) / R
        if let M = options.maxExpertsPerRank, perRank > M {
            throw PlacementError("eplb: \(perRank) experts per rank is more than --max-experts-per-rank \(M)")
        }
        let copies = replicate(loads: loads, slots: S, maxCopies: R)
        var bins = Bins(ranks: R)
        try pack(items(loads: loads, copies: copies), into: &bins, capacity: perRank, what: "eplb")
        return bins.placement(experts: E)
    }

    /// Shadowing (FasterMoE): the h hottest experts on every rank, h = ⌊S/(R−1)⌋ (lowered until
    /// the cap leaves room for the rest), the others by greedy LPT. In a static placement there is
    /// no per-step weight broadcast, so FasterMoE's "shadow while it pays" is limited by memory
    /// (the slots) instead.
    public static func shadow(loads: [Int], options: PlacementOptions) throws -> [[Int]] {
        let R = options.ranks, E = loads.count
        var h = R > 1 ? min(options.redundantSlots / (R - 1), E) : 0
        if let M = options.maxExpertsPerRank {
            while h > 0 && h + (E - h + R - 1) / R > M { h -= 1 }
        }
        let hot = loads.indices.sorted { (loads[$0], -$0) > (loads[$1], -$1) }.prefix(h)
        var bins = Bins(ranks: R)
        for e in hot { for r in 0..<R { bins.put(Item(expert: e, weight: Double(loads[e]) / Double(R)), on: r) } }
        let rest = items(loads: loads, copies: loads.indices.map { hot.contains($0) ? 0 : 1 })
        let capacity = options.maxExpertsPerRank ?? Int.max
        try pack(rest, into: &bins, capacity: capacity, what: "shadow")
        return bins.placement(experts: E)
    }

    /// Lina/ExFlow affinity: layer 0 by greedy; for each later layer, copies (EPLB replication)
    /// are offered to ranks in descending order of affinity — the tokens that reach expert q at
    /// layer l from experts held by rank r at layer l−1 (`transitions[l−1][p][q]`, shared among
    /// p's copies) — and taken when the rank has a free slot (cap, else ⌈(E+S)/R⌉) and its load stays
    /// within (1 + tolerance) × max(mean rank load, heaviest copy). The rest go by greedy onto ranks
    /// with a free slot, so every rank holds the same number of copies (±1).
    public static func affinity(loads: [[Int]], transitions: [[[Int]]], options: PlacementOptions) throws -> [[[Int]]] {
        let R = options.ranks, S = options.redundantSlots
        guard let first = loads.first else { return [] }
        let E = first.count
        var layers = [try greedy(loads: first, options: options)]
        let capacity = options.maxExpertsPerRank ?? (E + S + R - 1) / R
        for l in 1..<max(loads.count, 1) {
            let copies = replicate(loads: loads[l], slots: S, maxCopies: R)
            let list = items(loads: loads[l], copies: copies)
            let previous = layers[l - 1]
            var score = [[Double]](repeating: [Double](repeating: 0, count: R), count: E)   // [q][r]
            if l - 1 < transitions.count {
                for p in 0..<E where !previous[p].isEmpty {
                    for q in 0..<E where transitions[l - 1][p][q] > 0 {
                        for r in previous[p] { score[q][r] += Double(transitions[l - 1][p][q]) / Double(previous[p].count) }
                    }
                }
            }
            let total = loads[l].reduce(0, +)
            let limit = (1 + options.affinityTolerance) * max(Double(total) / Double(R), list.first?.weight ?? 0)
            var remaining = copies
            var bins = Bins(ranks: R)
            var pairs: [(q: Int, r: Int, score: Double)] = []
            for q in 0..<E { for r in 0..<R where score[q][r] > 0 { pairs.append((q, r, score[q][r])) } }
            pairs.sort { ($0.score, -$0.q, -$0.r) > ($1.score, -$1.q, -$1.r) }
            for (q, r, _) in pairs where remaining[q] > 0 && !bins.held[r].contains(q) && bins.held[r].count < capacity {
                let w = Double(loads[l][q]) / Double(copies[q])
                if bins.load[r] + w <= limit + 1e-9 {
                    bins.put(Item(expert: q, weight: w), on: r)
                    remaining[q] -= 1
                }
            }
            let rest = items(loads: loads[l], copies: copies).filter { item in
                if remaining[item.expert] > 0 { remaining[item.expert] -= 1; return true }
                return false
            }
            try pack(rest, into: &bins, capacity: capacity, what: "affinity")
            layers.append(bins.placement(experts: E))
        }
        return layers
    }
}
