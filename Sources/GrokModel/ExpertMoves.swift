import GrokCheckpoint
import GrokTensor
import GrokTopology

/// Online rebalancing: expert weights move between the ranks of expert-parallel stages while the
/// model runs, to follow a new placement. Collective: every rank calls `adopt` with the same
/// placement, between forward steps.
extension GrokModel {
    /// Adopts `placement` (absolute layer → for each expert the world ranks holding it) for the
    /// layers of expert-parallel stages: each expert a rank newly holds is sent to it by the first
    /// rank that held it before; experts it no longer holds are dropped. Transfers run in one
    /// global order (layer, expert, destination) on every rank, so blocking sends cannot deadlock.
    /// Returns the bytes this rank received.
    @discardableResult
    public func adopt(placement: [Int: [[Int]]]) throws -> Int {
        let E = config.expertCount
        var received = 0
        var stages = plan.stages
        for s in stages.indices where stages[s].expertMode == .parallel && stages[s].ranks.count > 1 {
            for l in stages[s].layers {
                guard let new = placement[l], new.count == E else { continue }
                let old = stages[s].placement[l]!
                for e in 0..<E {
                    for destination in new[e] where !old[e].contains(destination) {
                        let source = old[e][0]
                        if plan.rank == source {
                            let w = weights.layers[l]!.experts[e]!
                            for m in [w.gate, w.up, w.down] {
                                try world.send(m.base, count: m.byteCount, to: destination, tag: Self.expertTag)
                            }
                        } else if plan.rank == destination {
                            weights.layers[l]!.experts[e] = try receiveExpert(layer: l, from: source)
                            received += weights.layers[l]!.experts[e]!.byteCount
                        }
                    }
                }
                // Drop what this rank no longer holds; record the new placement.
                for e in 0..<E where old[e].contains(plan.rank) && !new[e].contains(plan.rank) {
                    weights.layers[l]!.experts[e] = nil
                }
                stages[s].placement[l] = new
                if stages[s].ranks.contains(plan.rank) {
                    plan.experts[l] = (0..<E).filter { new[$0].contains(plan.rank) }
                }
            }
        }
        plan.stages = stages
        return received
    }

    static let expertTag = 3

    /// One whole expert's gate, up and down matrices, in the dtypes this rank's other experts of
    /// the layer use (every rank of a stage maps the same file), into memory this model owns.
    private func receiveExpert(layer l: Int, from source: Int) throws -> ExpertWeights {
        let d = config.modelWidth, F = config.expertFFNWidth
        let dtype = try expertDType(layer: l)
        func matrix(rows: Int, cols: Int) throws -> WeightMatrix {
            let bytes = rows * dtype.rowBytes(cols)
            let base = movedExperts.allocate(bytes)
            try world.receive(base, count: bytes, from: source, tag: Self.expertTag)
            return WeightMatrix(base: UnsafeRawPointer(base), dtype: dtype, rows: rows, cols: cols)
        }
        return ExpertWeights(gate: try matrix(rows: F, cols: d), up: try matrix(rows: F, cols: d), down: try matrix(rows: d, cols: F))
    }

    /// The dtype of the layer's expert tensors (from the source's tensor table).
    private func expertDType(layer l: Int) throws -> DType {
        guard let info = source.tensor("blk.\(l).ffn_gate_exps.weight") else {
            throw ForwardError("rebalance: the source has no blk.\(l).ffn_gate_exps.weight to size a moved expert")
        }
        return info.dtype
    }
}

extension DenseMLPWeights {
    var byteCount: Int { gate.byteCount + up.byteCount + down.byteCount }
}
