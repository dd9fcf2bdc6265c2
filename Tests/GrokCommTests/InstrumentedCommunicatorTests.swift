import Foundation
import XCTest
import GrokComm

final class InstrumentedCommunicatorTests: XCTestCase {
    /// Calls and bytes of a known pattern on three ranks, including a subgroup recording into
    /// the same stats. Rank r sends d + 1 floats to rank d in the alltoallv.
    func testCountsCallsAndBytes() throws {
        let all = try LocalCommunicator.run(ranks: 3) { local -> (CommunicationStats, Bool) in
            let stats = CommunicationStats()
            let comm = InstrumentedCommunicator(local, stats: stats)
            let me = comm.rank
            var values = [Float](repeating: 1, count: 10)
            try comm.allreduceSum(&values, count: 10)
            try comm.allreduceSum(&values, count: 10)
            var bytes = [UInt8](repeating: 0, count: 5)
            try comm.broadcast(&bytes, count: 5, root: 1)
            var gathered = [Float](repeating: 0, count: 9)
            try comm.allgather([1, 2, 3], count: 3, into: &gathered)
            var received = [Float](repeating: 0, count: 3 * (me + 1))
            try comm.alltoallv([Float](repeating: 1, count: 6), sendCounts: [1, 2, 3], sendOffsets: [0, 1, 3],
                               into: &received, receiveCounts: Array(repeating: me + 1, count: 3),
                               receiveOffsets: [0, me + 1, 2 * (me + 1)])
            _ = try comm.alltoall([Int32](repeating: 7, count: 6), countPerRank: 2)
            var message = [UInt8](repeating: 9, count: 16)
            try comm.send(&message, count: 16, to: (me + 1) % 3, tag: 0)
            try comm.receive(&message, count: 16, from: (me + 2) % 3, tag: 0)
            try comm.barrier()
            let pair = try comm.split(color: me == 2 ? nil : 0, key: 0)
            var four = [Float](repeating: 1, count: 4)
            try pair?.allreduceSum(&four, count: 4)
            return (stats, pair == nil || pair is InstrumentedCommunicator)
        }
        for (me, (stats, splitIsInstrumented)) in all.enumerated() {
            XCTAssertTrue(splitIsInstrumented, "rank \(me)")
            func check(_ kind: CommunicationKind, calls: Int, sent: Int, received: Int) {
                let entry = stats[kind]
                XCTAssertEqual([entry.calls, entry.bytesSent, entry.bytesReceived], [calls, sent, received], "rank \(me) \(kind)")
                XCTAssertGreaterThanOrEqual(entry.seconds, 0)
            }
            let inPair = me < 2 ? 1 : 0
            check(.allreduce, calls: 2 + inPair, sent: 80 + 16 * inPair, received: 80 + 16 * inPair)
            check(.broadcast, calls: 1, sent: me == 1 ? 5 : 0, received: me == 1 ? 0 : 5)
            check(.allgather, calls: 1, sent: 12, received: 24)
            check(.alltoall, calls: 2, sent: (6 - (me + 1)) * 4 + 16, received: 2 * (me + 1) * 4 + 16)
            check(.pointToPoint, calls: 2, sent: 16, received: 16)
            check(.barrier, calls: 1, sent: 0, received: 0)
            check(.split, calls: 1, sent: 0, received: 0)
            let total = CommunicationKind.allCases.reduce(0) { $0 + stats[$1].seconds }
            XCTAssertEqual(stats.totalSeconds, total, accuracy: 1e-12)
            XCTAssertGreaterThan(stats.totalSeconds, 0)
        }
    }

    /// A call that throws is not counted.
    func testFailedCallsAreNotRecorded() {
        let stats = CommunicationStats()
        let comm = InstrumentedCommunicator(LocalCommunicator.group(size: 1)[0], stats: stats)
        var v: Int32 = 0
        XCTAssertThrowsError(try comm.send(&v, count: 4, to: 3, tag: 0))
        XCTAssertEqual(stats[.pointToPoint], CommunicationStats.Entry())
    }

    func testRecordResetAndCoding() throws {
        let stats = CommunicationStats()
        stats.record(.alltoall, seconds: 0.5, sent: 10, received: 20)
        stats.record(.alltoall, seconds: 0.25, sent: 1, received: 2)
        stats.record(.barrier, seconds: 1, sent: 0, received: 0)
        let entry = CommunicationStats.Entry(calls: 2, bytesSent: 11, bytesReceived: 22, seconds: 0.75)
        XCTAssertEqual(stats[.alltoall], entry)
        XCTAssertEqual(stats[.allreduce], CommunicationStats.Entry())
        XCTAssertEqual(stats.totalSeconds, 1.75)
        let decoded = try JSONDecoder().decode(CommunicationStats.Entry.self, from: JSONEncoder().encode(entry))
        XCTAssertEqual(decoded, entry)
        stats.reset()
        XCTAssertEqual(stats[.alltoall], CommunicationStats.Entry())
        XCTAssertEqual(stats.totalSeconds, 0)
    }
}
