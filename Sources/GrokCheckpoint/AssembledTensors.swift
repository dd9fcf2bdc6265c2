import Foundation
import GrokTensor

/// A GGUF tensor assembled from rectangles of safetensors files: the pieces each expert's matrix
/// (the only matrix of a 1-D or 2-D tensor) is made of, row-major `[out, in]`.
struct AssembledTensor {
    /// A rectangle of one matrix stored contiguously in one file.
    struct Piece {
        let file: SafeTensorsFile
        let data: UnsafeRawBufferPointer
        let rows: Range<Int>
        let columns: Range<Int>
    }

    let info: GGUFTensorInfo
    let pieces: [[Piece]]
}

/// The tensors of a safetensors checkpoint presented under GGUF names: the `TensorSource` work
/// shared by `Grok2Release` and `Grok1HFPort`. A block inside one piece with all its columns is
/// a zero-copy view of the mapping; any other block is copied into memory this object owns (only
/// what was asked), after which the rows read are dropped from resident memory.
final class AssembledTensors {
    let files: [SafeTensorsFile]
    private let tensors: [String: AssembledTensor]
    private let arena = ByteArena()

    init(_ tensors: [AssembledTensor], files: [SafeTensorsFile]) {
        self.files = files
        self.tensors = Dictionary(uniqueKeysWithValues: tensors.map { ($0.info.name, $0) })
    }

    func tensor(_ name: String) -> GGUFTensorInfo? { tensors[name]?.info }

    /// Rows × columns of `info` (checked by the caller with `checkedLayout`), of `expert` for a 3-D tensor.
    func block(_ info: GGUFTensorInfo, expert: Int?, rows: Range<Int>, columns: Range<Int>) -> UnsafeRawBufferPointer {
        let dtype = info.dtype
        let hits = tensors[info.name]!.pieces[expert ?? 0].filter { $0.rows.overlaps(rows) && $0.columns.overlaps(columns) }
        if hits.count == 1, let p = hits.first, rows.clamped(to: p.rows) == rows, columns == p.columns {
            let rowBytes = dtype.rowBytes(p.columns.count)
            return UnsafeRawBufferPointer(rebasing: p.data[(rows.lowerBound - p.rows.lowerBound) * rowBytes ..< (rows.upperBound - p.rows.lowerBound) * rowBytes])
        }
        let outRow = dtype.rowBytes(columns.count)
        let copy = arena.allocate(rows.count * outRow)
        for p in hits {
            let r = rows.clamped(to: p.rows), c = columns.clamped(to: p.columns)
            let pieceRow = dtype.rowBytes(p.columns.count), width = dtype.rowBytes(c.count)
            let source = p.data.baseAddress! + dtype.rowBytes(c.lowerBound - p.columns.lowerBound)
            let target = copy + dtype.rowBytes(c.lowerBound - columns.lowerBound)
            for row in r {
                (target + (row - rows.lowerBound) * outRow).copyMemory(from: source + (row - p.rows.lowerBound) * pieceRow, byteCount: width)
            }
            // Keep the copy, not the rows it came from.
            p.file.evict(UnsafeRawBufferPointer(rebasing: p.data[(r.lowerBound - p.rows.lowerBound) * pieceRow ..< (r.upperBound - p.rows.lowerBound) * pieceRow]))
        }
        return UnsafeRawBufferPointer(start: copy, count: rows.count * outRow)
    }

    /// Frees `bytes` when they are a copy; drops them from resident memory when they are a view
    /// of a mapping.
    func release(_ bytes: UnsafeRawBufferPointer) {
        guard let start = bytes.baseAddress, !arena.free(start) else { return }
        files.first { $0.file.contains(start) }?.evict(bytes)
    }
}
