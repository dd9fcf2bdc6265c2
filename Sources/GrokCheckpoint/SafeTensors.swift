import Foundation
import GrokTensor

// Hugging Face's safetensors format (huggingface/safetensors README, "Format"):
//   u64 little-endian N | N bytes of UTF-8 JSON header | data
// The header maps each tensor name to {"dtype", "shape" (row-major), "data_offsets": [begin, end]}
// (byte offsets relative to the start of the data) and may hold "__metadata__": {string: string}.
// Writers pad the header with spaces to a multiple of 8 bytes.

/// One tensor of a safetensors file.
public struct SafeTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    /// Row-major (numpy / PyTorch) shape; `[]` for a scalar.
    public let shape: [Int]
    /// Where the data lies, relative to the start of the data section.
    public let dataOffsets: Range<Int>

    public init(name: String, dtype: DType, shape: [Int], dataOffsets: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }
}

extension DType {
    /// The safetensors spelling of the float types this runtime reads from safetensors files.
    static let safetensorsNames: [(DType, String)] = [(.bf16, "BF16"), (.f16, "F16"), (.f32, "F32")]

    /// "BF16", "F16" or "F32"; nil for the quantized types, which safetensors has no name for.
    public var safetensorsName: String? { Self.safetensorsNames.first { $0.0 == self }?.1 }
}

/// A safetensors file, memory-mapped read-only and validated when opened: header length inside
/// the file, a JSON object header, known dtypes (BF16, F16, F32), shapes whose byte counts match
/// their data offsets, data inside the file and no two tensors overlapping. Every failure is a
/// one-line ``CheckpointError`` naming the file and the tensor. Tensor data is not copied.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The largest header the reference implementation accepts (safetensors `MAX_HEADER_SIZE`).
    public static let maximumHeaderBytes = 100_000_000

    public var path: String { file.path }
    /// The `__metadata__` strings.
    public let metadata: [String: String]
    /// The tensors in data order.
    public let tensors: [SafeTensorInfo]
    /// Absolute file offset of the data section (8 + header length).
    public let dataOffset: Int

    let file: MappedFile
    private let index: [String: Int]

    public init(path: String) throws {
        file = try MappedFile(path: path, what: "safetensors file")
        let bytes = file.bytes
        func failure(_ field: String, _ expected: String, _ found: String) -> CheckpointError {
            CheckpointError(file: path, field: field, expected: expected, found: found)
        }
        guard bytes.count >= 8 else {
            throw failure("header length", "8 bytes (a little-endian u64)", "a file of \(bytes.count) bytes")
        }
        let length = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        let available = bytes.count - 8
        guard length <= UInt64(min(available, Self.maximumHeaderBytes)) else {
            throw failure("header length", "at most \(min(available, Self.maximumHeaderBytes)) bytes "
                          + "(the \(available) bytes after it, and at most \(Self.maximumHeaderBytes))", "\(length)")
        }
        dataOffset = 8 + Int(length)
        let headerBytes = Data(bytes[8..<dataOffset])
        guard let object = try? JSONSerialization.jsonObject(with: headerBytes), let header = object as? [String: Any] else {
            let text = String(decoding: headerBytes.prefix(40), as: UTF8.self)
            throw failure("header", "a JSON object of \(length) bytes", "\(quoted(text))\(length > 40 ? "…" : "")")
        }
        let dataBytes = bytes.count - dataOffset

        var metadata: [String: String] = [:]
        if let raw = header["__metadata__"] {
            guard let strings = raw as? [String: String] else {
                throw failure("header \(quoted("__metadata__"))", "an object of strings", "\(type(of: raw))")
            }
            metadata = strings
        }
        var tensors: [SafeTensorInfo] = []
        for (name, raw) in header where name != "__metadata__" {
            tensors.append(try Self.tensor(name, raw, dataBytes: dataBytes, failure: failure))
        }
        tensors.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound) }
        for (previous, next) in zip(tensors, tensors.dropFirst()) where next.dataOffsets.lowerBound < previous.dataOffsets.upperBound {
            throw failure("tensor \(quoted(next.name)) data_offsets",
                          "data not overlapping tensor \(quoted(previous.name)), which ends at \(previous.dataOffsets.upperBound)",
                          "[\(next.dataOffsets.lowerBound), \(next.dataOffsets.upperBound)]")
        }
        self.metadata = metadata
        self.tensors = tensors
        index = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    /// One header entry, checked: dtype, shape, offsets that match the shape and lie inside the data.
    private static func tensor(_ name: String, _ raw: Any, dataBytes: Int,
                               failure: (String, String, String) -> CheckpointError) throws -> SafeTensorInfo {
        let field = "tensor \(quoted(name))"
        guard let entry = raw as? [String: Any] else {
            throw failure(field, "an object with dtype, shape and data_offsets", "\(type(of: raw))")
        }
        let known = DType.safetensorsNames.map(\.1)
        guard let dtypeName = entry["dtype"] as? String else {
            throw failure("\(field) dtype", "a string (one of \(known.joined(separator: ", ")))", "\(entry["dtype"] ?? "nothing")")
        }
        guard let dtype = DType.safetensorsNames.first(where: { $0.1 == dtypeName })?.0 else {
            throw failure("\(field) dtype", "one of \(known.joined(separator: ", ")) (the float types this runtime reads)", quoted(dtypeName))
        }
        guard let shape = integers(entry["shape"]), shape.allSatisfy({ $0 >= 0 }) else {
            throw failure("\(field) shape", "an array of non-negative integers", "\(entry["shape"] ?? "nothing")")
        }
        guard let offsets = integers(entry["data_offsets"]), offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
            throw failure("\(field) data_offsets", "[begin, end] with 0 ≤ begin ≤ end", "\(entry["data_offsets"] ?? "nothing")")
        }
        var count = dtype.blockBytes
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw failure("\(field) shape", "fewer than 2^63 bytes", "\(shape)") }
            count = product
        }
        guard offsets[1] - offsets[0] == count else {
            throw failure("\(field) data_offsets", "\(count) bytes for shape \(shape) \(dtypeName)",
                          "[\(offsets[0]), \(offsets[1])] (\(offsets[1] - offsets[0]) bytes)")
        }
        guard offsets[1] <= dataBytes else {
            throw failure("\(field) data_offsets", "a range inside the \(dataBytes) data bytes after the header",
                          "[\(offsets[0]), \(offsets[1])] (the file is truncated or the header is wrong)")
        }
        return SafeTensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: offsets[0]..<offsets[1])
    }

    /// The whole numbers of a JSON array, or nil.
    private static func integers(_ raw: Any?) -> [Int]? {
        guard let array = raw as? [Any] else { return nil }
        var out: [Int] = []
        for element in array {
            guard let number = element as? NSNumber, let value = Int(exactly: number.doubleValue) else { return nil }
            out.append(value)
        }
        return out
    }

    /// The tensor called `name`, or nil.
    public func tensor(_ name: String) -> SafeTensorInfo? { index[name].map { tensors[$0] } }

    /// The bytes of `tensor` (from this file), inside the mapping.
    public func data(of tensor: SafeTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[dataOffset + tensor.dataOffsets.lowerBound ..< dataOffset + tensor.dataOffsets.upperBound])
    }

    /// Drops the pages of `bytes` (a range of this file's mapping) from resident memory.
    public func evict(_ bytes: UnsafeRawBufferPointer) { file.evict(bytes) }
}
