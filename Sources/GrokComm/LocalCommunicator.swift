import Foundation

/// A communicator whose ranks are threads of one process, for tests (MPI can be initialised only
/// once per process, so distributed logic is tested with threads as ranks).
///
/// Semantics follow MPI: `allreduceSum` adds the contributions in rank order 0..<size on every
/// rank, so every rank gets a bitwise identical result; the other collectives copy exactly.
/// `send` copies the bytes into a mailbox and returns at once; `receive` takes the oldest message
/// with the same (source, destination, tag) and blocks until there is one. Every rank of a group
/// must enter the same collectives in the same order with matching arguments; a mismatch that all
/// ranks can see (different operations, counts or roots) throws on every rank.
///
/// When a rank's body throws in `run`, the group and every group split from it are marked failed:
/// each rank waiting in (or later entering) any operation of those groups throws
/// `CommunicationError(message: "rank N failed")`, N being the failed rank in the group `run`
/// started. Every wait also gives up after a safety timeout instead of hanging.
public final class LocalCommunicator: Communicator {
    public let rank: Int
    public var size: Int { group.size }
    let group: LocalGroup
    /// This thread's rank in the group the family started from (the rank `run` gave it).
    let worldRank: Int

    init(group: LocalGroup, rank: Int, worldRank: Int) {
        self.group = group
        self.rank = rank
        self.worldRank = worldRank
    }

    /// A new group of `size` ranks; rank r at index r. Each must be used by its own thread.
    /// A wait longer than `timeout` seconds throws.
    public static func group(size: Int, timeout: Double = 120) -> [LocalCommunicator] {
        precondition(size >= 1, "a group needs at least one rank, got \(size)")
        let group = LocalGroup(size: size, family: LocalFamily(timeout: timeout))
        return (0..<size).map { LocalCommunicator(group: group, rank: $0, worldRank: $0) }
    }

    /// Runs `body` on `ranks` new threads (16 MiB stacks), one per rank of a new group, waits for
    /// all of them and returns their results in rank order. When ranks throw, rethrows the error
    /// of the lowest rank that failed by itself, not of those that failed only because the group
    /// did (threads released by the group's failure).
    public static func run<T>(ranks: Int, _ body: @escaping (Communicator) throws -> T) throws -> [T] {
        let communicators = group(size: ranks)
        let family = communicators[0].group.family
        let results = ResultSlots<T>(count: ranks)
        let finished = DispatchGroup()
        for communicator in communicators {
            let thread = Thread {
                let result = Result { try body(communicator) }
                if case .failure = result { family.fail(worldRank: communicator.worldRank) }
                results.set(communicator.rank, result)
                finished.leave()
            }
            thread.stackSize = 16 << 20
            finished.enter()
            thread.start()
        }
        finished.wait()
        let outcomes = (0..<ranks).map { results[$0] }
        let failures = outcomes.enumerated().compactMap { rank, outcome -> (rank: Int, error: Error)? in
            if case .failure(let error) = outcome { return (rank, error) }
            return nil
        }
        if let first = failures.first {
            let interrupted = family.interruptedRanks
            throw (failures.first { !interrupted.contains($0.rank) } ?? first).error
        }
        return try outcomes.map { try $0.get() }
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        let sum = try exchange("allreduceSum", Block(UnsafePointer(buffer), count: count)) { all -> [Float] in
            try Self.requireSame(all.map(\.count), "counts", "allreduceSum")
            var sum = Array(UnsafeBufferPointer(start: all[0].start, count: count))
            for block in all.dropFirst() {
                for i in 0..<count { sum[i] += block.start[i] }
            }
            return sum
        }
        // Written only now that every rank has read every buffer.
        sum.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: count) }
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, count: Int, root: Int) throws {
        try requireRank(root, "broadcast", role: "root")
        try exchange("broadcast", Bytes(start: UnsafeRawPointer(buffer), count: count, root: root)) { all in
            try Self.requireSame(all.map(\.count), "counts", "broadcast")
            try Self.requireSame(all.map(\.root), "roots", "broadcast")
            if rank != root { buffer.copyMemory(from: all[root].start, byteCount: count) }
        }
    }

    public func allgather(_ send: UnsafePointer<Float>, count: Int, into result: UnsafeMutablePointer<Float>) throws {
        try exchange("allgather", Block(send, count: count)) { all in
            try Self.requireSame(all.map(\.count), "counts", "allgather")
            for (r, block) in all.enumerated() where result + r * count != block.start {
                (result + r * count).update(from: block.start, count: count)
            }
        }
    }

    public func alltoallv(_ send: UnsafePointer<Float>, sendCounts: [Int], sendOffsets: [Int],
                          into receive: UnsafeMutablePointer<Float>, receiveCounts: [Int], receiveOffsets: [Int]) throws {
        guard [sendCounts, sendOffsets, receiveCounts, receiveOffsets].allSatisfy({ $0.count == size }) else {
            throw CommunicationError(operation: "alltoallv", message: "counts and offsets need \(size) entries each")
        }
        try exchange("alltoallv", Scatter(start: send, counts: sendCounts, offsets: sendOffsets)) { all in
            for (source, from) in all.enumerated() {
                let count = from.counts[rank]
                guard count == receiveCounts[source] else {
                    throw CommunicationError(operation: "alltoallv", message:
                        "rank \(rank) expects \(receiveCounts[source]) floats from rank \(source), which sends \(count)")
                }
                (receive + receiveOffsets[source]).update(from: from.start + from.offsets[rank], count: count)
            }
        }
    }

    public func alltoall(_ send: [Int32], countPerRank: Int) throws -> [Int32] {
        guard send.count == countPerRank * size else {
            throw CommunicationError(operation: "alltoall", message:
                "\(send.count) values are not \(size) blocks of \(countPerRank)")
        }
        return try exchange("alltoall", send) { all in
            try Self.requireSame(all.map(\.count), "counts", "alltoall")
            return all.flatMap { $0[rank * countPerRank ..< (rank + 1) * countPerRank] }
        }
    }

    public func send(_ buffer: UnsafeRawPointer, count: Int, to destination: Int, tag: Int) throws {
        try requireRank(destination, "send", role: "destination")
        let message = Array(UnsafeRawBufferPointer(start: buffer, count: count))
        try group.post(message, to: MailboxKey(source: rank, destination: destination, tag: tag), worldRank: worldRank)
    }

    public func receive(_ buffer: UnsafeMutableRawPointer, count: Int, from source: Int, tag: Int) throws {
        try requireRank(source, "receive", role: "source")
        let message = try group.take(MailboxKey(source: source, destination: rank, tag: tag), worldRank: worldRank)
        guard message.count == count else {
            throw CommunicationError(operation: "receive", message:
                "rank \(rank) expects \(count) bytes from rank \(source) with tag \(tag), got \(message.count)")
        }
        message.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: count) }
    }

    public func barrier() throws {
        try exchange("barrier", ()) { _ in }
    }

    /// Two exchanges: every rank's (color, key), then the new group object, made by the lowest
    /// old rank of each color, so all members of a color share it.
    public func split(color: Int?, key: Int) throws -> Communicator? {
        let choices = try exchange("split", SplitChoice(color: color, key: key)) { $0 }
        let members = choices.indices
            .filter { color != nil && choices[$0].color == color }
            .sorted { (choices[$0].key, $0) < (choices[$1].key, $1) }
        let creator = members.min()
        let made = rank == creator ? LocalGroup(size: members.count, family: group.family) : nil
        let shared = try exchange("split", made) { $0 }
        guard let creator, let newGroup = shared[creator] else { return nil }
        return LocalCommunicator(group: newGroup, rank: members.firstIndex(of: rank)!, worldRank: worldRank)
    }

    /// Marks the group failed, then stops the process: ranks are threads, so one cannot end alone.
    public func abort(code: Int32) -> Never {
        group.family.fail(worldRank: worldRank)
        fatalError("LocalCommunicator: rank \(rank) aborted the job with code \(code)")
    }

    private func exchange<Deposit, Output>(_ operation: String, _ mine: Deposit,
                                           read: ([Deposit]) throws -> Output) throws -> Output {
        try group.exchange(operation, rank: rank, worldRank: worldRank, mine, read: read)
    }

    private func requireRank(_ other: Int, _ operation: String, role: String) throws {
        guard (0..<size).contains(other) else {
            throw CommunicationError(operation: operation, message: "\(role) \(other) is not a rank of a group of \(size)")
        }
    }

    private static func requireSame<Value: Equatable>(_ values: [Value], _ what: String, _ operation: String) throws {
        guard values.allSatisfy({ $0 == values[0] }) else {
            throw CommunicationError(operation: operation, message: "ranks passed different \(what): \(values)")
        }
    }
}

// MARK: - Deposits

/// `count` floats at `start`.
private struct Block {
    let start: UnsafePointer<Float>
    let count: Int
    init(_ start: UnsafePointer<Float>, count: Int) {
        self.start = start
        self.count = count
    }
}

private struct Bytes {
    let start: UnsafeRawPointer
    let count: Int
    let root: Int
}

/// One rank's alltoallv send side: `counts[r]` floats at `start + offsets[r]` for rank r.
private struct Scatter {
    let start: UnsafePointer<Float>
    let counts: [Int]
    let offsets: [Int]
}

private struct SplitChoice {
    let color: Int?
    let key: Int
}

// MARK: - Shared state

/// What all groups split from one original group share: one lock (with its condition), the
/// failure mark and the safety timeout.
final class LocalFamily: @unchecked Sendable {
    let condition = NSCondition()
    let timeout: Double
    /// The first rank marked failed, in the original group.
    private var failedRank: Int?
    /// Ranks (in the original group) that threw because of the failure rather than by themselves.
    private var interrupted: Set<Int> = []

    init(timeout: Double) { self.timeout = timeout }

    var interruptedRanks: Set<Int> {
        condition.lock()
        defer { condition.unlock() }
        return interrupted
    }

    /// Marks the family failed (keeping the first failed rank) and wakes every waiting rank.
    func fail(worldRank: Int) {
        condition.lock()
        defer { condition.unlock() }
        if failedRank == nil { failedRank = worldRank }
        condition.broadcast()
    }

    /// Throws if the family has failed. Call with the lock held.
    func checkHealthy(_ operation: String, worldRank: Int) throws {
        guard let failedRank else { return }
        interrupted.insert(worldRank)
        throw CommunicationError(operation: operation, message: "rank \(failedRank) failed")
    }

    /// Waits (with the lock held) until `done` holds; throws when the family fails first or the
    /// timeout passes.
    func wait(_ operation: String, worldRank: Int, until done: () -> Bool) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !done() {
            try checkHealthy(operation, worldRank: worldRank)
            if !condition.wait(until: deadline) && !done() {
                throw CommunicationError(operation: operation, message:
                    "rank \(worldRank) waited more than \(timeout) s for the other ranks")
            }
        }
    }
}

struct MailboxKey: Hashable {
    let source: Int
    let destination: Int
    let tag: Int
}

/// The shared object behind the communicators of one group. A collective is an exchange of
/// deposits in two phases: each rank deposits, waits until all have, reads what it needs from
/// all deposits (the ranks' own buffers, which stay valid since no rank leaves early), then waits
/// until all have read, so the slots can be reused by the next collective.
final class LocalGroup: @unchecked Sendable {
    let size: Int
    let family: LocalFamily
    // All below are guarded by `family.condition`.
    private var slots: [(operation: String, deposit: Any)?]
    private var arrived = 0
    private var departed = 0
    /// Advances each time a phase completes; waiters watch it.
    private var phase = 0
    private var mailboxes: [MailboxKey: [[UInt8]]] = [:]

    init(size: Int, family: LocalFamily) {
        self.size = size
        self.family = family
        slots = Array(repeating: nil, count: size)
    }

    func exchange<Deposit, Output>(_ operation: String, rank: Int, worldRank: Int, _ mine: Deposit,
                                   read: ([Deposit]) throws -> Output) throws -> Output {
        let condition = family.condition
        condition.lock()
        defer { condition.unlock() }
        try family.checkHealthy(operation, worldRank: worldRank)
        slots[rank] = (operation, mine)
        arrived += 1
        try completePhase(of: \.arrived, operation, worldRank: worldRank)
        let all = slots.map { $0! }

        condition.unlock()
        let output = Result { () throws -> Output in
            let deposits = all.compactMap { $0.deposit as? Deposit }
            guard all.allSatisfy({ $0.operation == operation }), deposits.count == size else {
                throw CommunicationError(operation: operation, message:
                    "ranks entered different operations: \(all.map(\.operation))")
            }
            return try read(deposits)
        }
        condition.lock()

        departed += 1
        if try completePhase(of: \.departed, operation, worldRank: worldRank) {
            slots = Array(repeating: nil, count: size)
        }
        return try output.get()
    }

    /// After this rank has counted itself in `counter`: the last rank in resets it, advances the
    /// phase and wakes the others (returning true); the others wait for that.
    @discardableResult
    private func completePhase(of counter: ReferenceWritableKeyPath<LocalGroup, Int>, _ operation: String,
                               worldRank: Int) throws -> Bool {
        if self[keyPath: counter] == size {
            self[keyPath: counter] = 0
            phase += 1
            family.condition.broadcast()
            return true
        }
        let current = phase
        try family.wait(operation, worldRank: worldRank) { phase != current }
        return false
    }

    func post(_ message: [UInt8], to key: MailboxKey, worldRank: Int) throws {
        family.condition.lock()
        defer { family.condition.unlock() }
        try family.checkHealthy("send", worldRank: worldRank)
        mailboxes[key, default: []].append(message)
        family.condition.broadcast()
    }

    func take(_ key: MailboxKey, worldRank: Int) throws -> [UInt8] {
        family.condition.lock()
        defer { family.condition.unlock() }
        try family.checkHealthy("receive", worldRank: worldRank)
        try family.wait("receive", worldRank: worldRank) { mailboxes[key]?.isEmpty == false }
        let message = mailboxes[key]!.removeFirst()
        if mailboxes[key]!.isEmpty { mailboxes[key] = nil }
        return message
    }
}

/// One result per rank, written by the rank's thread and read after all have finished.
private final class ResultSlots<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<T, Error>?]

    init(count: Int) { results = Array(repeating: nil, count: count) }

    func set(_ rank: Int, _ result: Result<T, Error>) {
        lock.lock()
        defer { lock.unlock() }
        results[rank] = result
    }

    subscript(rank: Int) -> Result<T, Error> {
        lock.lock()
        defer { lock.unlock() }
        return results[rank]!
    }
}
