import Foundation
import GrokComm
import GrokModel
import GrokTensor

/// What the generator drives: one rank's model, or the whole cluster through rank 0.
public protocol LanguageModel: AnyObject {
    var config: ModelConfig { get }
    func makeCache(slots: Int, capacity: Int) throws -> KVCache
    func forward(_ batch: ForwardBatch, cache: KVCache, logitRows: [Int]) throws -> FloatBuffer
}

extension GrokModel: LanguageModel {}

/// Time a rank spent in the forward pass, for `--stats` (communication is timed by the
/// instrumented communicator; compute is the rest).
public final class ForwardTimer {
    public private(set) var seconds: Double = 0
    public private(set) var steps = 0
    /// The largest KV cache made for this rank's layers.
    public private(set) var kvCacheBytes = 0
    public init() {}
    func made(_ cache: KVCache) -> KVCache {
        kvCacheBytes = max(kvCacheBytes, cache.byteCount)
        return cache
    }
    func time<T>(_ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9; steps += 1 }
        return try body()
    }
}

/// One rank's whole model, timed (the data-parallel mode: no communication inside a step).
final class TimedModel: LanguageModel {
    let model: GrokModel
    let timer: ForwardTimer
    init(model: GrokModel, timer: ForwardTimer) {
        self.model = model
        self.timer = timer
    }
    var config: ModelConfig { model.config }
    func makeCache(slots: Int, capacity: Int) throws -> KVCache { timer.made(model.makeCache(slots: slots, capacity: capacity)) }
    func forward(_ batch: ForwardBatch, cache: KVCache, logitRows: [Int]) throws -> FloatBuffer {
        try timer.time { try model.forward(batch, cache: cache, logitRows: logitRows) }
    }
}

/// The commands rank 0 broadcasts to the other ranks; every rank then runs the same step.
enum ClusterCommand {
    case cache(slots: Int, capacity: Int)
    case forward(ForwardBatch, logitRows: [Int])
    case end
    /// Online rebalancing: every rank joins `Rebalancer.run`.
    case rebalance

    /// Wire form: [kind, fields…] as Int64.
    var encoded: [Int64] {
        switch self {
        case .cache(let slots, let capacity): return [0, Int64(slots), Int64(capacity)]
        case .forward(let batch, let rows):
            return [1, Int64(batch.count), Int64(rows.count)] + batch.tokens.map(Int64.init) + batch.slots.map(Int64.init)
                + batch.positions.map(Int64.init) + rows.map(Int64.init)
        case .end: return [2]
        case .rebalance: return [3]
        }
    }

    init(_ w: [Int64]) {
        switch w.first {
        case 0: self = .cache(slots: Int(w[1]), capacity: Int(w[2]))
        case 1:
            let n = Int(w[1]), r = Int(w[2])
            let tokens = w[3..<(3 + n)].map { Int32($0) }, slots = w[(3 + n)..<(3 + 2 * n)].map { Int($0) }
            let positions = w[(3 + 2 * n)..<(3 + 3 * n)].map { Int($0) }, rows = w[(3 + 3 * n)..<(3 + 3 * n + r)].map { Int($0) }
            self = .forward(ForwardBatch(tokens: tokens, slots: slots, positions: positions), logitRows: rows)
        case 3: self = .rebalance
        default: self = .end
        }
    }
}

/// Rank 0's handle on a model spread over every rank: each call is broadcast as a command, then
/// run by all ranks together (`ClusterWorker.serve` on the others); logits arrive on rank 0.
public final class ClusterModel: LanguageModel {
    public let model: GrokModel
    let world: Communicator
    public let timer = ForwardTimer()
    private var ended = false
    /// `--rebalance-every N`: before every Nth step, experts are re-placed from the routing seen.
    public var rebalance: Rebalancer?
    private var steps = 0

    public init(model: GrokModel, world: Communicator) {
        precondition(world.rank == 0)
        self.model = model
        self.world = world
    }

    public var config: ModelConfig { model.config }

    public func makeCache(slots: Int, capacity: Int) throws -> KVCache {
        try send(.cache(slots: slots, capacity: capacity))
        return timer.made(model.makeCache(slots: slots, capacity: capacity))
    }

    public func forward(_ batch: ForwardBatch, cache: KVCache, logitRows: [Int]) throws -> FloatBuffer {
        steps += 1
        if let rebalance, steps % rebalance.every == 0 {
            try send(.rebalance)
            try rebalance.run(model, world: world)
        }
        try send(.forward(batch, logitRows: logitRows))
        return try timer.time { try model.forward(batch, cache: cache, logitRows: logitRows) }
    }

    /// Releases the other ranks from `serve`; call once, whatever happened on rank 0.
    public func finish() throws {
        guard !ended else { return }
        ended = true
        try send(.end)
    }

    private func send(_ command: ClusterCommand) throws {
        var words = command.encoded
        try world.broadcast(&words, root: 0)
    }
}

/// The ranks other than 0: run each command rank 0 broadcasts until it sends `end`.
public enum ClusterWorker {
    /// Returns the forward timing, or throws the first input error every rank met (the same one
    /// rank 0 met: each rank checks the same batch). A failed collective is rethrown at once.
    public static func serve(_ model: GrokModel, world: Communicator) throws -> ForwardTimer {
        var cache: KVCache?
        let timer = ForwardTimer()
        let rebalancer = Rebalancer(every: 1)   // keeps this rank's counts between rebalances
        var firstError: ForwardError?
        while true {
            var words: [Int64] = []
            try world.broadcast(&words, root: 0)                    // waiting for rank 0's next step
            switch ClusterCommand(words) {
            case .cache(let slots, let capacity):
                cache = timer.made(model.makeCache(slots: slots, capacity: capacity))
            case .forward(let batch, let rows):
                guard let cache else { throw ForwardError("rank \(world.rank): forward before any KV cache was made") }
                do {
                    _ = try timer.time { try model.forward(batch, cache: cache, logitRows: rows) }
                } catch let error as ForwardError {
                    firstError = firstError ?? error
                }
            case .rebalance:
                try rebalancer.run(model, world: world)
            case .end:
                if let firstError { throw firstError }
                return timer
            }
        }
    }
}
