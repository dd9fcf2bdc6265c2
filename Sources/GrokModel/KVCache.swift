import GrokTensor

/// Keys (after RoPE) and values of every processed position, for a fixed number of sequence slots.
/// Storage per layer: `[slots, capacity, kvHeads, headDim]` f32, so one sequence's keys for one
/// layer are contiguous. Which positions of a slot are valid is the caller's to know (the batch
/// positions it has run); a slot is reused by writing from position 0 again.
public final class KVCache {
    public let slots: Int
    public let capacity: Int
    public let kvHeads: Int       // heads held by this rank
    public let headDim: Int
    private let keys: [Int: UnsafeMutablePointer<Float>]
    private let values: [Int: UnsafeMutablePointer<Float>]

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
    }

    deinit {
        keys.values.forEach { $0.deallocate() }
        values.values.forEach { $0.deallocate() }
    }

    /// Bytes held: keys and values of every slot at full capacity.
    public var byteCount: Int { keys.count * 2 * slots * capacity * kvHeads * headDim * 4 }

    /// Keys of `layer` for `slot`, `[capacity, kvHeads, headDim]`.
    func keys(layer: Int, slot: Int) -> UnsafeMutablePointer<Float> { keys[layer]! + slot * capacity * kvHeads * headDim }
    func values(layer: Int, slot: Int) -> UnsafeMutablePointer<Float> { values[layer]! + slot * capacity * kvHeads * headDim }
}
