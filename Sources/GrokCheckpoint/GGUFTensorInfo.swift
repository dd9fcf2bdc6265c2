import GrokTensor

/// One tensor's entry in a GGUF file's tensor-info table.
///
/// `dims` is ggml's `ne` order (fastest-varying first), so a `[out, in]` PyTorch matrix has
/// `dims == [in, out]`; `shape` is the numpy order.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// Dimensions in ggml `ne` order (fastest-varying first); 1 to 4 entries, all positive.
    public let dims: [Int]
    /// The element type.
    public let dtype: DType
    /// Where the data starts, relative to the start of the file's data section.
    public let offset: Int

    public init(name: String, dims: [Int], dtype: DType, offset: Int) {
        self.name = name
        self.dims = dims
        self.dtype = dtype
        self.offset = offset
    }

    /// Dimensions in numpy (row-major) order: `dims.reversed()`.
    public var shape: [Int] { Array(dims.reversed()) }

    /// The number of elements: the product of `dims`.
    public var elementCount: Int { dims.reduce(1, *) }

    /// Bytes of data: `ne[0] / blockSize * blockBytes * ne[1] * ne[2] * ne[3]`.
    public var byteCount: Int { dtype.rowBytes(dims.first ?? 1) * dims.dropFirst().reduce(1, *) }
}

/// The names ggml gives its type numbers, so an unsupported type can be named in an error.
func ggmlTypeName(_ type: UInt32) -> String? {
    let names: [UInt32: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
        10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
        17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
        24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
        34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
    ]
    return names[type]
}

/// "F32 (0), F16 (1), Q4_0 (2), Q8_0 (8), BF16 (30)": the types this runtime reads.
var supportedDTypeList: String {
    DType.allCases.sorted { $0.rawValue < $1.rawValue }.map { "\($0.name) (\($0.rawValue))" }
        .joined(separator: ", ")
}
