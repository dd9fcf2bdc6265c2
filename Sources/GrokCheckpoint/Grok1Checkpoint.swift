import Foundation
import GrokTensor

/// The official Grok-1 checkpoint (`ckpt-0`: one pickle per parameter, grok-architecture.md §2.12)
/// as a ``TensorSource`` with llama.cpp's GGUF names and dims (§5.3), read without Python.
///
/// - Quantized weights (`QuantizedWeight8bit`: int8 `[in, out]` with bf16 scales per output
///   column, in 1 or 8 groups along the input) are presented as **Q8_0** `[out, in]`: each output
///   row's int8 values in blocks of 32 inputs, with the f16 block scale equal to that row's (that
///   group's) bf16 scale. Lossless: each scale is checked to be exactly representable in f16 and
///   each scale group to be whole Q8_0 blocks, or the tensor is refused with a one-line error.
/// - The embedding, norms and router are F32 (the router transposed from `[d, E]` to `[E, d]`);
///   the output head is tied to `token_embd.weight`.
///
/// Files are mapped and interpreted on first use and checked against the configuration. `block`
/// copies (and transposes) only the rows and columns asked for into memory this source owns, then
/// drops the file pages it read; whole F32 rows are zero-copy views. `release` frees a copy or
/// drops mapped pages. The configuration comes from `config.json` beside `ckpt-0`, or is the
/// official one (``Grok1CheckpointConfig``); the tokenizer from `tokenizer.model`.
/// `GGUFTensorInfo.offset` is 0: the tensors are assembled, not stored in one data section.
public final class Grok1Checkpoint: TensorSource, @unchecked Sendable {
    /// The `ckpt-0` directory.
    public let path: String
    /// The configuration as `grok.*` keys and `tokenizer.model` as `tokenizer.ggml.*` keys (no tensors).
    public let metadataFile: GGUFFile
    public let config: Grok1CheckpointConfig
    /// Where the configuration came from, for messages.
    public let configSource: String

    private let leaves: [String: Grok1Leaf]
    private let lock = NSLock()
    private var opened: [Int: OpenedLeaf] = [:]
    private var copies: Set<UnsafeMutableRawPointer> = []

    /// A leaf's file, checked: its values (f32 array or int8 weight) and, when quantized, its bf16
    /// scales `[(E,) G, N]` (each exactly representable in f16) and G.
    private struct OpenedLeaf {
        let file: PickleFile
        let values: PickleArray
        let scales: PickleArray?
        let groups: Int
    }

    /// Opens the checkpoint in `directory`: a directory holding `ckpt-0/` (and optionally
    /// `config.json`), or `ckpt-0` itself. `tokenizer.model` is looked for in `directory`, beside
    /// `ckpt-0` and one level up (the official repository layout); without one the metadata has no
    /// tokenizer. The metadata GGUF is written under `temporaryDirectory` and unlinked once mapped.
    ///
    /// - Throws: ``CheckpointError`` for a missing or extra file, an invalid config.json or
    ///   tokenizer.model, or a tokenizer whose size is not the vocabulary's.
    public init(directory: String, temporaryDirectory: String = NSTemporaryDirectory()) throws {
        let fm = FileManager.default
        let root: String
        (path, root) = try Self.locate(directory)
        let configPath = (root as NSString).appendingPathComponent("config.json")
        if fm.fileExists(atPath: configPath) {
            config = try Grok1CheckpointConfig(contentsOf: configPath)
            configSource = configPath
        } else {
            config = .official
            configSource = "the official Grok-1 values (no config.json beside ckpt-0)"
        }
        let all = Grok1Layout.leaves(config)
        try Self.checkFiles(all, in: path, configSource: configSource)
        leaves = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

        var writer = GGUFWriter()
        for (key, value) in config.ggufMetadata { writer.set(key, value) }
        let candidates = [directory, root, (root as NSString).deletingLastPathComponent]
        if let tokenizerPath = candidates.map({ ($0 as NSString).appendingPathComponent("tokenizer.model") }).first(where: fm.fileExists(atPath:)) {
            let tokenizer = try SentencePieceModel(path: tokenizerPath)
            guard tokenizer.pieces.count == config.vocabularySize else {
                throw CheckpointError(file: tokenizerPath, field: "pieces", expected: "\(config.vocabularySize) (vocab_size from \(configSource))",
                                      found: "\(tokenizer.pieces.count)")
            }
            for (key, value) in tokenizer.ggufMetadata { writer.set(key, value) }
        }
        metadataFile = try writer.writeAndMapTemporary(in: temporaryDirectory, prefix: "grok1-ckpt")
    }

    /// (`ckpt-0`, the directory holding it) for `directory`, which is either.
    private static func locate(_ directory: String) throws -> (String, String) {
        var isDirectory: ObjCBool = false
        let nested = (directory as NSString).appendingPathComponent("ckpt-0")
        if FileManager.default.fileExists(atPath: nested, isDirectory: &isDirectory), isDirectory.boolValue {
            return (nested, directory)
        }
        if FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(Grok1Layout.fileName(0))) {
            return (directory, (directory as NSString).deletingLastPathComponent)
        }
        let exists = FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue
        throw CheckpointError(file: directory, field: "directory", expected: "a directory holding ckpt-0/, or ckpt-0 itself (tensor00000_000, …)",
                              found: exists ? "neither" : "no such directory")
    }

    /// Every `tensorNNNNN_000` the layout names must exist, and no other.
    private static func checkFiles(_ leaves: [Grok1Leaf], in directory: String, configSource: String) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let present = Set(names.filter { $0.count == 15 && $0.hasPrefix("tensor") && $0.hasSuffix("_000") })
        let expected = Set(leaves.map(\.fileName))
        guard present != expected else { return }
        let missing = expected.subtracting(present).sorted(), extra = present.subtracting(expected).sorted()
        throw CheckpointError(file: directory, field: "files",
                              expected: "\(expected.count) files tensor00000_000 … \(Grok1Layout.fileName(expected.count - 1)) (2 + 12 per layer; shape from \(configSource))",
                              found: "\(present.count)" + (missing.first.map { ", \($0) missing" } ?? "") + (extra.first.map { ", \($0) extra" } ?? ""))
    }

    deinit { copies.forEach { $0.deallocate() } }

    public func tensor(_ name: String) -> GGUFTensorInfo? { leaves[name]?.info }

    public func block(_ name: String, expert: Int?, rows: Range<Int>, columns: Range<Int>) throws -> UnsafeRawBufferPointer {
        _ = try checkedLayout(name, expert: expert, rows: rows, columns: columns)
        let leaf = leaves[name]!
        let opened = try open(leaf)
        guard !rows.isEmpty, !columns.isEmpty else { return UnsafeRawBufferPointer(start: allocate(0), count: 0) }
        let strides = opened.values.strides
        let rowStride = leaf.rowAxis.map { strides[$0] } ?? 0, columnStride = strides[leaf.columnAxis]
        let first = (leaf.expertAxis.map { strides[$0] } ?? 0) * (expert ?? 0) + rows.lowerBound * rowStride + columns.lowerBound * columnStride
        let last = first + (rows.count - 1) * rowStride + (columns.count - 1) * columnStride
        let size = opened.values.dtype.size
        let read = UnsafeRawBufferPointer(rebasing: opened.values.bytes[first * size ..< (last + 1) * size])

        if case .float32 = leaf.storage, columnStride == 1, rows.count == 1 || rowStride == columns.count {
            return read   // whole rows, contiguous: a view of the mapping
        }
        let out: UnsafeRawBufferPointer
        switch leaf.storage {
        case .float32:
            let target = allocate(rows.count * columns.count * 4).bindMemory(to: Float.self, capacity: rows.count * columns.count)
            let source = read.baseAddress!.assumingMemoryBound(to: Float.self)
            for r in 0..<rows.count {
                for c in 0..<columns.count { target[r * columns.count + c] = source[r * rowStride + c * columnStride] }
            }
            out = UnsafeRawBufferPointer(start: target, count: rows.count * columns.count * 4)
        case .quantized:
            out = assembleQ8_0(leaf, opened, expert: expert ?? 0, rows: rows, columns: columns,
                               weights: read.baseAddress!.assumingMemoryBound(to: Int8.self), rowStride: rowStride, columnStride: columnStride)
        }
        opened.file.evict(read)
        return out
    }

    /// Q8_0 rows from int8 `weights` (pointing at element [rows.lowerBound, columns.lowerBound]):
    /// block b of row r = the bf16 scale of (r, the group of b's first input) as f16 (exact: checked
    /// when the leaf was opened) + the 32 int8 values.
    /// Works through 64 rows at a time so that every weight cache line is read once.
    private func assembleQ8_0(_ leaf: Grok1Leaf, _ opened: OpenedLeaf, expert: Int, rows: Range<Int>, columns: Range<Int>,
                              weights: UnsafePointer<Int8>, rowStride: Int, columnStride: Int) -> UnsafeRawBufferPointer {
        let blocks = columns.count / 32, rowBytes = DType.q8_0.rowBytes(columns.count)
        let groupRows = leaf.shape[leaf.columnAxis] / opened.groups
        let scales = opened.scales!, steps = scales.strides
        let expertStep = leaf.expertAxis.map { steps[$0] } ?? 0, groupStep = steps[leaf.columnAxis], rowStep = steps[leaf.rowAxis!]
        let out = allocate(rows.count * rowBytes)
        for r0 in stride(from: 0, to: rows.count, by: 64) {
            let r1 = min(r0 + 64, rows.count)
            for b in 0..<blocks {
                let first = expert * expertStep + (columns.lowerBound + 32 * b) / groupRows * groupStep + rows.lowerBound * rowStep
                for r in r0..<r1 {
                    let bf16 = scales.bytes.loadUnaligned(fromByteOffset: 2 * (first + r * rowStep), as: UInt16.self)
                    out.storeBytes(of: Float16(Half.float(bf16: bf16)).bitPattern, toByteOffset: r * rowBytes + 34 * b, as: UInt16.self)
                }
                for j in 0..<32 {
                    let line = weights + (32 * b + j) * columnStride
                    for r in r0..<r1 { out.storeBytes(of: line[r * rowStride], toByteOffset: r * rowBytes + 34 * b + 2 + j, as: Int8.self) }
                }
            }
        }
        return UnsafeRawBufferPointer(start: out, count: rows.count * rowBytes)
    }

    /// Frees `bytes` if this source copied them; otherwise drops their pages from the mapping.
    public func release(_ bytes: UnsafeRawBufferPointer) {
        guard let start = bytes.baseAddress else { return }
        lock.lock()
        defer { lock.unlock() }
        if copies.remove(UnsafeMutableRawPointer(mutating: start)) != nil {
            UnsafeMutableRawPointer(mutating: start).deallocate()
        } else {
            opened.values.forEach { $0.file.evict(bytes) }
        }
    }

    private func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        lock.lock()
        copies.insert(pointer)
        lock.unlock()
        return pointer
    }

    // MARK: - Opening and checking a leaf

    private func open(_ leaf: Grok1Leaf) throws -> OpenedLeaf {
        lock.lock()
        defer { lock.unlock() }
        if let done = opened[leaf.index] { return done }
        let file = try PickleFile(path: (path as NSString).appendingPathComponent(leaf.fileName))
        let checked = try check(leaf, file)
        opened[leaf.index] = checked
        return checked
    }

    /// The file's contents against the layout and the configuration (one-line errors naming the
    /// file and the JAX path).
    private func check(_ leaf: Grok1Leaf, _ file: PickleFile) throws -> OpenedLeaf {
        func failure(_ field: String, _ expected: String, _ found: String) -> CheckpointError {
            CheckpointError(file: file.path, field: "\(leaf.path) \(field)", expected: expected, found: found)
        }
        let shapeNote = " (\(leaf.name); shape from \(configSource))"
        switch (leaf.storage, file.leaf) {
        case (.float32, .array(let a)):
            guard a.dtype == .float32, a.shape == leaf.shape else {
                throw failure("array", "float32 \(leaf.shape)\(shapeNote)", "\(a.dtype.rawValue) \(a.shape)")
            }
            return OpenedLeaf(file: file, values: a, scales: nil, groups: 1)
        case (.quantized, .quantized(let weight, let scales)):
            guard weight.dtype == .int8, weight.shape == leaf.shape else {
                throw failure("weight", "int8 \(leaf.shape)\(shapeNote)", "\(weight.dtype.rawValue) \(weight.shape)")
            }
            let k = leaf.shape[leaf.columnAxis]
            let groups = scales.shape.count == leaf.shape.count ? scales.shape[leaf.columnAxis] : 0
            var scaleShape = leaf.shape
            scaleShape[leaf.columnAxis] = groups
            guard scales.dtype == .bfloat16, scales.shape == scaleShape, groups > 0, k % groups == 0 else {
                throw failure("scales", "bfloat16 with the weight's shape but G groups (G dividing \(k)) along the input axis \(leaf.columnAxis)",
                              "\(scales.dtype.rawValue) \(scales.shape)")
            }
            guard (k / groups) % 32 == 0 else {
                throw failure("scales", "scale groups of a multiple of 32 inputs (whole Q8_0 blocks)", "\(groups) groups of \(k / groups) inputs")
            }
            try checkScales(scales, leaf, failure)
            return OpenedLeaf(file: file, values: weight, scales: scales, groups: groups)
        case (.float32, .quantized):
            throw failure("value", "a float32 array\(shapeNote)", "a QuantizedWeight8bit")
        case (.quantized, .array(let a)):
            throw failure("value", "a QuantizedWeight8bit\(shapeNote)", "a \(a.dtype.rawValue) array \(a.shape)")
        }
    }

    /// Every scale must convert to f16 exactly: finite, of magnitude at most 65504 and a multiple of
    /// 2^-24 (bf16's 8 significant bits then fit f16's 11, subnormals included).
    private func checkScales(_ scales: PickleArray, _ leaf: Grok1Leaf, _ failure: (String, String, String) -> CheckpointError) throws {
        let steps = scales.strides
        let experts = leaf.expertAxis.map { scales.shape[$0] } ?? 1, groups = scales.shape[leaf.columnAxis], n = scales.shape[leaf.rowAxis!]
        let expertStep = leaf.expertAxis.map { steps[$0] } ?? 0, groupStep = steps[leaf.columnAxis], rowStep = steps[leaf.rowAxis!]
        for e in 0..<experts {
            for g in 0..<groups {
                for i in 0..<n {
                    let value = Half.float(bf16: scales.bytes.loadUnaligned(fromByteOffset: 2 * (e * expertStep + g * groupStep + i * rowStep), as: UInt16.self))
                    guard value.isFinite, Float(Float16(value)) == value else {
                        let index = (leaf.expertAxis == nil ? [g, i] : [e, g, i]).map(String.init).joined(separator: ", ")
                        throw failure("scales[\(index)]", "a scale exactly representable in f16 (|s| ≤ 65504, a multiple of 2^-24) for a lossless Q8_0 \(leaf.name)",
                                      "\(value)")
                    }
                }
            }
        }
    }
}
