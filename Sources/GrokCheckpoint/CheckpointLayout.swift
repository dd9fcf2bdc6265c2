import Foundation
import GrokTensor

/// How a Hugging Face Grok checkpoint names the tensors of the GGUF layout: tensors held whole,
/// per layer or not, and each expert projection held per expert (`[out, in]`, split over TP rank
/// files along `splitAxis` in Grok-2's release). Shapes are PyTorch `[out, in]`; a GGUF matrix has
/// the same bytes with dims `[in, out]`.
struct CheckpointLayout {
    /// Which dimension of the model a tensor's axis has.
    enum Size { case vocabulary, width, queryWidth, kvWidth, denseWidth, experts }

    struct Common {
        let gguf: String
        let hf: String
        let shape: [Size]
    }

    struct Expert {
        let gguf: String
        let hf: String
        /// 0 = rows (the F outputs of gate/up), 1 = columns (the F inputs of down).
        let splitAxis: Int
    }

    let global: [Common]
    /// Per layer, without the `blk.N.` prefix; `hf` completed by `hfLayer`.
    let layer: [Common]
    let experts: [Expert]
    let hfLayer: (Int, String) -> String
    let hfExpert: (Int, Int, String) -> String

    static func gguf(layer l: Int, _ name: String) -> String { "blk.\(l).\(name)" }
}

/// A checkpoint's safetensors tensors by name, each to be used once: tensors held whole in the
/// common files, and expert matrices as the pieces TP rank files hold (Grok-2's release, §3.6) or
/// whole in a common file (a merged release, a Hugging Face port). Errors name the file.
struct TensorIndex {
    private var common: [String: (SafeTensorsFile, SafeTensorInfo)] = [:]
    private var ranks: [[String: (SafeTensorsFile, SafeTensorInfo)]]
    private var used: Set<String> = []
    private let rankFiles: [[SafeTensorsFile]]
    private let directory: String
    /// What the common files are, for errors: "a *-TP-common.safetensors file".
    private let commonFiles: String

    init(common files: [SafeTensorsFile], ranks: [[SafeTensorsFile]], directory: String, commonFiles: String) throws {
        self.directory = directory
        self.commonFiles = commonFiles
        rankFiles = ranks
        func add(_ file: SafeTensorsFile, to table: inout [String: (SafeTensorsFile, SafeTensorInfo)]) throws {
            for t in file.tensors {
                if let (other, _) = table.updateValue((file, t), forKey: t.name) {
                    throw CheckpointError(file: file.path, field: "tensor \(quoted(t.name))", expected: "one file holding it", found: "it in \(other.path) too")
                }
            }
        }
        for file in files { try add(file, to: &common) }
        self.ranks = try ranks.map { group in
            var table: [String: (SafeTensorsFile, SafeTensorInfo)] = [:]
            for file in group { try add(file, to: &table) }
            return table
        }
    }

    func hasCommon(_ name: String) -> Bool { common[name] != nil }

    /// A tensor held whole in a common file, with `shape`.
    mutating func common(_ name: String, shape: [Int]) throws -> (piece: AssembledTensor.Piece, dtype: DType) {
        guard let (file, info) = common[name] else {
            let found = ranks.first { $0[name] != nil }.map { _ in "it only in TP rank files" } ?? "no such tensor"
            throw CheckpointError(file: directory, field: "tensor \(quoted(name))", expected: "a tensor of shape \(shape) in \(commonFiles)", found: found)
        }
        try check(file, info, shape)
        used.insert(name)
        let columns = shape.count > 1 ? shape[1] : shape.first ?? 1
        return (AssembledTensor.Piece(file: file, data: file.data(of: info), rows: 0..<(shape.count > 1 ? shape[0] : 1), columns: 0..<columns), info.dtype)
    }

    /// An expert matrix of full `shape`: whole in a common file, or split along `axis` over every
    /// rank, pieces concatenated in rank order.
    mutating func split(_ name: String, shape: [Int], axis: Int) throws -> (pieces: [AssembledTensor.Piece], dtype: DType) {
        if hasCommon(name) {
            let whole = try common(name, shape: shape)
            return ([whole.piece], whole.dtype)
        }
        var pieces: [AssembledTensor.Piece] = []
        var dtypes: Set<DType> = []
        var start = 0
        for (rank, table) in ranks.enumerated() {
            guard let (file, info) = table[name] else {
                let names = rankFiles[rank].map { ($0.path as NSString).lastPathComponent }.joined(separator: ", ")
                throw CheckpointError(file: directory, field: "tensor \(quoted(name))", expected: "a piece in TP rank \(rank)'s files (\(names))", found: "none")
            }
            let width = info.shape.count == 2 ? info.shape[axis] : 0
            var expected = shape
            expected[axis] = width
            try check(file, info, expected, note: " (one rank's split along dim \(axis) of \(shape))")
            let range = start..<start + width
            pieces.append(AssembledTensor.Piece(file: file, data: file.data(of: info), rows: axis == 0 ? range : 0..<shape[0],
                                             columns: axis == 1 ? range : 0..<shape[1]))
            dtypes.insert(info.dtype)
            start += width
        }
        guard start == shape[axis] else {
            throw CheckpointError(file: directory, field: "tensor \(quoted(name))", expected: "TP pieces adding up to \(shape[axis]) along dim \(axis)", found: "\(start)")
        }
        guard dtypes.count == 1 else {
            throw CheckpointError(file: directory, field: "tensor \(quoted(name)) dtype", expected: "one dtype in every rank", found: "\(dtypes.map(\.name).sorted())")
        }
        used.insert(name)
        return (pieces, dtypes.first!)
    }

    private func check(_ file: SafeTensorsFile, _ info: SafeTensorInfo, _ shape: [Int], note: String = "") throws {
        guard info.shape == shape else {
            throw CheckpointError(file: file.path, field: "tensor \(quoted(info.name)) shape", expected: "\(shape)\(note)", found: "\(info.shape)")
        }
    }

    /// Marks `name` as used without reading it (a tied copy of another tensor).
    mutating func skip(_ name: String) { used.insert(name) }

    /// Every tensor in the files was used: anything else (scales of a quantized export, extra
    /// layers) would be silently ignored otherwise.
    func checkAllUsed() throws {
        for table in [common] + ranks {
            for (name, (file, _)) in table.sorted(by: { $0.key < $1.key }) where !used.contains(name) {
                throw CheckpointError(file: file.path, field: "tensor \(quoted(name))", expected: "only the tensors of config.json's model", found: "a tensor no GGUF tensor maps to")
            }
        }
    }
}

extension TensorIndex {
    /// Every tensor `layout` names for `config`'s model, shapes checked, as GGUF tensors: 2-D
    /// `[out, in]` become dims `[in, out]`, each expert projection the 3-D `[in, out, E]`.
    mutating func assemble(_ layout: CheckpointLayout, config c: GrokHFConfig) throws -> [AssembledTensor] {
        func size(_ s: CheckpointLayout.Size) -> Int {
            switch s {
            case .vocabulary: return c.vocabularySize
            case .width: return c.width
            case .queryWidth: return c.headCount * c.headDim
            case .kvWidth: return c.kvHeadCount * c.headDim
            case .denseWidth: return c.denseWidth
            case .experts: return c.expertCount
            }
        }
        var out: [AssembledTensor] = []
        func whole(_ t: CheckpointLayout.Common, gguf: String, hf: String) throws {
            let shape = t.shape.map(size)
            let piece = try common(hf, shape: shape)
            out.append(AssembledTensor(info: GGUFTensorInfo(name: gguf, dims: shape.reversed(), dtype: piece.dtype, offset: 0), pieces: [[piece.piece]]))
        }
        for t in layout.global { try whole(t, gguf: t.gguf, hf: t.hf) }
        for l in 0..<c.layerCount {
            for t in layout.layer { try whole(t, gguf: CheckpointLayout.gguf(layer: l, t.gguf), hf: layout.hfLayer(l, t.hf)) }
            for t in layout.experts {
                let shape = t.splitAxis == 0 ? [c.expertWidth, c.width] : [c.width, c.expertWidth]
                var first: (dtype: DType, file: String)?
                var pieces: [[AssembledTensor.Piece]] = []
                for e in 0..<c.expertCount {
                    let name = layout.hfExpert(l, e, t.hf)
                    let split = try split(name, shape: shape, axis: t.splitAxis)
                    if let first, first.dtype != split.dtype {
                        throw CheckpointError(file: split.pieces[0].file.path, field: "tensor \(quoted(name)) dtype",
                                              expected: "\(first.dtype) like expert 0 (\(first.file))", found: split.dtype.name)
                    }
                    first = first ?? (split.dtype, split.pieces[0].file.path)
                    pieces.append(split.pieces)
                }
                let gguf = CheckpointLayout.gguf(layer: l, t.gguf)
                out.append(AssembledTensor(info: GGUFTensorInfo(name: gguf, dims: shape.reversed() + [c.expertCount], dtype: first!.dtype, offset: 0),
                                           pieces: pieces))
            }
        }
        return out
    }
}
