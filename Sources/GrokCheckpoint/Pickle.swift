#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// A restricted pickle reader for the official Grok-1 checkpoint (grok-architecture.md §2.12): each
// `ckpt-0/tensorNNNNN_000` is one pickle of a numpy array or of a `__main__.QuantizedWeight8bit`.
//
// Nothing is executed and nothing is imported. The reader interprets the opcodes numpy's and
// pickle's own writers emit for those two things (protocols 2-5; layouts studied on pickles that
// numpy 1.26 / 2.x with ml_dtypes 0.2-0.6 write) and refuses everything else with one line naming
// the file, the byte offset and the opcode:
//   - globals only from an allow-list: numpy's `_reconstruct` / `_frombuffer` (under `numpy.core`
//     and `numpy._core`), `numpy.ndarray`, `numpy.dtype`, `_codecs.encode` (protocol 2 bytes),
//     `ml_dtypes.bfloat16`, `__main__.QuantizedWeight8bit`; each may only be used the way those
//     writers use it (REDUCE of a callable, NEWOBJ of the class, BUILD with the matching state);
//   - values: None, bools, ints, strings, bytes, tuples, dicts with string keys, memo references;
//   - dtypes: little-endian f4, i1 and ml_dtypes bfloat16.
// Array payloads stay in the mapped file (zero-copy); only protocol 2's latin-1 strings are copied.

/// The element types a Grok-1 checkpoint holds.
public enum PickleDType: String, Sendable {
    case float32, int8, bfloat16

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float32: return 4
        case .int8: return 1
        case .bfloat16: return 2
        }
    }
}

/// A numpy array rebuilt from a pickle; `bytes` lives as long as its `PickleFile`.
public struct PickleArray: @unchecked Sendable {
    public let dtype: PickleDType
    /// numpy shape (outermost first).
    public let shape: [Int]
    /// Whether the data is in Fortran (column-major) order rather than C (row-major) order.
    public let fortranOrder: Bool
    public let bytes: UnsafeRawBufferPointer

    /// The step between consecutive indices of each axis, in elements.
    public var strides: [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        let axes = fortranOrder ? Array(shape.indices) : Array(shape.indices.reversed())
        var step = 1
        for axis in axes {
            strides[axis] = step
            step *= shape[axis]
        }
        return strides
    }
}

/// What one checkpoint file holds.
public enum PickleLeaf: @unchecked Sendable {
    case array(PickleArray)
    /// `__main__.QuantizedWeight8bit`: int8 `weight` and bfloat16 `scales` (§2.12).
    case quantized(weight: PickleArray, scales: PickleArray)
}

/// One pickle file, memory-mapped read-only and interpreted when opened.
public final class PickleFile: @unchecked Sendable {
    public let path: String
    public let leaf: PickleLeaf
    private let mapping: MappedFile
    /// Payloads the file did not hold as raw bytes (protocol 2), freed with the file.
    private let copies: [UnsafeMutableRawBufferPointer]

    /// Maps and interprets the pickle at `path`.
    ///
    /// - Throws: ``CheckpointError`` naming the file, the offset and the opcode for anything the
    ///   reader does not accept; nothing in the file is ever executed.
    public init(path: String) throws {
        mapping = try MappedFile(path: path, what: "pickle file")
        var machine = PickleMachine(file: path, bytes: mapping.bytes)
        do {
            leaf = try machine.run()
            copies = machine.copies
        } catch {
            machine.copies.forEach { $0.deallocate() }
            throw error
        }
        self.path = path
    }

    deinit { copies.forEach { $0.deallocate() } }

    /// Drops the whole pages of `bytes` (a range of this mapping) from resident memory; reading
    /// them again faults them back in from the page cache.
    func evict(_ bytes: UnsafeRawBufferPointer) { mapping.evict(bytes) }
}
