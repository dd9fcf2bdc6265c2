import Foundation
import GrokModel
import GrokTopology

/// `grok plan`'s text table (the JSON is the `Planner.Prediction` itself).
public enum PlanReport {
    public static func text(_ p: Planner.Prediction, planner: Planner, modelName: String) -> String {
        func gib(_ b: Int) -> String { String(format: "%.2f", Double(b) / 1073741824) }
        func ms(_ s: Double) -> String { String(format: "%.3f", s * 1e3) }
        var out = "model \(modelName): \(planner.config.architecture.rawValue), \(planner.config.layerCount) layers, width \(planner.config.modelWidth)\n"
        out += "layout \(planner.topology.source): \(planner.topology.worldSize) ranks, \(planner.topology.stages.count) stage(s)\n"
        out += "cluster: \(planner.profile.description)\n"
        out += "threads per rank \(planner.threads), ranks per node \(planner.ranksPerNode); batch \(p.batch), context \(p.context), micro-batches \(p.microBatches)\n\n"
        out += "rank stage  weights GiB  KV GiB  buffers GiB  total GiB | read MB/step  GFLOP/step  compute ms  comm ms | messages/step (bytes sent)\n"
        for r in p.ranks {
            let messages = r.messages.keys.sorted().map { k in
                String(format: "%@ %.0f (%.2f MB)", k, r.messages[k]!, (r.bytesSent[k] ?? 0) / 1e6)
            }.joined(separator: ", ")
            out += String(format: "%4d %5d ", r.rank, r.stage) + gib(r.weightBytes).leftPadded(12) + gib(r.kvCacheBytes).leftPadded(8)
                + gib(r.bufferBytes).leftPadded(13) + gib(r.memoryBytes).leftPadded(11)
                + String(format: " | %12.1f %11.2f ", r.bytesRead / 1e6, r.flops / 1e9) + ms(r.computeSeconds).leftPadded(11)
                + ms(r.communicationSeconds).leftPadded(9) + " | " + (messages.isEmpty ? "-" : messages) + "\n"
        }
        out += "\nper decode step: \(ms(p.stepSeconds)) ms = compute \(ms(p.computeSeconds)) + communication \(ms(p.communicationSeconds)) + pipeline bubble \(ms(p.bubbleSeconds))\n"
        out += String(format: "decode: %.2f tokens/s at batch %d; prefill of %d tokens: %.3f s\n", p.tokensPerSecond, p.batch, p.prefillTokens, p.prefillSeconds)
        out += "fits in memory: \(p.fitsInMemory ? "yes" : "no")\n"
        out += "bottleneck: \(p.bottleneck)\n"
        return out
    }
}
