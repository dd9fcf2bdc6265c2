import GrokTensor

/// Keys (after RoPE) and values of every processed position, for a fixed number of sequence slots.
/// Storage per layer: `[slots, capacity, kvHeads, headDim]` f32, so one sequence's keys for one
/// layer are contiguous. A slot is reused by `reset(slot:)`.
public final class KVCache {
    public let slots: Int
    public let capacity: Int
    public let kvHeads: Int       // heads held by this rank
    public let headDim: Int
    private let keys: [Int: UnsafeMutablePointer<Float>]
    private let values: [Int: UnsafeMutablePointer<Float>]
    /// Positions written so far, per slot (the next position to write).
    public private(set) var lengths: [Int]

    /// `layers`: the absolute layer numbers this rank runs.
    public init(layers: Range<Int>, slots: Int, capacity: Int, kvHeads: Int, headDim: Int) {
        self.slots = slots
        self.capacity = capacity
        self.kvHeads = kvHeads
        self.headDim = headDim
        let count = slots * capacity * kvHeads * headDim
        var k: [Int: UnsafeMutablePointer<Float>] = [:], v: [Int: UnsafeMutablePointer<Float>] = [:]
        for l in layers {
            k[l] = .allocate(capacity: max(1, count))
            v[l] = .allocate(capacity: max(1, count))
        }
        keys = k
        values = v
        lengths = Array(repeating: 0, count: slots)
    }

    deinit {
        keys.values.forEach { $0.deallocate() }
        values.values.forEach { $0.deallocate() }
    }

    /// Bytes held: keys and values of every slot at full capacity.
    public var byteCount: Int { keys.count * 2 * slots * capacity * kvHeads * headDim * 4 }

    public func reset(slot: Int) { lengths[slot] = 0 }

    /// Keys of `layer` for `slot`, `[capacity, kvHeads, headDim]`.
    func keys(layer: Int, slot: Int) -> UnsafeMutablePointer<Float> { keys[layer]! + slot * capacity * kvHeads * headDim }
    func values(layer: Int, slot: Int) -> UnsafeMutablePointer<Float> { values[layer]! + slot * capacity * kvHeads * headDim }

    /// Records that `slot` now holds positions `0..<length`.
    func advance(slot: Int, to length: Int) { lengths[slot] = max(lengths[slot], length) }
}
