import Foundation
import XCTest
import GrokComm

/// Collectives, point-to-point, split and failure over threads as ranks. Rank bodies return what
/// they saw; the assertions run on the test thread.
final class LocalCommunicatorTests: XCTestCase {
    let sizes = 1...4

    func testRunReturnsResultsInRankOrder() throws {
        for size in sizes {
            let seen = try LocalCommunicator.run(ranks: size) { comm in [comm.rank, comm.size] }
            XCTAssertEqual(seen, (0..<size).map { [$0, size] })
        }
    }

    /// Integer-valued floats sum exactly; other values give the rank-order sum, bit for bit, on every rank.
    func testAllreduceSumIsExactAndIdenticalOnEveryRank() throws {
        func inexact(_ rank: Int, _ i: Int) -> Float { Float(sin(Double(rank * 97 + i))) * Float(1 << (i % 20)) }
        for size in sizes {
            let results = try LocalCommunicator.run(ranks: size) { comm -> [[Float]] in
                var exact = (0..<5).map { Float(comm.rank * 100 + $0) }
                try comm.allreduceSum(&exact, count: exact.count)
                var mixed = (0..<257).map { inexact(comm.rank, $0) }
                try comm.allreduceSum(&mixed, count: mixed.count)
                return [exact, mixed]
            }
            let ranks = 0..<size
            let exact = (0..<5).map { i in Float(ranks.reduce(0) { $0 + $1 * 100 + i }) }
            let mixed = (0..<257).map { i in ranks.dropFirst().reduce(inexact(0, i)) { $0 + inexact($1, i) } }
            for (rank, result) in results.enumerated() {
                XCTAssertEqual(result[0], exact, "size \(size) rank \(rank)")
                let differing = mixed.indices.filter { result[1][$0].bitPattern != mixed[$0].bitPattern }
                XCTAssertEqual(differing, [], "size \(size) rank \(rank): elements differing in any bit")
            }
        }
    }

    /// Raw bytes from the last rank, then an array only the root knows the length of, then
    /// every rank's bytes (the `Communicator` extensions built on broadcast).
    func testBroadcastFromNonZeroRoot() throws {
        for size in sizes {
            let root = size - 1
            let pattern = (0..<13).map { UInt8(($0 * 7 + root) & 0xff) }
            let results = try LocalCommunicator.run(ranks: size) { comm -> ([UInt8], [Int32], [[UInt8]]) in
                var bytes = comm.rank == root ? pattern : [UInt8](repeating: 0, count: 13)
                try comm.broadcast(&bytes, count: bytes.count, root: root)
                var values: [Int32] = comm.rank == root ? [5, -6, 7] : [1]
                try comm.broadcast(&values, root: root)
                let everyone = try comm.allgatherBytes(Array(repeating: UInt8(comm.rank), count: comm.rank))
                return (bytes, values, everyone)
            }
            for (rank, (bytes, values, everyone)) in results.enumerated() {
                XCTAssertEqual(bytes, pattern, "size \(size) rank \(rank)")
                XCTAssertEqual(values, [5, -6, 7], "size \(size) rank \(rank)")
                XCTAssertEqual(everyone, (0..<size).map { Array(repeating: UInt8($0), count: $0) })
            }
        }
    }

    func testAllgather() throws {
        for size in sizes {
            let results = try LocalCommunicator.run(ranks: size) { comm -> [Float] in
                let mine = (0..<3).map { Float(comm.rank * 10 + $0) }
                var all = [Float](repeating: -1, count: 3 * comm.size)
                try comm.allgather(mine, count: 3, into: &all)
                return all
            }
            let expected = (0..<size).flatMap { r in (0..<3).map { Float(r * 10 + $0) } }
            XCTAssertEqual(results, Array(repeating: expected, count: size), "size \(size)")
        }
    }

    /// Rank s sends (s + 2d + 1) % 3 floats to rank d: some zero, never zero to itself. Send
    /// blocks are laid out in reverse with one-float gaps, receive blocks with two-float gaps
    /// that must stay untouched.
    func testAlltoallvWithUnevenCountsZerosAndSelfSends() throws {
        func count(_ source: Int, _ destination: Int) -> Int { (source + 2 * destination + 1) % 3 }
        func value(_ source: Int, _ destination: Int, _ i: Int) -> Float { Float(source * 100 + destination * 10 + i) }
        for size in sizes {
            let results = try LocalCommunicator.run(ranks: size) { comm -> [Float] in
                let me = comm.rank
                var send: [Float] = [], sendOffsets = Array(repeating: 0, count: size)
                for d in (0..<size).reversed() {
                    sendOffsets[d] = send.count
                    send += (0..<count(me, d)).map { value(me, d, $0) } + [-9]
                }
                var receiveOffsets: [Int] = [], end = 0
                for s in 0..<size {
                    receiveOffsets.append(end)
                    end += count(s, me) + 2
                }
                var receive = [Float](repeating: -1, count: end)
                try comm.alltoallv(send, sendCounts: (0..<size).map { count(me, $0) }, sendOffsets: sendOffsets,
                                   into: &receive, receiveCounts: (0..<size).map { count($0, me) },
                                   receiveOffsets: receiveOffsets)
                return receive
            }
            for (me, receive) in results.enumerated() {
                let expected = (0..<size).flatMap { s -> [Float] in (0..<count(s, me)).map { value(s, me, $0) } + [-1, -1] }
                XCTAssertEqual(receive, expected, "size \(size) rank \(me)")
            }
            if size > 1 { XCTAssertTrue((0..<size).contains { s in (0..<size).contains { count(s, $0) == 0 } }) }
        }
    }

    func testAlltoall() throws {
        for size in sizes {
            let results = try LocalCommunicator.run(ranks: size) { comm -> [Int32] in
                let send = (0..<size).flatMap { d in (0..<2).map { Int32(comm.rank * 100 + d * 10 + $0) } }
                return try comm.alltoall(send, countPerRank: 2)
            }
            for (me, received) in results.enumerated() {
                XCTAssertEqual(received, (0..<size).flatMap { s in (0..<2).map { Int32(s * 100 + me * 10 + $0) } },
                               "size \(size) rank \(me)")
            }
        }
    }

    /// Messages sent before the receive is posted, FIFO per tag, matching by tag, a receive that
    /// waits for its send, a ring and a send to oneself.
    func testSendAndReceive() throws {
        for size in 2...4 {
            let results = try LocalCommunicator.run(ranks: size) { comm -> [Int64] in
                var got: [Int64] = []
                func send(_ value: Int64, to destination: Int, tag: Int) throws {
                    var v = value
                    try comm.send(&v, count: 8, to: destination, tag: tag)
                }
                func receive(from source: Int, tag: Int) throws {
                    var v: Int64 = 0
                    try comm.receive(&v, count: 8, from: source, tag: tag)
                    got.append(v)
                }
                if comm.rank == 0 {
                    try send(1, to: 1, tag: 7)
                    try send(2, to: 1, tag: 7)
                    try send(3, to: 1, tag: 8)
                }
                try comm.barrier()                    // those sends completed before any receive is posted
                if comm.rank == 1 {
                    try receive(from: 0, tag: 8)
                    try receive(from: 0, tag: 7)
                    try receive(from: 0, tag: 7)
                    try receive(from: 0, tag: 9)      // posted before rank 0 sends it
                }
                if comm.rank == 0 {
                    Thread.sleep(forTimeInterval: 0.05)
                    try send(4, to: 1, tag: 9)
                }
                try send(Int64(100 + comm.rank), to: (comm.rank + 1) % size, tag: 1)
                try receive(from: (comm.rank + size - 1) % size, tag: 1)
                try send(Int64(200 + comm.rank), to: comm.rank, tag: 2)
                try receive(from: comm.rank, tag: 2)
                return got
            }
            XCTAssertEqual(results[1], [3, 1, 2, 4, 100, 201], "size \(size)")
            for rank in [0] + Array(2..<size) {
                XCTAssertEqual(results[rank], [Int64(100 + (rank + size - 1) % size), Int64(200 + rank)], "size \(size) rank \(rank)")
            }
        }
    }

    func testReceiveOfTheWrongSizeThrows() {
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 2) { comm in
            var v: Int64 = 42
            if comm.rank == 0 { try comm.send(&v, count: 8, to: 1, tag: 0) }
            if comm.rank == 1 { try comm.receive(&v, count: 4, from: 0, tag: 0) }
        }) { error in
            XCTAssertEqual((error as? CommunicationError)?.message, "rank 1 expects 4 bytes from rank 0 with tag 0, got 8")
        }
    }

    /// No rank leaves the barrier before every rank has arrived (the last one arrives late).
    func testBarrier() throws {
        for size in sizes {
            let arrivals = Recorder<Bool>()
            let seen = try LocalCommunicator.run(ranks: size) { comm -> Int in
                if comm.rank == size - 1 { Thread.sleep(forTimeInterval: 0.05) }
                arrivals[comm.rank] = true
                try comm.barrier()
                return arrivals.all.count
            }
            XCTAssertEqual(seen, Array(repeating: size, count: size))
        }
    }

    /// Four ranks split by parity with keys that reverse the odd ranks; each subgroup gathers
    /// its members' old ranks and sums them. The world still works afterwards.
    func testSplitIntoTwoColorsWithCustomKeys() throws {
        let keys = [0, 2, 1, 0]
        let results = try LocalCommunicator.run(ranks: 4) { comm -> [Float] in
            let half = try unwrap(comm.split(color: comm.rank % 2, key: keys[comm.rank]))
            var members = [Float](repeating: -1, count: half.size)
            try half.allgather([Float(comm.rank)], count: 1, into: &members)
            var sum: [Float] = [Float(comm.rank)]
            try half.allreduceSum(&sum, count: 1)
            var world: [Float] = [1]
            try comm.allreduceSum(&world, count: 1)
            return [Float(half.rank), Float(half.size)] + members + sum + world
        }
        XCTAssertEqual(results, [[0, 2, 0, 2, 2, 4],    // evens: keys 0, 1 keep the order
                                 [1, 2, 3, 1, 4, 4],    // odds: keys 2, 0 put rank 3 first
                                 [1, 2, 0, 2, 2, 4],
                                 [0, 2, 3, 1, 4, 4]])
    }

    /// Equal keys keep the old order; a nil color gets no communicator; a group of one splits too.
    func testSplitWithEqualKeysAndNilColor() throws {
        let results = try LocalCommunicator.run(ranks: 3) { comm -> [Int] in
            guard let group = try comm.split(color: comm.rank == 1 ? nil : 5, key: 1) else { return [] }
            let alone = try unwrap(group.split(color: group.rank, key: 0))
            let none = try group.split(color: nil, key: 0)
            return [group.rank, group.size, alone.rank, alone.size, none == nil ? 1 : 0]
        }
        XCTAssertEqual(results, [[0, 2, 0, 1, 1], [], [1, 2, 0, 1, 1]])
    }

    /// Pairs split from the world, then each pair reversed; collectives interleave across levels.
    func testNestedSplit() throws {
        let results = try LocalCommunicator.run(ranks: 4) { comm -> [Float] in
            let pair = try unwrap(comm.split(color: comm.rank / 2, key: comm.rank))
            let reversed = try unwrap(pair.split(color: 0, key: -pair.rank))
            var order = [Float](repeating: -1, count: 2)
            try reversed.allgather([Float(comm.rank)], count: 1, into: &order)
            var world: [Float] = [Float(comm.rank)]
            try comm.allreduceSum(&world, count: 1)
            var pairSum: [Float] = [Float(comm.rank)]
            try pair.allreduceSum(&pairSum, count: 1)
            return [Float(reversed.rank)] + order + world + pairSum
        }
        XCTAssertEqual(results, [[1, 1, 0, 6, 1], [0, 1, 0, 6, 1], [1, 3, 2, 6, 5], [0, 3, 2, 6, 5]])
    }

    /// Many mixed operations back to back, so deposit slots and mailboxes are reused constantly.
    func testManyMixedOperations() throws {
        let mismatches = try LocalCommunicator.run(ranks: 3) { comm -> Int in
            var wrong = 0
            for step in 0..<300 {
                let n = 1 + step % 17
                var values = (0..<n).map { Float(comm.rank + step + $0) }
                try comm.allreduceSum(&values, count: n)
                wrong += (0..<n).filter { values[$0] != Float(3 * (step + $0) + 3) }.count
                let received = try comm.alltoall((0..<3).map { Int32(comm.rank * 1000 + step + $0) }, countPerRank: 1)
                wrong += received == (0..<3).map { Int32($0 * 1000 + step + comm.rank) } ? 0 : 1
                var token = Int32(comm.rank == step % 3 ? step : -1)
                try comm.broadcast(&token, count: 4, root: step % 3)
                wrong += token == Int32(step) ? 0 : 1
                var message = Int32(step)
                try comm.send(&message, count: 4, to: (comm.rank + 1) % 3, tag: step % 2)
                try comm.receive(&message, count: 4, from: (comm.rank + 2) % 3, tag: step % 2)
                wrong += message == Int32(step) ? 0 : 1
            }
            return wrong
        }
        XCTAssertEqual(mismatches, [0, 0, 0])
    }

    /// Ranks passing different counts, or entering different collectives, all get an error.
    func testMismatchedCollectivesThrowOnEveryRank() {
        let errors = Recorder<String>()
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 2) { comm in
            do {
                var values = [Float](repeating: 1, count: 3 + comm.rank)
                try comm.allreduceSum(&values, count: values.count)
            } catch let error as CommunicationError {
                errors[comm.rank] = error.message
            }
            var gathered: [Float] = [0, 0]
            if comm.rank == 0 { try comm.barrier() } else { try comm.allgather([1], count: 1, into: &gathered) }
        }) { error in
            XCTAssertEqual((error as? CommunicationError)?.message, "ranks entered different operations: [\"barrier\", \"allgather\"]")
        }
        XCTAssertEqual(errors.all, [0: "ranks passed different counts: [3, 4]", 1: "ranks passed different counts: [3, 4]"])
    }

    /// Rank 1 throws while the others wait in a world allreduce, a subgroup barrier and a
    /// subgroup receive: all are released at once with "rank 1 failed", and `run` rethrows
    /// rank 1's own error after every thread has finished.
    func testFailureReleasesRanksWaitingInCollectivesAndReceives() {
        let released = Recorder<String>()
        let finished = Recorder<Bool>()
        let start = Date()
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 4) { comm in
            defer { finished[comm.rank] = true }
            let half = try unwrap(comm.split(color: comm.rank % 2, key: comm.rank))
            do {
                switch comm.rank {
                case 0:
                    var values: [Float] = [1]
                    try comm.allreduceSum(&values, count: 1)
                case 1:
                    Thread.sleep(forTimeInterval: 0.1)
                    throw RankFailure(rank: 1)
                case 2:
                    try half.barrier()
                default:
                    var v: Int64 = 0
                    try half.receive(&v, count: 8, from: 0, tag: 0)
                }
            } catch let error as CommunicationError {
                released[comm.rank] = "\(error.operation): \(error.message)"
                throw error
            }
        }) { error in
            XCTAssertEqual(error as? RankFailure, RankFailure(rank: 1))
        }
        XCTAssertLessThan(seconds(since: start), 5)
        XCTAssertEqual(released.all, [0: "allreduceSum: rank 1 failed", 2: "barrier: rank 1 failed",
                                      3: "receive: rank 1 failed"])
        XCTAssertEqual(finished.all.count, 4)
    }

    /// A rank entering a collective after the failure throws at once; the error reported is the
    /// failed rank's, not that of a lower rank which failed (with its own error type) only
    /// because the group did.
    func testRunRethrowsTheOriginalFailureNotTheConsequences() {
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 3) { comm in
            if comm.rank == 2 { throw RankFailure(rank: 2) }
            Thread.sleep(forTimeInterval: 0.1)
            do { try comm.barrier() } catch { throw RankFailure(rank: comm.rank) }
        }) { error in
            XCTAssertEqual(error as? RankFailure, RankFailure(rank: 2))
        }
    }

    /// Two ranks failing on their own: the lower one's error is rethrown.
    func testRunRethrowsTheLowestOriginalFailure() {
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 4) { comm in
            if comm.rank == 3 { throw RankFailure(rank: 3) }
            if comm.rank == 1 {
                Thread.sleep(forTimeInterval: 0.05)
                throw RankFailure(rank: 1)
            }
        }) { error in
            XCTAssertEqual(error as? RankFailure, RankFailure(rank: 1))
        }
    }

    /// A rank whose partners never come gives up after the timeout, in a collective and in a receive.
    func testWaitsTimeOut() {
        let comms = LocalCommunicator.group(size: 2, timeout: 0.2)
        let start = Date()
        XCTAssertThrowsError(try comms[0].barrier()) { error in
            XCTAssertEqual((error as? CommunicationError)?.operation, "barrier")
        }
        var v: Int32 = 0
        XCTAssertThrowsError(try comms[1].receive(&v, count: 4, from: 0, tag: 0)) { error in
            XCTAssertEqual((error as? CommunicationError)?.message, "rank 1 waited more than 0.2 s for the other ranks")
        }
        let elapsed = seconds(since: start)
        XCTAssertGreaterThanOrEqual(elapsed, 0.4)
        XCTAssertLessThan(elapsed, 5)
    }
}
