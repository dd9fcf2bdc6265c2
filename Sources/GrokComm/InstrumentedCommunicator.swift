import Foundation

/// The kinds of communication `--stats` reports.
public enum CommunicationKind: String, CaseIterable, Codable, Sendable {
    case allreduce
    case allgather
    /// `alltoallv` and `alltoall`.
    case alltoall
    /// `send` and `receive`.
    case pointToPoint
    case broadcast
    case barrier
    case split
}

/// Per-kind totals of one rank's communication. Not thread-safe: one per rank.
public final class CommunicationStats {
    /// Totals for one kind of operation.
    ///
    /// `bytesSent` counts the data this rank contributes: allreduce and allgather its whole
    /// buffer; broadcast the buffer on the root, nothing elsewhere; alltoallv and alltoall what
    /// goes to other ranks (not to itself); send its message. `bytesReceived` mirrors it:
    /// allreduce the reduced buffer; broadcast the buffer except on the root; allgather,
    /// alltoallv and alltoall what comes from other ranks; receive its message.
    /// Barrier and split move no counted bytes.
    public struct Entry: Codable, Equatable, Sendable {
        public var calls = 0
        public var bytesSent = 0
        public var bytesReceived = 0
        /// Wall time spent inside the calls, waiting included.
        public var seconds = 0.0

        public init(calls: Int = 0, bytesSent: Int = 0, bytesReceived: Int = 0, seconds: Double = 0) {
            self.calls = calls
            self.bytesSent = bytesSent
            self.bytesReceived = bytesReceived
            self.seconds = seconds
        }
    }

    private var entries: [CommunicationKind: Entry] = [:]

    public init() {}

    /// Adds one call of `kind`.
    public func record(_ kind: CommunicationKind, seconds: Double, sent: Int, received: Int) {
        entries[kind, default: Entry()].calls += 1
        entries[kind]!.seconds += seconds
        entries[kind]!.bytesSent += sent
        entries[kind]!.bytesReceived += received
    }

    /// The totals for `kind` (zero when it never ran).
    public subscript(kind: CommunicationKind) -> Entry { entries[kind] ?? Entry() }

    /// Wall time spent in all communication.
    public var totalSeconds: Double { entries.values.reduce(0) { $0 + $1.seconds } }

    /// Forgets everything recorded.
    public func reset() { entries = [:] }
}

/// Forwards every call to `inner` and records its kind, bytes and wall time in `stats`
/// (see `CommunicationStats.Entry` for what the byte counts mean). Calls that throw are not
/// recorded. Communicators split from this one record into the same `stats`.
public final class InstrumentedCommunicator: Communicator {
    public let inner: Communicator
    public let stats: CommunicationStats

    public init(_ inner: Communicator, stats: CommunicationStats) {
        self.inner = inner
        self.stats = stats
    }

    public var rank: Int { inner.rank }
    public var size: Int { inner.size }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        let bytes = count * floatSize
        try timed(.allreduce, sent: bytes, received: bytes) { try inner.allreduceSum(buffer, count: count) }
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, count: Int, root: Int) throws {
        try timed(.broadcast, sent: rank == root ? count : 0, received: rank == root ? 0 : count) {
            try inner.broadcast(buffer, count: count, root: root)
        }
    }

    public func allgather(_ send: UnsafePointer<Float>, count: Int, into result: UnsafeMutablePointer<Float>) throws {
        try timed(.allgather, sent: count * floatSize, received: (size - 1) * count * floatSize) {
            try inner.allgather(send, count: count, into: result)
        }
    }

    public func alltoallv(_ send: UnsafePointer<Float>, sendCounts: [Int], sendOffsets: [Int],
                          into receive: UnsafeMutablePointer<Float>, receiveCounts: [Int], receiveOffsets: [Int]) throws {
        try timed(.alltoall, sent: toOthers(sendCounts) * floatSize, received: toOthers(receiveCounts) * floatSize) {
            try inner.alltoallv(send, sendCounts: sendCounts, sendOffsets: sendOffsets,
                                into: receive, receiveCounts: receiveCounts, receiveOffsets: receiveOffsets)
        }
    }

    public func alltoall(_ send: [Int32], countPerRank: Int) throws -> [Int32] {
        let bytes = (size - 1) * countPerRank * MemoryLayout<Int32>.size
        return try timed(.alltoall, sent: bytes, received: bytes) { try inner.alltoall(send, countPerRank: countPerRank) }
    }

    public func send(_ buffer: UnsafeRawPointer, count: Int, to destination: Int, tag: Int) throws {
        try timed(.pointToPoint, sent: count, received: 0) { try inner.send(buffer, count: count, to: destination, tag: tag) }
    }

    public func receive(_ buffer: UnsafeMutableRawPointer, count: Int, from source: Int, tag: Int) throws {
        try timed(.pointToPoint, sent: 0, received: count) { try inner.receive(buffer, count: count, from: source, tag: tag) }
    }

    public func barrier() throws {
        try timed(.barrier, sent: 0, received: 0) { try inner.barrier() }
    }

    public func split(color: Int?, key: Int) throws -> Communicator? {
        let group = try timed(.split, sent: 0, received: 0) { try inner.split(color: color, key: key) }
        return group.map { InstrumentedCommunicator($0, stats: stats) }
    }

    public func abort(code: Int32) -> Never { inner.abort(code: code) }

    private var floatSize: Int { MemoryLayout<Float>.size }

    /// The sum of `counts` without this rank's own entry.
    private func toOthers(_ counts: [Int]) -> Int {
        counts.indices.reduce(0) { $1 == rank ? $0 : $0 + counts[$1] }
    }

    private func timed<Output>(_ kind: CommunicationKind, sent: Int, received: Int,
                               _ body: () throws -> Output) rethrows -> Output {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        stats.record(kind, seconds: seconds, sent: sent, received: received)
        return result
    }
}
