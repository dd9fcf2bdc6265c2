import Foundation
import GrokTensor

/// Builds a safetensors file (format in SafeTensors.swift): tensors in insertion order, the header
/// padded with spaces to a multiple of 8 bytes as the reference writer does. Tensor data can be
/// given as a `producer` called once during ``write(to:)``, so only one tensor's bytes are alive at
/// a time. Mistakes made while adding are remembered and thrown by ``write(to:)`` as one
/// ``CheckpointError`` naming the tensor.
public struct SafeTensorsWriter {
    private var metadata: [(String, String)] = []
    private var pending: [(name: String, dtype: DType, shape: [Int], byteCount: Int, producer: () -> [UInt8])] = []
    private var names: Set<String> = []
    private var problem: (field: String, expected: String, found: String)?

    public init() {}

    /// The number of tensors added so far.
    public var tensorCount: Int { pending.count }

    /// Adds `key: value` to `__metadata__`.
    public mutating func setMetadata(_ key: String, _ value: String) {
        metadata.removeAll { $0.0 == key }
        metadata.append((key, value))
    }

    /// Adds a tensor of row-major `shape` whose data is `bytes`.
    public mutating func add(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        add(name: name, dtype: dtype, shape: shape) { bytes }
    }

    /// Adds a tensor whose data `producer` returns during ``write(to:)``.
    public mutating func add(name: String, dtype: DType, shape: [Int], producer: @escaping () -> [UInt8]) {
        let field = "tensor \(quoted(name))"
        guard problem == nil else { return }
        guard name != "__metadata__", names.insert(name).inserted else {
            problem = (field, "unique tensor names other than __metadata__", "a second tensor with this name")
            return
        }
        guard dtype.safetensorsName != nil else {
            problem = ("\(field) dtype", "BF16, F16 or F32 (safetensors has no quantized ggml types)", dtype.name)
            return
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            problem = ("\(field) shape", "non-negative dimensions", "\(shape)")
            return
        }
        pending.append((name, dtype, shape, shape.reduce(dtype.blockBytes, *), producer))
    }

    /// Writes the file; it appears at `path` only when complete.
    public func write(to path: String) throws {
        if let problem { throw CheckpointError(file: path, field: problem.field, expected: problem.expected, found: problem.found) }
        var members: [(String, JSONText)] = []
        if !metadata.isEmpty { members.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))) }
        var offset = 0
        for t in pending {
            members.append((t.name, .object([("dtype", .string(t.dtype.safetensorsName!)),
                                             ("shape", .array(t.shape.map { .int($0) })),
                                             ("data_offsets", .array([.int(offset), .int(offset + t.byteCount)]))])))
            offset += t.byteCount
        }
        var header = Array(JSONText.object(members).rendered().utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)

        let partial = "\(path).partial-\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: partial, contents: nil), let handle = FileHandle(forWritingAtPath: partial) else {
            throw CheckpointError(file: path, field: "file", expected: "a writable path", found: "cannot create \(partial)")
        }
        do {
            try handle.write(contentsOf: withUnsafeBytes(of: UInt64(header.count).littleEndian) { Data($0) })
            try handle.write(contentsOf: Data(header))
            for t in pending {
                let bytes = t.producer()
                guard bytes.count == t.byteCount else {
                    throw CheckpointError(file: path, field: "tensor \(quoted(t.name)) data",
                                          expected: "\(t.byteCount) bytes for shape \(t.shape) \(t.dtype)", found: "\(bytes.count) bytes")
                }
                try handle.write(contentsOf: Data(bytes))
            }
            try handle.close()
            guard rename(partial, path) == 0 else {
                throw CheckpointError(file: path, field: "file", expected: "a path the finished file can be renamed to",
                                      found: errnoDescription(errno))
            }
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: partial)
            if error is CheckpointError { throw error }
            throw CheckpointError(file: path, field: "file", expected: "a successful write", found: "\(error)")
        }
    }
}
