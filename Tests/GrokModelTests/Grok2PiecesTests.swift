import Foundation
import GrokCheckpoint
import GrokModel
import GrokRuntime
import GrokTensor
import XCTest

/// Each Grok-2-specific piece against values computed by hand (closed forms, or a plain loop in
/// this file over a model small enough to write out).
final class Grok2PiecesTests: XCTestCase {
    /// Router: 30·tanh(x/30) on the logits, softmax over all experts, raw top-2 gates.
    func testRouterSoftCapAndRawTopTwoGates() {
        let logits: [Float] = [60, 0, -60, 30]
        let capped = logits.map { 30 * tanh(Double($0) / 30) }    // 28.9208, 0, -28.9208, 22.8478
        let z = capped.map { exp($0 - capped[0]) }.reduce(0, +)
        let gates = GrokModel.routingGates(logits: logits, softCap: 30, k: 2)
        XCTAssertEqual(gates.map(\.expert), [0, 3])
        XCTAssertEqual(Double(gates[0].gate), 1 / z, accuracy: 1e-6)
        XCTAssertEqual(Double(gates[1].gate), exp(capped[3] - capped[0]) / z, accuracy: 1e-6)
        XCTAssertEqual(Double(gates[1].gate), 0.0022989, accuracy: 1e-6)
        // Not renormalised: the two gates keep their share of the softmax (llama.cpp would make them sum to 1).
        let spread = GrokModel.routingGates(logits: [2, 1, 0.5, 1.5], softCap: 30, k: 2)
        XCTAssertEqual(spread.map(\.expert), [0, 3])
        XCTAssertEqual(spread[0].gate, 0.45451, accuracy: 1e-4)
        XCTAssertEqual(spread[1].gate, 0.27614, accuracy: 1e-4)
        // Without the cap (Grok-1), expert 3's logit 30 is 30 below 60: its gate is e^-30.
        let uncapped = GrokModel.routingGates(logits: logits, softCap: 0, k: 2)
        XCTAssertEqual(Double(uncapped[1].gate), exp(-30.0), accuracy: 1e-15)
        // Ties go to the lower index, as jax.lax.top_k.
        XCTAssertEqual(GrokModel.routingGates(logits: [1, 1, 1], softCap: 30, k: 2).map(\.expert), [0, 1])
    }

    /// Attention temperature log2(p)/log2(L) for p > L, else 1 (L = 1024 in the real model).
    func testAttentionTemperature() {
        XCTAssertEqual(Grok2.attentionTemperature(position: 1024, length: 1024), 1)
        XCTAssertEqual(Grok2.attentionTemperature(position: 100, length: 1024), 1)
        XCTAssertEqual(Grok2.attentionTemperature(position: 8192, length: 1024), 1.3, accuracy: 1e-6)
        XCTAssertEqual(Grok2.attentionTemperature(position: 131_071, length: 1024), 1.6999989, accuracy: 1e-6)
        XCTAssertEqual(Grok2.attentionTemperature(position: 1025, length: 1024), Float(log2(1025.0) / 10), accuracy: 1e-7)
        XCTAssertEqual(Grok2.attentionTemperature(position: 5000, length: 0), 1, "length 0 = off (Grok-1)")
    }

    /// Soft-caps: 30·tanh(x/30) and the final 50·tanh(x/50).
    func testSoftCaps() {
        XCTAssertEqual(Ops.softCap(60, 30), Float(30 * tanh(2.0)), accuracy: 1e-5)
        XCTAssertEqual(Ops.softCap(100, 50), 48.2014, accuracy: 1e-3)
        XCTAssertEqual(Ops.softCap(-7, 0), -7)
    }

    /// A one-layer Grok-2 with width 32 written out by hand: attention weights zero (so attention
    /// adds nothing), router zero (uniform probabilities: expert 0 wins the tie with gate 1/E),
    /// one expert and the dense MLP with known weights, separate output head. The logits must equal
    /// softcap50(0.5 · head · RMSNorm(h + RMSNorm_post((MLP(x) + gate·expert0(x)) / √2))), computed
    /// here with plain loops. The values are small so that RMSNorm's ε makes the 1/√2 and the raw
    /// gate visible (renormalised gates or a missing 1/√2 change the result).
    func testDenseMLPBesideMoEAndUntiedCappedHead() throws {
        let d = 32, f = 32, experts = 2, vocabulary = 3
        func values(_ count: Int, _ a: Double, _ b: Double) -> [Float] { (0..<count).map { Float(a * sin(Double($0) * b + a)) } }
        let embedding = values(vocabulary * d, 0.05, 0.37)
        let head = values(vocabulary * d, 24.0, 0.11)          // large enough that the cap at 50 bites
        let gate = values(f * d, 0.02, 0.05), up = values(f * d, 0.03, 0.07), down = values(d * f, 0.02, 0.13)
        let dGate = values(f * d, 0.015, 0.03), dUp = values(f * d, 0.025, 0.09), dDown = values(d * f, 0.01, 0.17)
        let ones = [Float](repeating: 1, count: d)

        var w = GGUFWriter()
        let meta: [(String, GGUFValue)] = [
            ("general.architecture", .string("grok")), ("grok.block_count", .uint32(1)), ("grok.context_length", .uint32(16)),
            ("grok.embedding_length", .uint32(UInt32(d))), ("grok.feed_forward_length", .uint32(UInt32(f))),
            ("grok.expert_feed_forward_length", .uint32(UInt32(f))), ("grok.attention.head_count", .uint32(1)),
            ("grok.attention.head_count_kv", .uint32(1)), ("grok.attention.key_length", .uint32(32)),
            ("grok.attention.layer_norm_rms_epsilon", .float32(1e-5)), ("grok.expert_count", .uint32(UInt32(experts))),
            ("grok.expert_used_count", .uint32(1)), ("grok.embedding_scale", .float32(2)), ("grok.logit_scale", .float32(0.5)),
            ("grok.final_logit_softcapping", .float32(50)), ("grok.attention.output_scale", .float32(0.17677669)),
        ]
        for (k, v) in meta { w.set(k, v) }
        func add(_ name: String, _ dims: [Int], _ v: [Float]) {
            w.addTensor(name: name, dims: dims, dtype: .f32, bytes: v.withUnsafeBytes { Array($0) })
        }
        let zeros = { (n: Int) in [Float](repeating: 0, count: n) }
        add("token_embd.weight", [d, vocabulary], embedding)
        add("output.weight", [d, vocabulary], head)
        add("output_norm.weight", [d], ones)
        for n in ["attn_norm", "attn_output_norm", "ffn_norm", "post_ffw_norm"] { add("blk.0.\(n).weight", [d], ones) }
        add("blk.0.attn_q.weight", [d, d], zeros(d * d)); add("blk.0.attn_k.weight", [d, d], zeros(d * d))
        add("blk.0.attn_v.weight", [d, d], zeros(d * d)); add("blk.0.attn_output.weight", [d, d], zeros(d * d))
        add("blk.0.ffn_gate_inp.weight", [d, experts], zeros(d * experts))
        add("blk.0.ffn_gate_exps.weight", [d, f, experts], gate + zeros(f * d))
        add("blk.0.ffn_up_exps.weight", [d, f, experts], up + zeros(f * d))
        add("blk.0.ffn_down_exps.weight", [f, d, experts], down + zeros(d * f))
        add("blk.0.ffn_gate.weight", [d, f], dGate); add("blk.0.ffn_up.weight", [d, f], dUp); add("blk.0.ffn_down.weight", [f, d], dDown)
        let path = (try temporaryDirectory(self) as NSString).appendingPathComponent("hand.gguf")
        try w.write(to: path)
        let model = try loadModel(path, threads: 1)
        XCTAssertEqual(model.config.architecture, .grok2)

        // By hand, in Double.
        func rms(_ x: [Double]) -> [Double] {
            let s = (x.map { $0 * $0 }.reduce(0, +) / Double(x.count) + 1e-5).squareRoot()
            return x.map { $0 / s }
        }
        func matvec(_ m: [Float], _ x: [Double], rows: Int) -> [Double] {
            var y = [Double](repeating: 0, count: rows)
            for r in 0..<rows {
                for c in x.indices { y[r] += Double(m[r * x.count + c]) * x[c] }
            }
            return y
        }
        func geluErf(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }
        func ffn(_ g: [Float], _ u: [Float], _ dn: [Float], _ x: [Double]) -> [Double] {
            let a = zip(matvec(g, x, rows: f), matvec(u, x, rows: f)).map { geluErf($0) * $1 }
            return matvec(dn, a, rows: d)
        }
        let token = 2
        let h = (0..<d).map { Double(embedding[token * d + $0]) * 2 }   // embedding_scale 2
        let x = rms(h)
        let moe = ffn(gate, up, down, x).map { $0 / Double(experts) }   // gate = softmax of equal logits = 1/E
        let mixed = zip(ffn(dGate, dUp, dDown, x), moe).map { ($0 + $1) / 2.0.squareRoot() }
        let h2 = zip(h, rms(mixed)).map { $0 + $1 }
        let expected = matvec(head, rms(h2), rows: vocabulary).map { Float(50 * tanh($0 * 0.5 / 50)) }

        let logits = try fullSequenceLogits(model, [Int32(token)])
        for v in 0..<vocabulary { XCTAssertEqual(logits[v], expected[v], accuracy: 1e-4 * max(1, abs(expected[v]))) }
        XCTAssertGreaterThan(expected.map(abs).max()!, 20, "the final cap is exercised")
        // The hand model is sensitive to the pieces: without 1/√2 the result moves well past the tolerance.
        let unscaled: [Double] = zip(ffn(dGate, dUp, dDown, x), moe).map { $0 + $1 }
        let h2Unscaled: [Double] = zip(h, rms(unscaled)).map { $0 + $1 }
        let noScale = matvec(head, rms(h2Unscaled), rows: vocabulary).map { Float(50 * tanh($0 * 0.5 / 50)) }
        XCTAssertGreaterThan(zip(noScale, expected).map { abs($0 - $1) }.max()!, 1e-2)
    }
}
