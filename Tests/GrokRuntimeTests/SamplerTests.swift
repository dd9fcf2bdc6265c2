import Foundation
@testable import GrokRuntime
import XCTest

final class SamplerTests: XCTestCase {
    func sample(_ logits: [Float], _ options: SamplerOptions, history: [Int32] = [], stream: UInt64 = 0) -> Int32 {
        var s = Sampler(options: options, stream: stream)
        return logits.withUnsafeBufferPointer { s.sample($0, history: history) }
    }

    func testGreedyIsArgmaxWithLowestIndexOnTies() {
        XCTAssertEqual(sample([0.1, 3, -2, 3], .greedy), 1)
        XCTAssertEqual(Sampler.argmax([5, 5, 5]), 0)
    }

    func testSeedMakesRunsRepeatableAndStreamsDiffer() {
        var o = SamplerOptions()
        o.temperature = 1; o.topK = 0; o.topP = 1; o.minP = 0; o.seed = 42
        let logits = [Float](repeating: 0, count: 1000)
        var a = Sampler(options: o), b = Sampler(options: o), c = Sampler(options: o, stream: 1)
        let runA = (0..<50).map { _ in logits.withUnsafeBufferPointer { a.sample($0, history: []) } }
        let runB = (0..<50).map { _ in logits.withUnsafeBufferPointer { b.sample($0, history: []) } }
        let runC = (0..<50).map { _ in logits.withUnsafeBufferPointer { c.sample($0, history: []) } }
        XCTAssertEqual(runA, runB)
        XCTAssertNotEqual(runA, runC)
        XCTAssertGreaterThan(Set(runA).count, 30, "uniform logits spread the draws")
    }

    func testTopKKeepsOnlyTheKBest() {
        var o = SamplerOptions()
        o.temperature = 5; o.topK = 2; o.topP = 1; o.minP = 0
        let logits: [Float] = [1, 4, 3.9, 0, 2]
        for seed in 0..<200 { o.seed = UInt64(seed); XCTAssertTrue([1, 2].contains(sample(logits, o))) }
    }

    func testTopPKeepsTheSmallestNucleus() {
        var o = SamplerOptions()
        o.temperature = 1; o.topK = 0; o.minP = 0; o.topP = 0.5
        // probabilities ∝ e^2, e^2, e^0 …: the first two cover > 0.5 only together
        let logits: [Float] = [2, 2, 0, 0, 0]
        var seen = Set<Int32>()
        for seed in 0..<300 { o.seed = UInt64(seed); seen.insert(sample(logits, o)) }
        XCTAssertEqual(seen, [0, 1])
    }

    func testMinPDropsUnlikelyTokens() {
        var o = SamplerOptions()
        o.temperature = 1; o.topK = 0; o.topP = 1; o.minP = 0.2
        let logits: [Float] = [0, log(0.5), log(0.1)]   // relative probabilities 1, 0.5, 0.1
        var seen = Set<Int32>()
        for seed in 0..<300 { o.seed = UInt64(seed); seen.insert(sample(logits, o)) }
        XCTAssertEqual(seen, [0, 1])
    }

    func testRepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() {
        var o = SamplerOptions.greedy
        o.repetitionPenalty = 2
        XCTAssertEqual(sample([3, 2], o, history: [0]), 1, "3/2 = 1.5 < 2")
        XCTAssertEqual(sample([-1, -1.5], o, history: [0]), 1, "-1·2 = -2 < -1.5")
        o.repetitionWindow = 1
        XCTAssertEqual(sample([3, 2], o, history: [0, 1]), 0, "only the last token is penalised")
    }

    func testBadOptionsAreRejectedWithTheFlagName() {
        var o = SamplerOptions()
        o.topP = 0
        XCTAssertThrowsError(try o.validate()) { XCTAssertTrue("\($0)".contains("--top-p")) }
        o = SamplerOptions(); o.temperature = -1
        XCTAssertThrowsError(try o.validate()) { XCTAssertTrue("\($0)".contains("--temperature")) }
    }

    func testNPYRoundTrip() throws {
        let path = NSTemporaryDirectory() + "/npy-\(UUID().uuidString).npy"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try NPY.write([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3], to: path)
        let back = try NPY.readFloat32(path)
        XCTAssertEqual(back.shape, [2, 3])
        XCTAssertEqual(back.values, [1, 2, 3, 4, 5, 6])
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        XCTAssertEqual((size - 24) % 64, 0, "data starts at a multiple of 64")
        XCTAssertThrowsError(try NPY.readInt32(path))
    }
}
