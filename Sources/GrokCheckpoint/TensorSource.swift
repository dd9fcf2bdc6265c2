import Foundation
import GrokTensor

/// Where a model's weights come from: a GGUF file, a rank's shard file, or another checkpoint
/// format presented the same way. Tensors carry llama.cpp's GGUF names, dims (innermost first)
/// and the dtype they have in memory; a 3-D tensor `[cols, rows, E]` holds E experts.
public protocol TensorSource: AnyObject {
    /// What errors name (a file or a directory).
    var path: String { get }
    /// The model's metadata as GGUF keys: architecture, hyperparameters, tokenizer.
    var metadataFile: GGUFFile { get }
    /// The tensor called `name` as this source holds it, or nil.
    func tensor(_ name: String) -> GGUFTensorInfo?
    /// Rows `rows` × columns `columns` of `name` (of expert `expert` for a 3-D tensor), row-major
    /// in the tensor's dtype: `rows.count · dtype.rowBytes(columns.count)` bytes, valid while the
    /// source lives. Whole rows may be zero-copy; a column slice is a copy the source owns.
    func block(_ name: String, expert: Int?, rows: Range<Int>, columns: Range<Int>) throws -> UnsafeRawBufferPointer
    /// `bytes` (from `block`) will not be read again: a copy the source made is freed, mapped
    /// pages are dropped from resident memory. A streaming reader such as `grok shard` calls it
    /// after each block, so its memory stays near one block; a model never calls it.
    func release(_ bytes: UnsafeRawBufferPointer)
}

/// One block of one tensor that a rank holds: rows × columns of a matrix (of one expert of a
/// 3-D expert tensor). Which blocks a rank holds is a pure function of the model and the plan
/// (`WeightBlock.list` in GrokModel), shared by the loader and by `grok shard`, so a shard holds
/// exactly what its rank will ask for.
public struct WeightBlock: Hashable, Codable, Sendable {
    public var name: String
    /// The whole tensor's dims in ggml order (innermost first), checked against the source.
    public var dims: [Int]
    public var expert: Int?
    public var rows: Range<Int>
    public var columns: Range<Int>
    /// A matrix the kernels multiply by (false: a norm or router vector read into f32), i.e. a
    /// block `grok shard --dtype` converts.
    public var isMatrix: Bool

    public init(name: String, dims: [Int], expert: Int? = nil, rows: Range<Int>, columns: Range<Int>, isMatrix: Bool = true) {
        self.name = name
        self.dims = dims
        self.expert = expert
        self.rows = rows
        self.columns = columns
        self.isMatrix = isMatrix
    }

    /// "blk.0.ffn_down_exps.weight expert 3 rows 0..<256 columns 64..<128", for messages.
    public var label: String {
        "\(name)\(expert.map { " expert \($0)" } ?? "") rows \(rows.lowerBound)..<\(rows.upperBound) columns \(columns.lowerBound)..<\(columns.upperBound)"
    }
}

/// Keys a metadata-only GGUF (a shard directory's `model.gguf`, a converted checkpoint's
/// metadata) carries for what a full file's tensors show: the vocabulary size (llama.cpp's
/// `%s.vocab_size`), whether layers have a dense MLP (Grok-2) and whether the head is tied.
public enum MetadataOnlyKeys {
    public static let vocabulary = "grok.vocab_size"
    public static let denseMLP = "grokcluster.dense_mlp"
    public static let tiedEmbeddings = "grokcluster.tied_embeddings"
}

/// Memory a source or a model owns for copied slices; freed with its owner.
public final class ByteArena: @unchecked Sendable {
    private var blocks: [UnsafeMutableRawPointer: Int] = [:]
    private let lock = NSLock()
    public private(set) var byteCount = 0
    public init() {}
    public func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let block = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        lock.lock()
        blocks[block] = bytes
        byteCount += bytes
        lock.unlock()
        return block
    }
    /// Frees the block starting at `start` if this arena allocated it; returns whether it did.
    @discardableResult
    public func free(_ start: UnsafeRawPointer) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let bytes = blocks.removeValue(forKey: UnsafeMutableRawPointer(mutating: start)) else { return false }
        byteCount -= bytes
        UnsafeMutableRawPointer(mutating: start).deallocate()
        return true
    }
    deinit { blocks.keys.forEach { $0.deallocate() } }
}

extension TensorSource {
    /// The tensor `name`, which must exist with exactly `dims` (ggml order).
    public func requireTensor(_ name: String, dims: [Int]) throws -> GGUFTensorInfo {
        guard let tensor = tensor(name) else {
            throw CheckpointError(file: path, field: "tensor \"\(name)\"", expected: "a tensor with dims \(dims)", found: "no such tensor")
        }
        guard tensor.dims == dims else {
            throw CheckpointError(file: path, field: "tensor \"\(name)\" dims",
                                  expected: "\(dims) (ggml ne order; numpy shape \(Array(dims.reversed())))",
                                  found: "\(tensor.dims) (numpy shape \(tensor.shape))")
        }
        return tensor
    }

    /// The layout of `name` as a 2-D matrix (rows of one expert for a 3-D tensor), after checking
    /// the request against it: a one-line `CheckpointError` naming the source and the tensor.
    public func checkedLayout(_ name: String, expert: Int?, rows: Range<Int>, columns: Range<Int>) throws
        -> (info: GGUFTensorInfo, rowsPerExpert: Int, cols: Int) {
        guard let info = tensor(name) else {
            throw CheckpointError(file: path, field: name, expected: "a tensor of that name", found: "none")
        }
        let cols = info.dims.first ?? 1, rowsPerExpert = info.dims.count > 1 ? info.dims[1] : 1
        let experts = info.dims.count > 2 ? info.dims[2] : 1
        if let expert, info.dims.count < 3 || expert < 0 || expert >= experts {
            throw CheckpointError(file: path, field: name, expected: "expert \(expert) of a 3-D expert tensor", found: "dims \(info.dims)")
        }
        guard rows.lowerBound >= 0, rows.upperBound <= rowsPerExpert, columns.lowerBound >= 0, columns.upperBound <= cols else {
            throw CheckpointError(file: path, field: name, expected: "rows \(rows.lowerBound)..<\(rows.upperBound), columns \(columns.lowerBound)..<\(columns.upperBound) inside",
                                  found: "dims \(info.dims)")
        }
        let block = info.dtype.blockSize
        guard columns.lowerBound % block == 0, columns.count % block == 0 else {
            throw CheckpointError(file: path, field: name,
                                  expected: "column slices at multiples of \(block) for \(info.dtype) (asked for columns \(columns.lowerBound)..<\(columns.upperBound))",
                                  found: "a slice inside a block")
        }
        return (info, rowsPerExpert, cols)
    }
}

/// A GGUF file is a source: whole rows are zero-copy views of the mapping; column slices are
/// copied into `arena`, after which the mapped rows are dropped from resident memory.
extension GGUFFile: TensorSource {
    public var metadataFile: GGUFFile { self }

    public func block(_ name: String, expert: Int?, rows: Range<Int>, columns: Range<Int>) throws -> UnsafeRawBufferPointer {
        let (info, rowsPerExpert, cols) = try checkedLayout(name, expert: expert, rows: rows, columns: columns)
        let rowBytes = info.dtype.rowBytes(cols)
        let first = (expert ?? 0) * rowsPerExpert + rows.lowerBound
        let start = data(of: info).baseAddress! + first * rowBytes
        if columns == 0..<cols { return UnsafeRawBufferPointer(start: start, count: rows.count * rowBytes) }
        let sliceBytes = info.dtype.rowBytes(columns.count), offset = info.dtype.rowBytes(columns.lowerBound)
        let copy = arena.allocate(rows.count * sliceBytes)
        for r in 0..<rows.count { (copy + r * sliceBytes).copyMemory(from: start + r * rowBytes + offset, byteCount: sliceBytes) }
        evict(UnsafeRawBufferPointer(start: start, count: rows.count * rowBytes))   // keep the copy, not the whole rows
        return UnsafeRawBufferPointer(start: copy, count: rows.count * sliceBytes)
    }

    public func release(_ bytes: UnsafeRawBufferPointer) {
        if let start = bytes.baseAddress, arena.free(start) { return }
        evict(bytes)
    }
}
