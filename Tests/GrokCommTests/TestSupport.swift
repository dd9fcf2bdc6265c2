import Foundation

/// The error a test rank throws on purpose.
struct RankFailure: Error, Equatable {
    let rank: Int
}

/// Values written by rank threads and read after `LocalCommunicator.run` returns.
final class Recorder<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: Value] = [:]

    subscript(rank: Int) -> Value? {
        get { lock.lock(); defer { lock.unlock() }; return values[rank] }
        set { lock.lock(); defer { lock.unlock() }; values[rank] = newValue }
    }

    var all: [Int: Value] {
        lock.lock()
        defer { lock.unlock() }
        return values
    }
}

/// Seconds since `start`.
func seconds(since start: Date) -> Double { Date().timeIntervalSince(start) }

struct MissingValue: Error {}

/// `value`, or a thrown error when it is nil (for rank bodies, which run off the test thread).
func unwrap<T>(_ value: T?) throws -> T {
    guard let value else { throw MissingValue() }
    return value
}
