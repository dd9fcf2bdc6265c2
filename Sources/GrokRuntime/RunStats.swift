import Foundation
import GrokCheckpoint
import GrokComm
import GrokModel

/// `--stats`: what one rank did during generation, gathered to rank 0 and printed as a table on
/// stderr (and as JSON with `--stats-json`).
struct RankStats: Codable {
    var rank: Int
    var stage: Int
    var forwardSteps: Int
    /// Wall time inside forward steps; `compute` is that minus the communication inside them.
    var forwardSeconds: Double
    var computeSeconds: Double
    /// Per collective: calls, bytes sent/received, seconds. `broadcast` is the step commands from
    /// rank 0: on the other ranks, the time spent waiting for the next step.
    var communication: [String: CommunicationStats.Entry]
    var waitingSeconds: Double
    /// Tokens computed by each held expert, per layer ("layer" → "expert" → tokens).
    var expertTokens: [String: [String: Int]]
    /// Bytes sent to each other rank by the expert all-to-alls (dispatch and return).
    var alltoallBytesTo: [String: Int]
    var weightBytes: Int
    /// Size of this rank's shard file when loaded from `--shards` (compressed or not), else nil.
    var shardFileBytes: Int?
    var kvCacheBytes: Int
    var peakResidentBytes: Int
    var wallSeconds: Double
    /// Opening, verifying and mapping or decompressing this rank's weights (until every rank is done).
    var loadSeconds: Double

    init(rank: Int, model: GrokModel, stats: CommunicationStats, timer: ForwardTimer, kvCacheBytes: Int, wallSeconds: Double,
         loadSeconds: Double) {
        self.rank = rank
        stage = model.plan.stage
        forwardSteps = timer.steps
        forwardSeconds = timer.seconds
        var communication: [String: CommunicationStats.Entry] = [:]
        for kind in CommunicationKind.allCases where stats[kind].calls > 0 { communication[kind.rawValue] = stats[kind] }
        self.communication = communication
        let inForward: [CommunicationKind] = [.allreduce, .allgather, .alltoall, .pointToPoint]
        computeSeconds = max(0, timer.seconds - inForward.map { stats[$0].seconds }.reduce(0, +))
        waitingSeconds = stats[.broadcast].seconds + stats[.barrier].seconds
        expertTokens = Dictionary(uniqueKeysWithValues: model.expertTokens.map { layer, experts in
            (String(layer), Dictionary(uniqueKeysWithValues: experts.map { (String($0.key), $0.value) }))
        })
        weightBytes = model.weightBytes
        alltoallBytesTo = Dictionary(uniqueKeysWithValues: model.alltoallBytesTo.map { (String($0.key), $0.value) })
        shardFileBytes = (model.source as? ShardFile).flatMap { try? FileManager.default.attributesOfItem(atPath: $0.path)[.size] as? Int }
        self.kvCacheBytes = kvCacheBytes
        peakResidentBytes = ProcessMemory.peakResidentBytes()
        self.wallSeconds = wallSeconds
        self.loadSeconds = loadSeconds
    }


    /// The per-rank table printed with `--stats`.
    static func table(_ ranks: [RankStats]) -> String {
        func mb(_ bytes: Int) -> String { String(format: "%.2f", Double(bytes) / 1e6) }
        func entry(_ r: RankStats, _ kind: CommunicationKind) -> CommunicationStats.Entry { r.communication[kind.rawValue] ?? .init() }
        var out = "rank stage steps  forward s  compute s  allreduce s  alltoall s  p2p s  waiting s  comm %"
            + "  allreduce MB/msgs  alltoall MB/msgs  p2p MB/msgs  weights MB  shard MB  KV MB  peak RSS MB\n"
        for r in ranks {
            let ar = entry(r, .allreduce), a2a = entry(r, .alltoall), p2p = entry(r, .pointToPoint)
            let comm = r.forwardSeconds - r.computeSeconds
            out += String(format: "%4d %5d %5d %10.3f %10.3f %12.3f %11.3f %6.3f %10.3f %6.1f", r.rank, r.stage, r.forwardSteps,
                          r.forwardSeconds, r.computeSeconds, ar.seconds, a2a.seconds, p2p.seconds, r.waitingSeconds,
                          r.forwardSeconds > 0 ? 100 * comm / r.forwardSeconds : 0)
            out += "  " + "\(mb(ar.bytesSent))/\(ar.calls)".leftPadded(17) + "  " + "\(mb(a2a.bytesSent))/\(a2a.calls)".leftPadded(16)
                + "  " + "\(mb(p2p.bytesSent))/\(p2p.calls)".leftPadded(11)
                + String(format: "  %10.1f ", Double(r.weightBytes) / 1e6)
                + (r.shardFileBytes.map { String(format: "%.1f", Double($0) / 1e6) } ?? "-").leftPadded(9)
                + String(format: " %6.1f %12.1f\n", Double(r.kvCacheBytes) / 1e6, Double(r.peakResidentBytes) / 1e6)
        }
        for r in ranks where !r.expertTokens.isEmpty {
            var perExpert: [Int: Int] = [:]
            for experts in r.expertTokens.values { for (e, n) in experts { perExpert[Int(e)!, default: 0] += n } }
            out += "rank \(r.rank) expert tokens (all layers): "
                + perExpert.keys.sorted().map { "e\($0)=\(perExpert[$0]!)" }.joined(separator: " ")
                + "; total \(perExpert.values.reduce(0, +))\n"
        }
        for r in ranks where !r.alltoallBytesTo.isEmpty {
            out += "rank \(r.rank) all-to-all bytes sent to: "
                + r.alltoallBytesTo.keys.sorted { Int($0)! < Int($1)! }.map { "r\($0)=\(r.alltoallBytesTo[$0]!)" }.joined(separator: " ") + "\n"
        }
        return out
    }
}

public enum ProcessMemory {
    /// getrusage's high-water mark of this process's resident memory (Linux reports KiB).
    public static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Int(usage.ru_maxrss) * 1024
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
