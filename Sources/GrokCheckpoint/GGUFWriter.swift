#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import GrokTensor

/// Builds a GGUF (version 3) file: metadata in insertion order, then tensors in insertion order.
///
/// Tensor data is streamed to disk tensor by tensor, so a multi-gigabyte file never sits in memory:
/// pass large tensors as a `producer` closure, called once during ``write(to:)``.
/// Mistakes made while adding (a wrong byte count, a repeated name, bad dims) are remembered and
/// thrown by ``write(to:)`` as a ``CheckpointError`` naming the tensor.
///
/// ```swift
/// var writer = GGUFWriter()
/// writer.set("general.architecture", .string("grok"))
/// writer.addTensor(name: "output_norm.weight", dims: [256], dtype: .f32, bytes: normBytes)
/// try writer.write(to: "tiny.gguf")
/// ```
public struct GGUFWriter {
    /// Alignment of the data section and of every tensor's data. When not 32 the writer records it as
    /// `general.alignment`.
    public let alignment: Int

    private var keys: [String] = []
    private var values: [String: GGUFValue] = [:]
    private var pending: [PendingTensor] = []
    private var names: Set<String> = []
    private var problem: (field: String, expected: String, found: String?)?

    private struct PendingTensor {
        let name: String
        let dims: [Int]
        let dtype: DType
        let byteCount: Int
        let source: Source
    }

    private enum Source {
        case bytes([UInt8])
        case producer(() -> [UInt8])
    }

    /// A writer whose data section and tensors are aligned to `alignment` bytes (a power of two).
    public init(alignment: Int = 32) {
        self.alignment = alignment
        if alignment <= 0 || alignment & (alignment - 1) != 0 || alignment > 1 << 31 {
            problem = ("metadata \(quoted("general.alignment"))", "a power of two (at most 2^31)", "\(alignment)")
        } else if alignment != GGUFParser.defaultAlignment {
            set("general.alignment", .uint32(UInt32(alignment)))
        }
    }

    /// The number of tensors added so far.
    public var tensorCount: Int { pending.count }

    /// Sets metadata `key`. A new key goes last; overwriting a key keeps its position.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    /// Adds a tensor whose data is `bytes` (its length must match `dims` and `dtype`).
    public mutating func addTensor(name: String, dims: [Int], dtype: DType, bytes: [UInt8]) {
        guard let byteCount = check(name: name, dims: dims, dtype: dtype) else { return }
        if bytes.count != byteCount {
            remember("tensor \(quoted(name)) data", "\(byteCount) bytes for dims \(dims) \(dtype)", "\(bytes.count) bytes")
            return
        }
        pending.append(PendingTensor(name: name, dims: dims, dtype: dtype, byteCount: byteCount, source: .bytes(bytes)))
    }

    /// Adds a tensor whose data `producer` returns during ``write(to:)``; its length is checked then.
    /// Only one producer's bytes are alive at a time.
    public mutating func addTensor(name: String, dims: [Int], dtype: DType, producer: @escaping () -> [UInt8]) {
        guard let byteCount = check(name: name, dims: dims, dtype: dtype) else { return }
        pending.append(PendingTensor(name: name, dims: dims, dtype: dtype, byteCount: byteCount,
                                     source: .producer(producer)))
    }

    /// Writes the file: header, metadata, tensor infos, then each tensor's data padded to the
    /// alignment. The file appears at `path` only when complete (it is written next to it, then renamed).
    ///
    /// - Throws: ``CheckpointError`` for a problem recorded while adding, a metadata array whose
    ///   elements differ in type, a producer returning the wrong number of bytes, or an I/O failure.
    /// Writes the file under `directory` with a unique name starting `prefix`, maps it and
    /// unlinks it (the mapping stays valid): an in-memory GGUF, e.g. the metadata a converted
    /// checkpoint presents.
    public func writeAndMapTemporary(in directory: String, prefix: String) throws -> GGUFFile {
        let path = (directory.hasSuffix("/") ? directory : directory + "/") + "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).gguf"
        try write(to: path)
        defer { unlink(path) }
        return try GGUFFile(path: path)
    }

    public func write(to path: String) throws {
        if let problem {
            throw CheckpointError(file: path, field: problem.field, expected: problem.expected, found: problem.found)
        }
        if let value = values["general.alignment"], value.intValue != alignment {
            throw CheckpointError(file: path, field: "metadata \(quoted("general.alignment"))",
                                  expected: "\(alignment) (the writer's alignment)", found: "\(value.typeName) \(value)")
        }

        var header = ByteSink()
        header.append(contentsOf: Array("GGUF".utf8))
        header.append(UInt32(3))
        header.append(UInt64(pending.count))
        header.append(UInt64(keys.count))
        for key in keys {
            header.append(key)
            let value = values[key]!
            header.append(value.valueType.rawValue)
            try header.append(value, file: path, field: "metadata \(quoted(key))")
        }
        var offset = 0
        for tensor in pending {
            header.append(tensor.name)
            header.append(UInt32(tensor.dims.count))
            for d in tensor.dims { header.append(UInt64(d)) }
            header.append(tensor.dtype.rawValue)
            header.append(UInt64(offset))
            offset += padded(tensor.byteCount)
        }
        header.append(contentsOf: [UInt8](repeating: 0, count: padded(header.bytes.count) - header.bytes.count))

        let temporary = "\(path).partial-\(getpid())"
        let output = try FileOutput(path: temporary, reportedAs: path)
        do {
            try output.write(header.bytes)
            for tensor in pending {
                let bytes: [UInt8]
                switch tensor.source {
                case .bytes(let b): bytes = b
                case .producer(let produce): bytes = produce()
                }
                guard bytes.count == tensor.byteCount else {
                    throw CheckpointError(file: path, field: "tensor \(quoted(tensor.name)) data",
                                          expected: "\(tensor.byteCount) bytes for dims \(tensor.dims) \(tensor.dtype)",
                                          found: "\(bytes.count) bytes from its producer")
                }
                try output.write(bytes)
                try output.write([UInt8](repeating: 0, count: padded(bytes.count) - bytes.count))
            }
            try output.close()
            guard rename(temporary, path) == 0 else {
                throw CheckpointError(file: path, field: "file", expected: "a path the finished file can be renamed to",
                                      found: errnoDescription(errno))
            }
        } catch {
            output.discard()
            unlink(temporary)
            throw error
        }
    }

    private func padded(_ n: Int) -> Int { (n + alignment - 1) & ~(alignment - 1) }

    /// Validates a new tensor's name and dims; returns its byte count, or nil after recording a problem.
    private mutating func check(name: String, dims: [Int], dtype: DType) -> Int? {
        let field = "tensor \(quoted(name))"
        guard !names.contains(name) else {
            remember(field, "unique tensor names", "a second tensor with this name")
            return nil
        }
        guard dims.count <= 4 else {
            remember("\(field) n_dims", "at most 4 dimensions", "\(dims.count) (\(dims))")
            return nil
        }
        guard dims.allSatisfy({ $0 > 0 }) else {
            remember("\(field) dims", "positive dimensions", "\(dims)")
            return nil
        }
        let rowLength = dims.first ?? 1
        guard rowLength % dtype.blockSize == 0 else {
            remember("\(field) ne[0]", "a multiple of \(dtype.blockSize) (the \(dtype) block size)", "\(rowLength)")
            return nil
        }
        guard let byteCount = checkedByteCount(dims: dims, dtype: dtype) else {
            remember("\(field) dims", "a tensor smaller than 2^63 elements and bytes", "\(dims)")
            return nil
        }
        names.insert(name)
        return byteCount
    }

    private mutating func remember(_ field: String, _ expected: String, _ found: String?) {
        if problem == nil { problem = (field, expected, found) }
    }
}

/// Little-endian encoding of header fields and metadata values.
private struct ByteSink {
    var bytes: [UInt8] = []

    mutating func append(contentsOf other: [UInt8]) { bytes.append(contentsOf: other) }

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ string: String) {
        append(UInt64(string.utf8.count))
        bytes.append(contentsOf: string.utf8)
    }

    /// A value without its type tag (the caller writes it). Array elements must share one type; an
    /// empty array is written with element type uint8.
    mutating func append(_ value: GGUFValue, file: String, field: String) throws {
        switch value {
        case .uint8(let v): append(v)
        case .int8(let v): append(v)
        case .uint16(let v): append(v)
        case .int16(let v): append(v)
        case .uint32(let v): append(v)
        case .int32(let v): append(v)
        case .uint64(let v): append(v)
        case .int64(let v): append(v)
        case .float32(let v): append(v.bitPattern)
        case .float64(let v): append(v.bitPattern)
        case .bool(let v): append(UInt8(v ? 1 : 0))
        case .string(let s): append(s)
        case .array(let elements):
            let type = elements.first?.valueType ?? .uint8
            append(type.rawValue)
            append(UInt64(elements.count))
            for (i, element) in elements.enumerated() {
                guard element.valueType == type else {
                    throw CheckpointError(file: file, field: field, expected: "an array of one element type (\(type.name))",
                                          found: "element \(i) of type \(element.typeName)")
                }
                try append(element, file: file, field: field)
            }
        }
    }
}

/// A file descriptor written with full-write loops; errors name the final path.
private final class FileOutput {
    private var fd: Int32
    private let reportedPath: String

    init(path: String, reportedAs reportedPath: String) throws {
        self.reportedPath = reportedPath
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw CheckpointError(file: reportedPath, field: "file", expected: "a writable path",
                                  found: errnoDescription(errno))
        }
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = systemWrite(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw CheckpointError(file: reportedPath, field: "file", expected: "a successful write",
                                          found: errnoDescription(errno))
                }
                done += n
            }
        }
    }

    func close() throws {
        let result = systemClose(fd)
        fd = -1
        guard result == 0 else {
            throw CheckpointError(file: reportedPath, field: "file", expected: "a successful close",
                                  found: errnoDescription(errno))
        }
    }

    func discard() {
        if fd >= 0 { _ = systemClose(fd); fd = -1 }
    }

    deinit { discard() }
}

/// The C `write` and `close`, which `FileOutput`'s own methods shadow.
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, pointer, count)
}

private func systemClose(_ fd: Int32) -> Int32 { close(fd) }

func errnoDescription(_ code: Int32) -> String {
    "\(String(cString: strerror(code))) (errno \(code))"
}
