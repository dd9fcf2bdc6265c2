import Foundation
import GrokTensor

/// Writes a Grok-1 GGUF in the official checkpoint layout (grok-architecture.md §2.12), for tests
/// and for converting small models: `ckpt-0/tensor00000_000` … in the official file order, each
/// the protocol-4 pickle `pickle.dump` writes for the leaf (numpy 1.26 arrays; quantized weights as
/// `__main__.QuantizedWeight8bit`), plus `config.json` (``Grok1CheckpointConfig``) and, when the
/// GGUF has a SentencePiece vocabulary, `tokenizer.model`.
///
/// Quantization (lossy, as the official release): per output column and scale group, symmetric
/// int8 with scale = bf16(max |w| / 127) and q = w / scale rounded half to even (as numpy's and
/// JAX's `round`), clamped to ±127. Attention `linear` and `moe/linear_1` get the official 8
/// groups along their input, fewer when needed so that each group is whole Q8_0 blocks (a multiple
/// of 32 inputs: a tiny model's 128-wide expert gets 4 groups of 32); the others 1 group. Norms,
/// router and embedding stay f32 (exact). Files are byte-identical to what `pickle.dump(obj,
/// protocol=4)` writes with numpy 1.26 and ml_dtypes 0.3 (checked by hand with Python; not in CI).
/// Memory: one tensor at a time, twice as f32 (GGUF and JAX order) and once as int8.
public enum Grok1CheckpointWriter {
    /// Writes `file` (a Grok-1 GGUF: output tied to the embedding, no dense MLP; tensors of any
    /// dtype, dequantized first) into `directory`, which is created if needed.
    ///
    /// - Throws: ``CheckpointError`` for a GGUF that is not Grok-1 or lacks a tensor, or an I/O failure.
    public static func write(from file: GGUFFile, to directory: String) throws {
        let config = try Grok1CheckpointConfig(gguf: file)
        let checkpoint = (directory as NSString).appendingPathComponent("ckpt-0")
        do {
            try FileManager.default.createDirectory(atPath: checkpoint, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError(file: checkpoint, field: "directory", expected: "a directory that can be created", found: error.localizedDescription)
        }
        for leaf in Grok1Layout.leaves(config) {
            let info = try file.require(leaf.name, dims: leaf.info.dims)
            let values = jaxLayout(Quantizer.dequantize(file.data(of: info), dtype: info.dtype, count: info.elementCount), leaf)
            let path = (checkpoint as NSString).appendingPathComponent(leaf.fileName)
            switch leaf.storage {
            case .float32:
                try values.withUnsafeBytes { try PickleWriter(.array(.float32, shape: leaf.shape, data: $0)).write(to: path) }
            case .quantized(let officialGroups):
                let k = leaf.shape[leaf.columnAxis]
                let groups = (1...officialGroups).last { k % $0 == 0 && (k / $0) % 32 == 0 } ?? officialGroups
                var scaleShape = leaf.shape
                scaleShape[leaf.columnAxis] = groups
                let (weight, scales) = quantize(values, shape: leaf.shape, groups: groups)
                try weight.withUnsafeBytes { w in
                    try scales.withUnsafeBytes { s in
                        try PickleWriter(.quantized(weight: .array(.int8, shape: leaf.shape, data: w),
                                                    scales: .array(.bfloat16, shape: scaleShape, data: s))).write(to: path)
                    }
                }
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try write(Array(try encoder.encode(config)), to: (directory as NSString).appendingPathComponent("config.json"))
        if let tokenizer = try SentencePieceModel(gguf: file) {
            try write(tokenizer.serialized, to: (directory as NSString).appendingPathComponent("tokenizer.model"))
        }
    }

    /// GGUF values (numpy order `[(E,) rows, columns]`) rearranged into the leaf's C-order JAX shape.
    static func jaxLayout(_ values: [Float], _ leaf: Grok1Leaf) -> [Float] {
        var strides = [Int](repeating: 1, count: leaf.shape.count)
        for axis in leaf.shape.indices.dropLast().reversed() { strides[axis] = strides[axis + 1] * leaf.shape[axis + 1] }
        let experts = leaf.expertAxis.map { leaf.shape[$0] } ?? 1, rows = leaf.rowAxis.map { leaf.shape[$0] } ?? 1
        let columns = leaf.shape[leaf.columnAxis]
        let es = leaf.expertAxis.map { strides[$0] } ?? 0, rs = leaf.rowAxis.map { strides[$0] } ?? 0, cs = strides[leaf.columnAxis]
        var out = [Float](repeating: 0, count: values.count)
        for e in 0..<experts {
            for r in 0..<rows {
                for c in 0..<columns { out[e * es + r * rs + c * cs] = values[(e * rows + r) * columns + c] }
            }
        }
        return out
    }

    /// Symmetric int8 per output column (last axis N) and group of K / `groups` inputs (axis -2):
    /// the weight `[(E,) K, N]` as int8 and the scales `[(E,) G, N]` as bf16 bits.
    static func quantize(_ w: [Float], shape: [Int], groups: Int) -> (weight: [Int8], scales: [UInt16]) {
        let n = shape[shape.count - 1], k = shape[shape.count - 2], experts = w.count / (k * n), groupRows = k / groups
        var weight = [Int8](repeating: 0, count: w.count)
        var scales = [UInt16](repeating: 0, count: experts * groups * n)
        for e in 0..<experts {
            for g in 0..<groups {
                let rows = (e * k + g * groupRows) ..< (e * k + (g + 1) * groupRows)
                for column in 0..<n {
                    let amax = rows.reduce(Float(0)) { max($0, abs(w[$1 * n + column])) }
                    let bits = Half.bf16(amax / 127)
                    scales[(e * groups + g) * n + column] = bits
                    let scale = Half.float(bf16: bits)
                    guard scale != 0 else { continue }
                    for row in rows { weight[row * n + column] = Int8(max(-127, min(127, (w[row * n + column] / scale).rounded(.toNearestOrEven)))) }
                }
            }
        }
        return (weight, scales)
    }

    private static func write(_ bytes: [UInt8], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw CheckpointError(file: path, field: "file", expected: "a writable path", found: "cannot write it")
        }
    }
}
