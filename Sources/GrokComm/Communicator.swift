import Foundation

/// A failed collective: the operation and the library's error text.
public struct CommunicationError: Error, CustomStringConvertible {
    public let operation: String
    public let message: String
    public init(operation: String, message: String) {
        self.operation = operation
        self.message = message
    }
    public var description: String { "\(operation) failed: \(message)" }
}

/// The collectives the runtime uses, over a group of ranks. Implemented over MPI for real runs
/// and in-process (threads as ranks) for tests; the model's forward pass names each call site.
/// Counts are in elements of the named type; ranks are ranks of this communicator.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Element-wise sum of `count` floats across all ranks, result on every rank (in place).
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// Copies `count` bytes from `root` to every rank (in place).
    func broadcast(_ buffer: UnsafeMutableRawPointer, count: Int, root: Int) throws
    /// Concatenates every rank's `count` floats in rank order into `result` (size · count) on every rank.
    func allgather(_ send: UnsafePointer<Float>, count: Int, into result: UnsafeMutablePointer<Float>) throws
    /// Variable all-to-all of floats (MPI_Alltoallv): `sendCounts[r]` floats at `send + sendOffsets[r]`
    /// go to rank r; `receiveCounts[r]` floats from rank r land at `receive + receiveOffsets[r]`.
    func alltoallv(_ send: UnsafePointer<Float>, sendCounts: [Int], sendOffsets: [Int],
                   into receive: UnsafeMutablePointer<Float>, receiveCounts: [Int], receiveOffsets: [Int]) throws
    /// Fixed all-to-all of integers (MPI_Alltoall): `send` holds `size` blocks of `countPerRank`
    /// values, block r going to rank r; returns the `size` blocks received, block r from rank r.
    func alltoall(_ send: [Int32], countPerRank: Int) throws -> [Int32]
    /// Blocking point-to-point send of `count` bytes to `destination` with `tag`.
    func send(_ buffer: UnsafeRawPointer, count: Int, to destination: Int, tag: Int) throws
    /// Blocking receive of exactly `count` bytes from `source` with `tag`.
    func receive(_ buffer: UnsafeMutableRawPointer, count: Int, from source: Int, tag: Int) throws
    func barrier() throws
    /// Collective over this communicator (MPI_Comm_split): ranks passing the same `color` form a
    /// new communicator, ordered by `key` then by rank here; a rank passing nil joins none and
    /// gets nil.
    func split(color: Int?, key: Int) throws -> Communicator?
    /// Ends the whole job (every rank) with `code`; never returns.
    func abort(code: Int32) -> Never
}

extension Communicator {
    /// Broadcasts an array whose length only `root` knows.
    public func broadcast<T: FixedWidthInteger>(_ values: inout [T], root: Int) throws {
        var n = Int64(values.count)
        try broadcast(&n, count: 8, root: root)
        if rank != root { values = [T](repeating: 0, count: Int(n)) }
        if n > 0 { try values.withUnsafeMutableBytes { try broadcast($0.baseAddress!, count: $0.count, root: root) } }
    }

    /// Every rank's bytes, in rank order, on every rank (one broadcast per rank: for small
    /// control messages such as errors and results, not for activations).
    public func allgatherBytes(_ mine: [UInt8]) throws -> [[UInt8]] {
        var all: [[UInt8]] = []
        for r in 0..<size {
            var bytes = r == rank ? mine : []
            try broadcast(&bytes, root: r)
            all.append(bytes)
        }
        return all
    }
}

/// The group of one: every collective is the identity.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func broadcast(_ buffer: UnsafeMutableRawPointer, count: Int, root: Int) throws {}
    public func allgather(_ send: UnsafePointer<Float>, count: Int, into result: UnsafeMutablePointer<Float>) throws {
        if UnsafePointer(result) != send { result.update(from: send, count: count) }
    }
    public func alltoallv(_ send: UnsafePointer<Float>, sendCounts: [Int], sendOffsets: [Int],
                          into receive: UnsafeMutablePointer<Float>, receiveCounts: [Int], receiveOffsets: [Int]) throws {
        (receive + receiveOffsets[0]).update(from: send + sendOffsets[0], count: sendCounts[0])
    }
    public func alltoall(_ send: [Int32], countPerRank: Int) throws -> [Int32] { send }
    public func send(_ buffer: UnsafeRawPointer, count: Int, to destination: Int, tag: Int) throws {
        throw CommunicationError(operation: "send", message: "a single-process group has no rank \(destination) to send to")
    }
    public func receive(_ buffer: UnsafeMutableRawPointer, count: Int, from source: Int, tag: Int) throws {
        throw CommunicationError(operation: "receive", message: "a single-process group has no rank \(source) to receive from")
    }
    public func barrier() throws {}
    public func split(color: Int?, key: Int) throws -> Communicator? { color == nil ? nil : SingleProcessCommunicator() }
    public func abort(code: Int32) -> Never { exit(code) }
}
