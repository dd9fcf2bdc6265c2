/// An owned, uninitialised-then-zeroed f32 buffer for activations: `[rows, columns]` row-major.
/// A class so that the forward pass can hand out pointers without copy-on-write surprises.
public final class FloatBuffer: @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        pointer = .allocate(capacity: max(1, rows * columns))
        pointer.initialize(repeating: 0, count: max(1, rows * columns))
    }

    deinit { pointer.deallocate() }

    public var count: Int { rows * columns }

    /// Start of row `r`.
    public subscript(row r: Int) -> UnsafeMutablePointer<Float> { pointer + r * columns }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}
