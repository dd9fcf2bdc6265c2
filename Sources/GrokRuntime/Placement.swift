import Foundation
import GrokModel
import GrokTopology

// Expert placement from a routing trace (`grok place`): the trace reader, the placement value the
// strategies produce (PlacementStrategies.swift), the layout file it becomes, and its replay against
// the runtime's dispatch rule (PlacementEvaluation.swift). Documented in Launch/placement.md.

// MARK: - Routing trace

/// The expert choices of every token at every layer, as `grok-coordinator --trace-routing DIR`
/// writes them:
///
///     DIR/experts.npy   int16   [T, L, k]  expert ids, best first
///     DIR/gates.npy     float32 [T, L, k]  their gates
///     DIR/sequence.npy  int32   [T]        the sequence of each token
///     DIR/position.npy  int32   [T]        its position in that sequence
///     DIR/meta.json     {"format": "grokcluster-routing-trace", "version": 1, "layers": L,
///                        "experts": E, "expertsPerToken": k, "model": "…", "tokens": T}
///
/// Tokens are in (sequence, position) order.
public struct RoutingTrace: Sendable, Equatable {
    public static let format = "grokcluster-routing-trace"
    public static let version = 1

    public var model: String
    public var layers: Int
    public var experts: Int
    public var expertsPerToken: Int
    /// `[T, L, k]` row-major: `choices[(t·L + l)·k + j]`.
    public var choices: [Int16]
    /// `[T, L, k]`, like `choices`.
    public var gates: [Float]
    public var sequence: [Int32]
    public var position: [Int32]
    /// `[T]` the runtime micro-batch ("step") of each token (`step.npy`), when recorded: a replay
    /// then cuts the trace into the runtime's own steps and rotates replicas as it did.
    public var step: [Int32]?
    /// Where it was read from (for messages and descriptions); not part of equality.
    public var source: String

    public var tokens: Int { sequence.count }

    public init(model: String, layers: Int, experts: Int, expertsPerToken: Int, choices: [Int16], gates: [Float],
                sequence: [Int32], position: [Int32], source: String = "(in memory)") {
        self.model = model
        self.layers = layers
        self.experts = experts
        self.expertsPerToken = expertsPerToken
        self.choices = choices
        self.gates = gates
        self.sequence = sequence
        self.position = position
        self.source = source
    }

    /// A trace from per-token choices `perToken[t][l] = [experts best first]` (tests, synthetic
    /// traces): gates 1/k each, one sequence, positions 0, 1, 2, …
    public init(model: String = "grok-1-tiny", experts: Int, perToken: [[[Int]]], sequence: [Int32]? = nil) {
        let L = perToken.first?.count ?? 0, k = perToken.first?.first?.count ?? 0
        var choices: [Int16] = []
        for token in perToken {
            precondition(token.count == L && token.allSatisfy { $0.count == k }, "every token needs L lists of k experts")
            for layer in token { choices += layer.map { Int16($0) } }
        }
        let T = perToken.count
        self.init(model: model, layers: L, experts: experts, expertsPerToken: k, choices: choices,
                  gates: [Float](repeating: 1 / Float(max(k, 1)), count: choices.count),
                  sequence: sequence ?? [Int32](repeating: 0, count: T),
                  position: sequence == nil ? (0..<T).map { Int32($0) } : RoutingTrace.positions(sequence!))
    }

    static func positions(_ sequence: [Int32]) -> [Int32] {
        var next: [Int32: Int32] = [:]
        return sequence.map { s in defer { next[s, default: 0] += 1 }; return next[s, default: 0] }
    }

    public static func == (a: RoutingTrace, b: RoutingTrace) -> Bool {
        a.model == b.model && a.layers == b.layers && a.experts == b.experts && a.expertsPerToken == b.expertsPerToken
            && a.choices == b.choices && a.gates == b.gates && a.sequence == b.sequence && a.position == b.position
    }

    /// Expert `j` (0 = best) of token `t` at layer `l`.
    @inline(__always)
    public func expert(token t: Int, layer l: Int, choice j: Int) -> Int {
        Int(choices[(t * layers + l) * expertsPerToken + j])
    }

    /// Refuses a trace recorded on another model: one line naming the trace, its shape and the
    /// model's (`model`: how to name it).
    public func check(against config: ModelConfig, model: String) throws {
        guard (layers, experts, expertsPerToken) == (config.layerCount, config.expertCount, config.expertsPerToken) else {
            throw RoutingTraceError(path: source, message: "\(layers) layers, \(experts) experts, top-\(expertsPerToken), but model \(model) has \(config.layerCount), \(config.expertCount), top-\(config.expertsPerToken)")
        }
    }

    /// Tokens routed to each expert: `[layer][expert]` (each token counts once per chosen expert).
    public func loads() -> [[Int]] {
        var out = [[Int]](repeating: [Int](repeating: 0, count: experts), count: layers)
        for t in 0..<tokens {
            for l in 0..<layers { for j in 0..<expertsPerToken { out[l][expert(token: t, layer: l, choice: j)] += 1 } }
        }
        return out
    }

    /// Layer-to-layer co-occurrence: `[l][p][q]` = tokens choosing p at layer l and q at layer l+1
    /// (every pair of their k choices), for l in 0..<L−1.
    public func transitions() -> [[[Int]]] {
        let E = experts, k = expertsPerToken
        var out = [[[Int]]](repeating: [[Int]](repeating: [Int](repeating: 0, count: E), count: E), count: max(layers - 1, 0))
        for t in 0..<tokens {
            for l in 0..<max(layers - 1, 0) {
                for a in 0..<k {
                    let p = expert(token: t, layer: l, choice: a)
                    for b in 0..<k { out[l][p][expert(token: t, layer: l + 1, choice: b)] += 1 }
                }
            }
        }
        return out
    }

    /// Reads and checks a trace directory; the first problem is one line naming the file and field.
    public init(directory: String) throws {
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        func fail(_ file: String, _ message: String) -> RoutingTraceError { RoutingTraceError(path: path(file), message: message) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RoutingTraceError(path: directory, message: "no such directory (expected one written by grok-coordinator --trace-routing)")
        }
        for name in ["meta.json", "experts.npy", "gates.npy", "sequence.npy", "position.npy"]
            where !FileManager.default.fileExists(atPath: path(name)) {
            throw fail(name, "missing (a routing trace has meta.json, experts.npy, gates.npy, sequence.npy and position.npy)")
        }

        // meta.json
        guard let metaData = FileManager.default.contents(atPath: path("meta.json")) else { throw fail("meta.json", "cannot read the file") }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: metaData) } catch {
            throw fail("meta.json", "not valid JSON")
        }
        guard let meta = object as? [String: Any] else { throw fail("meta.json", "expected a JSON object") }
        func string(_ key: String) throws -> String {
            guard let v = meta[key] else { throw fail("meta.json", "\(key): missing") }
            guard let s = v as? String else { throw fail("meta.json", "\(key): expected a string, found \(v)") }
            return s
        }
        func int(_ key: String, min: Int) throws -> Int {
            guard let v = meta[key] else { throw fail("meta.json", "\(key): missing") }
            guard !(v is String), !String(describing: type(of: v)).contains("Bool"), let n = v as? Int else {
                throw fail("meta.json", "\(key): expected an integer, found \(v)")
            }
            guard n >= min else { throw fail("meta.json", "\(key): expected ≥ \(min), found \(n)") }
            return n
        }
        let format = try string("format")
        guard format == RoutingTrace.format else {
            throw fail("meta.json", "format: expected \"\(RoutingTrace.format)\", found \"\(format)\"")
        }
        let version = try int("version", min: 0)
        guard version == RoutingTrace.version else {
            throw fail("meta.json", "version: expected \(RoutingTrace.version), found \(version)")
        }
        let L = try int("layers", min: 1), E = try int("experts", min: 1), k = try int("expertsPerToken", min: 1)
        let T = try int("tokens", min: 0)
        let model = (meta["model"] as? String) ?? ""
        guard k <= E else { throw fail("meta.json", "expertsPerToken: \(k) is more than the \(E) experts") }
        guard E <= Int(Int16.max) + 1 else { throw fail("meta.json", "experts: \(E) do not fit int16 ids") }

        func npy<T>(_ name: String, _ read: (String) throws -> NPY.Array2D<T>, shape expected: [Int], what: String) throws -> [T] {
            let array: NPY.Array2D<T>
            do { array = try read(path(name)) } catch let e as NPY.FormatError {
                let text = e.description.hasPrefix(path(name) + ": ") ? String(e.description.dropFirst(path(name).count + 2)) : e.description
                throw fail(name, text)
            } catch {
                throw fail(name, "cannot read the file")
            }
            guard array.shape == expected else {
                throw fail(name, "shape: expected \(what) = \(expected) (meta.json), found \(array.shape)")
            }
            return array.values
        }
        let choices = try npy("experts.npy", NPY.readInt16, shape: [T, L, k], what: "[tokens, layers, expertsPerToken]")
        let gates = try npy("gates.npy", NPY.readFloat32, shape: [T, L, k], what: "[tokens, layers, expertsPerToken]")
        let sequence = try npy("sequence.npy", NPY.readInt32, shape: [T], what: "[tokens]")
        let position = try npy("position.npy", NPY.readInt32, shape: [T], what: "[tokens]")
        let step = FileManager.default.fileExists(atPath: path("step.npy"))
            ? try npy("step.npy", NPY.readInt32, shape: [T], what: "[tokens]") : nil

        for t in 0..<T {
            for l in 0..<L {
                let base = (t * L + l) * k
                for j in 0..<k {
                    let e = Int(choices[base + j])
                    guard e >= 0 && e < E else {
                        throw fail("experts.npy", "[\(t), \(l), \(j)]: expert \(e) is outside 0-\(E - 1)")
                    }
                    for i in 0..<j where Int(choices[base + i]) == e {
                        throw fail("experts.npy", "[\(t), \(l)]: token \(t) chooses expert \(e) twice at layer \(l)")
                    }
                    let g = gates[base + j]
                    guard g.isFinite else { throw fail("gates.npy", "[\(t), \(l), \(j)]: gate \(g) is not finite") }
                }
            }
            if t > 0 {
                let a = (sequence[t - 1], position[t - 1]), b = (sequence[t], position[t])
                guard a < b else {
                    throw fail("sequence.npy", "[\(t)]: token \(t) (sequence \(b.0), position \(b.1)) comes after (sequence \(a.0), position \(a.1)); tokens must be in (sequence, position) order")
                }
            }
        }
        self.init(model: model, layers: L, experts: E, expertsPerToken: k, choices: choices, gates: gates,
                  sequence: sequence, position: position, source: directory)
        self.step = step
    }

    /// Writes the trace in the format `init(directory:)` reads (Launch/routing-trace.md).
    public func write(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        let T = tokens
        try NPY.write(choices, shape: [T, layers, expertsPerToken], to: path("experts.npy"))
        try NPY.write(gates, shape: [T, layers, expertsPerToken], to: path("gates.npy"))
        try NPY.write(sequence, shape: [T], to: path("sequence.npy"))
        try NPY.write(position, shape: [T], to: path("position.npy"))
        if let step { try NPY.write(step, shape: [T], to: path("step.npy")) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let model = String(decoding: try encoder.encode([self.model]), as: UTF8.self).dropFirst().dropLast()   // a JSON string
        let meta = """
            {"format": "\(RoutingTrace.format)", "version": \(RoutingTrace.version), "layers": \(layers), "experts": \(experts), \
            "expertsPerToken": \(expertsPerToken), "model": \(model), "tokens": \(T)}

            """
        try Data(meta.utf8).write(to: URL(fileURLWithPath: path("meta.json")))
    }

    /// A synthetic skewed trace: `sequences` sequences of `length` tokens; at every layer each token
    /// draws k distinct experts with probability ∝ 1/(rank+1)^skew over a per-layer permutation of the
    /// experts (Zipf-like), and with probability `stickiness` keeps its previous layer's experts
    /// shifted by one (expert e → e+1: the cross-layer affinity Lina/ExFlow exploit).
    public static func synthetic(model: String, layers: Int, experts: Int, expertsPerToken k: Int, sequences: Int, length: Int,
                                 skew: Double, stickiness: Double = 0, seed: UInt64 = 1) -> RoutingTrace {
        var rng = SplitMix64(seed: seed)
        func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        let orders: [[Int]] = (0..<layers).map { _ in
            var order = Array(0..<experts)
            for i in stride(from: experts - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            return order
        }
        let weights = (0..<experts).map { 1 / pow(Double($0 + 1), skew) }
        var choices: [Int16] = [], gates: [Float] = [], sequence: [Int32] = [], position: [Int32] = []
        for s in 0..<sequences {
            for p in 0..<length {
                var previous: [Int] = []
                for l in 0..<layers {
                    var chosen: [Int] = []
                    if l > 0 && uniform() < stickiness {
                        chosen = previous.map { ($0 + 1) % experts }
                    } else {
                        var w = weights
                        for _ in 0..<k {
                            let total = w.reduce(0, +)
                            var x = uniform() * total, i = 0
                            while i < experts - 1 && x >= w[i] { x -= w[i]; i += 1 }
                            while w[i] == 0 { i = (i + 1) % experts }
                            chosen.append(orders[l][i])
                            w[i] = 0
                        }
                    }
                    previous = chosen
                    choices += chosen.map { Int16($0) }
                    gates += (0..<k).map { Float(k - $0) / Float(k * (k + 1) / 2) }
                }
                sequence.append(Int32(s))
                position.append(Int32(p))
            }
        }
        return RoutingTrace(model: model, layers: layers, experts: experts, expertsPerToken: k, choices: choices, gates: gates,
                            sequence: sequence, position: position, source: "synthetic")
    }
}

/// A routing trace that cannot be used: one line naming the file and the field.
public struct RoutingTraceError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "trace \(path): \(message)" }
}

// MARK: - Placement

/// Where every expert of every layer lives: `layers[l][e]` = the stage-local ranks (0..<ranks)
/// holding expert e of layer l, in the order replicas are chosen (several = replicas).
public struct ExpertPlacement: Sendable, Equatable, Codable {
    public var ranks: Int
    public var layers: [[[Int]]]

    public init(ranks: Int, layers: [[[Int]]]) {
        self.ranks = ranks
        self.layers = layers
    }

    public var experts: Int { layers.first?.count ?? 0 }

    /// Experts (copies included) held by each rank at layer `l`.
    public func held(layer l: Int) -> [[Int]] {
        var out = [[Int]](repeating: [], count: ranks)
        for (e, holders) in layers[l].enumerated() { for r in holders { out[r].append(e) } }
        return out
    }

    /// Copies beyond the first, summed over layers.
    public var replicas: Int { layers.reduce(0) { $0 + $1.reduce(0) { $0 + $1.count - 1 } } }

    /// The largest number of experts (copies included) any rank holds in one layer.
    public var maxExpertsPerRank: Int { layers.indices.map { held(layer: $0).map(\.count).max() ?? 0 }.max() ?? 0 }

    /// The expected load of each rank at layer `l` when every replica of an expert takes an equal
    /// share of its tokens (EPLB's model: load/copies; the runtime's rule may differ, see the evaluation).
    public func expectedLoad(layer l: Int, loads: [Int]) -> [Double] {
        var out = [Double](repeating: 0, count: ranks)
        for (e, holders) in layers[l].enumerated() { for r in holders { out[r] += Double(loads[e]) / Double(holders.count) } }
        return out
    }

    /// Max over mean of `expectedLoad`, averaged over layers (1 = perfectly balanced).
    public func expectedImbalance(loads: [[Int]]) -> Double {
        let values = layers.indices.map { l -> Double in
            let load = expectedLoad(layer: l, loads: loads[l])
            let mean = load.reduce(0, +) / Double(max(ranks, 1))
            return mean > 0 ? (load.max() ?? 0) / mean : 1
        }
        return values.reduce(0, +) / Double(max(values.count, 1))
    }

    /// The placement's layers in one pipeline stage of world ranks `0..<ranks`.
    public func topology(description: String, model: String?, tensorParallel: Bool) -> Topology {
        var overrides: [Int: [[Int]]] = [:]
        for l in layers.indices.dropFirst() { overrides[l] = layers[l] }
        let experts = Topology.Experts(mode: .parallel, placement: layers.first, layerPlacements: overrides)
        return Topology(description: description, model: model, worldSize: ranks,
                        stages: [Topology.Stage(layers: 0..<layers.count, ranks: Array(0..<ranks), tensorParallel: tensorParallel,
                                                experts: experts)],
                        source: "grok place")
    }

    /// The layout file of `topology(…)`: one stage, layer 0's placement as the stage's, every
    /// other layer under "layers".
    public func layoutJSON(description: String, model: String?, tensorParallel: Bool) -> String {
        topology(description: description, model: model, tensorParallel: tensorParallel).layoutFileText
    }

    /// The placement of a one-stage parallel layout (stage-local ranks), or why it has none.
    public init(topology: Topology, experts E: Int, layers L: Int) throws {
        guard topology.stages.count == 1, let s = topology.stages.first else {
            throw PlacementError("topology \(topology.source): has \(topology.stages.count) stages; a placement is one stage")
        }
        let shape = ModelShape(layers: L, queryHeads: 1, kvHeads: 1, experts: E, expertWidth: 1, denseWidth: 0, vocabulary: 1)
        let plan = topology.stagePlans(shape: shape)[0]
        ranks = s.ranks.count
        layers = (0..<L).map { l in plan.placement[l]!.map { $0.map { s.ranks.firstIndex(of: $0)! } } }
    }
}

/// A placement request that cannot be met, or a layout that is not a placement: one line.
public struct PlacementError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
