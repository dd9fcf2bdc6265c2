import Foundation
import XCTest
import GrokTensor

final class ThreadPoolTests: XCTestCase {
    /// Every index runs exactly once, for many counts and thread numbers.
    func testParallelForCoversEveryIndexOnce() {
        for threads in 1...5 {
            let pool = ThreadPool(threads: threads)
            for count in [0, 1, 2, 3, 5, 64, 1000, 100_003] {
                let hits = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, count))
                hits.initialize(repeating: 0, count: max(1, count))
                defer { hits.deallocate() }
                pool.parallelFor(count) { hits[$0] += 1 }
                XCTAssertTrue((0..<count).allSatisfy { hits[$0] == 1 }, "threads \(threads) count \(count)")
            }
        }
    }

    /// parallelChunks gives min(threads, count) disjoint contiguous ranges covering 0..<count.
    func testParallelChunksPartition() {
        for threads in 1...4 {
            let pool = ThreadPool(threads: threads)
            for count in [0, 1, 3, 4, 7, 1001] {
                // ends[lowerBound] = upperBound of the range starting there (ranges are non-empty).
                let ends = UnsafeMutablePointer<Int>.allocate(capacity: count + 1)
                ends.initialize(repeating: -1, count: count + 1)
                defer { ends.deallocate() }
                pool.parallelChunks(count) { range in
                    XCTAssertFalse(range.isEmpty)
                    ends[range.lowerBound] = range.upperBound
                }
                var next = 0, pieces = 0
                while next < count, ends[next] > next { next = ends[next]; pieces += 1 }
                XCTAssertEqual(next, count, "threads \(threads) count \(count)")
                XCTAssertEqual(pieces, min(threads, count), "threads \(threads) count \(count)")
            }
        }
    }

    /// A parallelFor inside a body runs inline and completes.
    func testNestedCalls() {
        let pool = ThreadPool(threads: 3)
        let hits = UnsafeMutablePointer<Int32>.allocate(capacity: 40 * 30)
        hits.initialize(repeating: 0, count: 40 * 30)
        defer { hits.deallocate() }
        pool.parallelFor(40) { i in
            pool.parallelFor(30) { j in hits[i * 30 + j] += 1 }
        }
        XCTAssertTrue((0..<1200).allSatisfy { hits[$0] == 1 })
    }

    /// Many consecutive small jobs, from one thread and from two threads at once.
    func testRepeatedAndConcurrentCalls() {
        let pool = ThreadPool(threads: 2)
        let sums = UnsafeMutablePointer<Int>.allocate(capacity: 2 * 4)
        sums.initialize(repeating: 0, count: 8)
        defer { sums.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 2) { caller in
            for _ in 0..<5000 { pool.parallelFor(4) { sums[caller * 4 + $0] += 1 } }
        }
        XCTAssertEqual((0..<8).map { sums[$0] }, [Int](repeating: 5000, count: 8))
        // Pauses around the workers' spin time (~0.2 ms): calls that find them spinning, falling
        // asleep, asleep, or waking late for a job that is already done.
        var random = TestRandom(seed: 9)
        for round in 0..<300 {
            usleep(UInt32(random.next() % 400))
            var hits = [Int](repeating: 0, count: 5)
            hits.withUnsafeMutableBufferPointer { h in pool.parallelFor(5) { h[$0] += 1 } }
            XCTAssertEqual(hits, [1, 1, 1, 1, 1], "round \(round)")
        }
    }

    /// Pools can be created and dropped in quick succession (their threads exit).
    func testDeinitStopsThreads() {
        for i in 0..<50 {
            let pool = ThreadPool(threads: 1 + i % 4)
            var n = [Int](repeating: 0, count: 8)
            n.withUnsafeMutableBufferPointer { b in pool.parallelFor(8) { b[$0] = $0 } }
            XCTAssertEqual(n, Array(0..<8))
        }
    }
}
