/// Element types of weight tensors, numbered as ggml numbers them (GGUF `ggml_type`).
/// Quantized types store blocks of `blockSize` elements in `blockBytes` bytes.
public enum DType: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q8_0 = 8
    case bf16 = 30

    /// Elements per block (1 for plain floats).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q8_0: return 32
        }
    }

    /// Bytes per block: Q8_0 = f16 scale + 32 int8; Q4_0 = f16 scale + 16 bytes of nibbles.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0: return 34
        case .q4_0: return 18
        }
    }

    /// Bytes of a row of `count` elements; `count` must be a multiple of `blockSize`.
    public func rowBytes(_ count: Int) -> Int { count / blockSize * blockBytes }

    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q8_0: return "Q8_0"
        case .q4_0: return "Q4_0"
        }
    }

    public var description: String { name }

    /// Parses "f32", "F16", "bf16", "q8_0", … (case-insensitive).
    public init?(name: String) {
        guard let t = DType.allCases.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
        self = t
    }
}
