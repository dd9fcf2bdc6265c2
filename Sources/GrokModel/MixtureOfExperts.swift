import GrokTensor
import GrokTopology

// The feed-forward block of every layer: the router, the experts wherever the plan put them, and
// Grok-2's dense MLP. Three ways to run the experts of a stage:
//   one rank          every expert is local; no communication;
//   expert slicing    every rank holds a column slice of every expert; each computes its slice for
//                     every routed token; the stage sums the partial outputs (`moe combine`);
//   expert parallel   whole experts live on the ranks the placement names. The batch rows are
//                     shared out among the stage's ranks ("owners", contiguous chunks, rotating with the
//                     micro-batch number); an owner
//                     routes its rows and sends each (row, expert) to a rank holding that expert
//                     (`moe dispatch`, all-to-all), which computes it and sends it back (`moe
//                     return`); the owner sums the results with their gates, and the stage shares
//                     the owners' rows (`moe combine`). A replicated expert serves a row on the
//                     owner itself when the owner holds a replica, otherwise on replica
//                     ((row + micro-batch number) mod replicas), so that even one-row decode
//                     steps rotate over the replicas: the documented rule of Topologies/README.md.
/// Collects the routing decisions a rank makes (`GrokModel.routingTrace`): one record per
/// (token, layer) this rank routed — the token's KV-cache slot and position, the layer, and its k
/// experts with their raw gates, best first. Flat arrays, in the order routing happened.
public final class RoutingRecorder {
    public let expertsPerToken: Int
    public private(set) var slots: [Int32] = []
    public private(set) var positions: [Int32] = []
    public private(set) var layers: [Int32] = []
    /// The micro-batch each record was routed in (see `GrokModel.routingStep`).
    public private(set) var steps: [Int32] = []
    /// `[records, k]` expert ids and gates.
    public private(set) var experts: [Int16] = []
    public private(set) var gates: [Float] = []

    public init(expertsPerToken: Int) { self.expertsPerToken = expertsPerToken }

    public var count: Int { slots.count }

    func record(slot: Int, position: Int, layer: Int, step: Int, choices: [(expert: Int, gate: Float)]) {
        precondition(choices.count == expertsPerToken)
        slots.append(Int32(slot)); positions.append(Int32(position)); layers.append(Int32(layer)); steps.append(Int32(step))
        for c in choices { experts.append(Int16(c.expert)); gates.append(c.gate) }
    }
}

extension GrokModel {
    /// Top-k routing of one token: router logits (optionally soft-capped) → softmax over all
    /// experts in f32 → the k largest probabilities as raw gates (not renormalised; ties go to the
    /// lower index as in jax.lax.top_k). Returns (expert, gate) pairs, best first.
    public static func routingGates(logits: [Float], softCap: Float, k: Int) -> [(expert: Int, gate: Float)] {
        var probabilities = logits.map { Ops.softCap($0, softCap) }
        probabilities.withUnsafeMutableBufferPointer { Ops.softmax($0.baseAddress!, count: $0.count) }
        var chosen: [(expert: Int, gate: Float)] = []
        for _ in 0..<k {
            var best = -1
            for e in probabilities.indices where !chosen.contains(where: { $0.expert == e }) {
                if best < 0 || probabilities[e] > probabilities[best] { best = e }
            }
            chosen.append((best, probabilities[best]))
        }
        return chosen
    }

    /// Routes rows `rows` of x; returns, per expert, the (row, gate) pairs routed to it. With a
    /// `routingTrace` and `record`, each row's choice is recorded against the micro-batch's
    /// (slot, position) of that row.
    func route(_ w: LayerWeights, _ x: FloatBuffer, rows: Range<Int>, layer: Int, record: Bool) -> [[(token: Int, gate: Float)]] {
        let recorder = record ? routingTrace : nil
        let experts = config.expertCount, d = config.modelWidth
        var assignments = [[(token: Int, gate: Float)]](repeating: [], count: experts)
        var logits = [Float](repeating: 0, count: experts)
        w.router.withUnsafeBufferPointer { router in
            for t in rows {
                let row = x[row: t]
                for e in 0..<experts {
                    var dot: Float = 0
                    let r = router.baseAddress! + e * d
                    for i in 0..<d { dot += r[i] * row[i] }
                    logits[e] = dot
                }
                let choices = GrokModel.routingGates(logits: logits, softCap: config.routerSoftCap, k: config.expertsPerToken)
                for (e, gate) in choices { assignments[e].append((t, gate)) }
                if let recorder, let batch = routingBatch {
                    recorder.record(slot: batch.slots[t], position: batch.positions[t], layer: layer, step: microBatchIndex, choices: choices)
                }
            }
        }
        return assignments
    }

    /// MoE(x), plus the dense MLP(x) when the layer has one (Grok-2), complete on every rank of
    /// the stage: `[N, d] → [N, d]`.
    func feedForwardSum(_ l: Int, _ w: LayerWeights, _ x: FloatBuffer) throws -> FloatBuffer {
        let stagePlan = plan.stagePlan
        let f: FloatBuffer
        if stagePlan.expertMode == .parallel && stage.size > 1 {
            f = try dispatchToExperts(l, w, x)                 // owners' rows complete, other rows zero
        } else {
            // Every rank of the stage routes every row; the stage's first rank records it.
            f = localExperts(l, w, x, assignments: route(w, x, rows: 0..<x.rows, layer: l, record: stage.rank == 0))  // whole, or slices' partial sums
        }
        var replicatedDense: FloatBuffer?
        if let dense = w.dense {
            let mlp = gatedFFN(dense, x)                        // [N, d] whole, or a column slice's partial sum
            if stagePlan.tensorParallelSize > 1 || stage.size == 1 { add(mlp, into: f) } else { replicatedDense = mlp }
        }
        if stage.size > 1 {
            try stage.allreduceSum(f.pointer, count: f.count)                                           // ── moe combine
        }
        if let replicatedDense { add(replicatedDense, into: f) }
        return f
    }

    /// Σ over held experts of gate · expert(x) for the rows routed to them: `[N, d]`.
    private func localExperts(_ l: Int, _ w: LayerWeights, _ x: FloatBuffer,
                              assignments: [[(token: Int, gate: Float)]]) -> FloatBuffer {
        let d = config.modelWidth
        let f = FloatBuffer(rows: x.rows, columns: d)
        for e in w.experts.keys.sorted() {
            let routed = assignments[e]
            if routed.isEmpty { continue }
            let xe = FloatBuffer(rows: routed.count, columns: d)      // [n_e, d] gathered tokens
            for (i, r) in routed.enumerated() { xe[row: i].update(from: x[row: r.token], count: d) }
            let ye = gatedFFN(w.experts[e]!, xe)
            count(l, e, routed.count)
            for (i, r) in routed.enumerated() {
                let dst = f[row: r.token], src = ye[row: i]
                for j in 0..<d { dst[j] += r.gate * src[j] }
            }
        }
        return f
    }

    /// Expert parallelism across the stage: route the owned rows, all-to-all them to the experts'
    /// ranks, compute what arrives, all-to-all the results back and sum them with their gates.
    /// Returns `[N, d]` holding the MoE output of this rank's owned rows (zero elsewhere).
    private func dispatchToExperts(_ l: Int, _ w: LayerWeights, _ x: FloatBuffer) throws -> FloatBuffer {
        let d = config.modelWidth, n = x.rows, E = config.expertCount
        let ranks = plan.stagePlan.ranks, size = ranks.count, me = stage.rank
        let placement = plan.stagePlan.placement[l]!
        // Owners rotate with the micro-batch number, so a one-row decode step is routed and
        // dispatched by a different rank each step.
        let owned = evenSlice(n, part: (me + max(microBatchIndex, 0)) % size, of: size)
        let assignments = route(w, x, rows: owned, layer: l, record: true)

        // Outgoing (row, gate) per destination stage rank, grouped by expert in ascending order.
        var outgoing = [[(expert: Int, token: Int, gate: Float)]](repeating: [], count: size)
        for e in 0..<E {
            let replicas = placement[e].map { ranks.firstIndex(of: $0)! }
            for r in assignments[e] {
                let destination = replicas.contains(me) ? me : replicas[(r.token + microBatchIndex) % replicas.count]
                outgoing[destination].append((e, r.token, r.gate))
            }
        }
        var counts = [Int32](repeating: 0, count: size * E)      // [destination, expert] rows sent
        for (destination, list) in outgoing.enumerated() { for item in list { counts[destination * E + item.expert] += 1 } }
        let incoming = try stage.alltoall(counts, countPerRank: E)  // [source, expert] rows received
        let sendRows = outgoing.map(\.count)
        let receiveRows = (0..<size).map { s in (0..<E).reduce(0) { $0 + Int(incoming[s * E + $1]) } }
        let sendOffsets = offsets(sendRows), receiveOffsets = offsets(receiveRows)

        let sent = FloatBuffer(rows: sendRows.reduce(0, +), columns: d)        // [rows out, d] hidden states
        for (destination, list) in outgoing.enumerated() {
            for (i, item) in list.enumerated() { sent[row: sendOffsets[destination] + i].update(from: x[row: item.token], count: d) }
        }
        let arrived = FloatBuffer(rows: receiveRows.reduce(0, +), columns: d)  // [rows in, d]
        try stage.alltoallv(sent.pointer, sendCounts: sendRows.map { $0 * d }, sendOffsets: sendOffsets.map { $0 * d },
                            into: arrived.pointer, receiveCounts: receiveRows.map { $0 * d },
                            receiveOffsets: receiveOffsets.map { $0 * d })                              // ── moe dispatch

        // Each held expert runs once over its rows from every source; results go where the rows came from.
        let results = FloatBuffer(rows: arrived.rows, columns: d)               // [rows in, d]
        for e in w.experts.keys.sorted() {
            var rows: [Int] = []
            for s in 0..<size {
                let first = receiveOffsets[s] + (0..<e).reduce(0) { $0 + Int(incoming[s * E + $1]) }
                rows += first ..< first + Int(incoming[s * E + e])
            }
            if rows.isEmpty { continue }
            let xe = FloatBuffer(rows: rows.count, columns: d)
            for (i, r) in rows.enumerated() { xe[row: i].update(from: arrived[row: r], count: d) }
            let ye = gatedFFN(w.experts[e]!, xe)
            count(l, e, rows.count)
            for (i, r) in rows.enumerated() { results[row: r].update(from: ye[row: i], count: d) }
        }
        for peer in 0..<size where peer != me {
            alltoallBytesTo[ranks[peer], default: 0] += (sendRows[peer] + receiveRows[peer]) * d * 4   // dispatch + return
        }
        let returned = FloatBuffer(rows: sent.rows, columns: d)                 // [rows out, d] expert outputs
        try stage.alltoallv(results.pointer, sendCounts: receiveRows.map { $0 * d }, sendOffsets: receiveOffsets.map { $0 * d },
                            into: returned.pointer, receiveCounts: sendRows.map { $0 * d },
                            receiveOffsets: sendOffsets.map { $0 * d })                                 // ── moe return

        // Sum in the single rank's order (experts ascending per row) so the result is the same.
        let f = FloatBuffer(rows: n, columns: d)
        var byToken: [Int: [(expert: Int, gate: Float, row: Int)]] = [:]
        for (destination, list) in outgoing.enumerated() {
            for (i, item) in list.enumerated() { byToken[item.token, default: []].append((item.expert, item.gate, sendOffsets[destination] + i)) }
        }
        for (token, parts) in byToken {
            let dst = f[row: token]
            for part in parts.sorted(by: { $0.expert < $1.expert }) {
                let src = returned[row: part.row]
                for j in 0..<d { dst[j] += part.gate * src[j] }
            }
        }
        return f
    }

    private func offsets(_ counts: [Int]) -> [Int] {
        var result: [Int] = [], total = 0
        for c in counts { result.append(total); total += c }
        return result
    }

    private func count(_ layer: Int, _ expert: Int, _ tokens: Int) {
        expertTokens[layer, default: [:]][expert, default: 0] += tokens
    }

    func add(_ a: FloatBuffer, into h: FloatBuffer) {
        for i in 0..<h.count { h.pointer[i] += a.pointer[i] }
    }

    /// down(gelu(gate·x) ⊙ (up·x)) for each row of x: `[n, d] → [n, d]`.
    func gatedFFN(_ w: DenseMLPWeights, _ x: FloatBuffer) -> FloatBuffer {
        let n = x.rows
        let g = FloatBuffer(rows: n, columns: w.gate.rows)   // [n, F]
        let u = FloatBuffer(rows: n, columns: w.up.rows)     // [n, F]
        Kernels.matmul(w.gate, x: x.pointer, n: n, y: g.pointer, pool: pool)
        Kernels.matmul(w.up, x: x.pointer, n: n, y: u.pointer, pool: pool)
        switch config.gelu {
        case .tanh: for i in 0..<g.count { g.pointer[i] = Ops.geluTanh(g.pointer[i]) * u.pointer[i] }
        case .erf: for i in 0..<g.count { g.pointer[i] = Ops.geluErf(g.pointer[i]) * u.pointer[i] }
        }
        let y = FloatBuffer(rows: n, columns: w.down.rows)   // [n, d]
        Kernels.matmul(w.down, x: g.pointer, n: n, y: y.pointer, pool: pool)
        return y
    }

}
