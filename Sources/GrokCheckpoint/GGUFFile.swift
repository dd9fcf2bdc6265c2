#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import GrokTensor

/// A GGUF file (llama.cpp's format), memory-mapped read-only and validated when opened.
///
/// Opening parses the header, the metadata and the tensor-info table, and checks everything
/// structural: magic, version (2 or 3), counts that fit in the file, value and ggml types, dimensions,
/// block multiples, unique names, aligned and in-bounds, non-overlapping tensor data. Any failure is a
/// ``CheckpointError`` naming the file and the field; a malformed file never crashes the reader.
///
/// Tensor data is not copied: ``data(of:)`` returns a pointer into the mapping, valid for the
/// lifetime of this object.
public final class GGUFFile: @unchecked Sendable {
    /// The path the file was opened from.
    public let path: String
    /// The GGUF version (2 or 3).
    public let version: Int
    /// `general.alignment`, or 32 when absent.
    public let alignment: Int
    /// The file's size in bytes.
    public let fileSize: Int
    /// Absolute file offset of the data section (tensor offsets are relative to it).
    public let dataOffset: Int
    /// All metadata, by key.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]

    private let tensorIndex: [String: Int]
    // The mapping (nil only for an empty file, which never gets this far).
    private let mapping: MappedFile
    private var base: UnsafeRawPointer? { mapping.bytes.baseAddress }
    /// Column slices copied out of the mapping (see `block`).
    let arena = ByteArena()

    /// Maps and validates the file at `path`.
    ///
    /// - Throws: ``CheckpointError`` when the file cannot be read or is not a valid GGUF file.
    public init(path: String) throws {
        mapping = try MappedFile(path: path, what: "GGUF file")
        var parser = GGUFParser(file: path, bytes: mapping.bytes)
        let parsed = try parser.parse()
        self.path = path
        self.version = parsed.version
        self.alignment = parsed.alignment
        self.fileSize = mapping.bytes.count
        self.dataOffset = parsed.dataOffset
        self.metadata = parsed.metadata
        self.metadataKeys = parsed.metadataKeys
        self.tensors = parsed.tensors
        self.tensorIndex = parsed.tensorIndex
    }

    /// Drops the whole pages of `bytes` (a range of this mapping) from the process's resident
    /// memory: for data that was read once and copied elsewhere (a rank's column slice). Reading
    /// them again faults them back in from the page cache, so this is always safe.
    public func evict(_ bytes: UnsafeRawBufferPointer) { mapping.evict(bytes) }

    /// The info of the tensor called `name`, or nil.
    public func tensor(_ name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The bytes of `tensor`, inside the mapping (no copy). `tensor` must come from this file.
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let start = dataOffset + tensor.offset
        let count = tensor.byteCount
        precondition(tensor.offset >= 0 && count >= 0 && start <= fileSize - count,
                     "GGUFFile.data(of:): tensor \(quoted(tensor.name)) is not inside \(path)")
        return UnsafeRawBufferPointer(start: base! + start, count: count)
    }

    // MARK: - Typed metadata

    /// The integer at `key` (any GGUF integer type), or nil when absent.
    /// - Throws: ``CheckpointError`` when the value is not an integer (or a `uint64` above `Int.max`).
    public func int(_ key: String) throws -> Int? {
        guard let value = metadata[key] else { return nil }
        guard let int = value.intValue else { throw wrongType(key, expected: "an integer", value) }
        return int
    }

    /// The number at `key` (any GGUF integer or float type), or nil when absent.
    /// - Throws: ``CheckpointError`` when the value is not a number.
    public func double(_ key: String) throws -> Double? {
        guard let value = metadata[key] else { return nil }
        guard let double = value.doubleValue else { throw wrongType(key, expected: "a number", value) }
        return double
    }

    /// The string at `key`, or nil when absent.
    /// - Throws: ``CheckpointError`` when the value is not a string.
    public func string(_ key: String) throws -> String? {
        guard let value = metadata[key] else { return nil }
        guard let string = value.stringValue else { throw wrongType(key, expected: "a string", value) }
        return string
    }

    /// The bool at `key`, or nil when absent.
    /// - Throws: ``CheckpointError`` when the value is not a bool.
    public func bool(_ key: String) throws -> Bool? {
        guard let value = metadata[key] else { return nil }
        guard let bool = value.boolValue else { throw wrongType(key, expected: "a bool", value) }
        return bool
    }

    /// The array of strings at `key` (e.g. `tokenizer.ggml.tokens`), or nil when absent.
    /// - Throws: ``CheckpointError`` when the value is not an array of strings.
    public func stringArray(_ key: String) throws -> [String]? {
        try array(key, of: "strings") { $0.stringValue }
    }

    /// The array of numbers at `key` as `Float`s (e.g. `tokenizer.ggml.scores`), or nil when absent.
    /// - Throws: ``CheckpointError`` when the value is not an array of numbers.
    public func floatArray(_ key: String) throws -> [Float]? {
        try array(key, of: "numbers") { $0.doubleValue.map(Float.init) }
    }

    /// The array of integers at `key` (e.g. `tokenizer.ggml.token_type`), or nil when absent.
    /// - Throws: ``CheckpointError`` when the value is not an array of integers.
    public func intArray(_ key: String) throws -> [Int]? {
        try array(key, of: "integers") { $0.intValue }
    }

    private func array<T>(_ key: String, of what: String, _ convert: (GGUFValue) -> T?) throws -> [T]? {
        guard let value = metadata[key] else { return nil }
        guard let elements = value.arrayValue else { throw wrongType(key, expected: "an array of \(what)", value) }
        var result: [T] = []
        result.reserveCapacity(elements.count)
        for (i, element) in elements.enumerated() {
            guard let converted = convert(element) else {
                throw CheckpointError(file: path, field: "metadata \(quoted(key))", expected: "an array of \(what)",
                                      found: "\(value.typeName) (element \(i) is \(element.typeName) \(element))")
            }
            result.append(converted)
        }
        return result
    }

    private func wrongType(_ key: String, expected: String, _ value: GGUFValue) -> CheckpointError {
        CheckpointError(file: path, field: "metadata \(quoted(key))", expected: expected,
                        found: "\(value.typeName) \(value)")
    }

    // MARK: - Tensors

    /// The tensor `name`, which must exist with exactly `dims` (ggml order) and, when `dtypes` is given,
    /// one of those element types.
    ///
    /// - Throws: ``CheckpointError`` naming the tensor and the expected and found dims or dtype.
    public func require(_ name: String, dims: [Int], dtypes: Set<DType>? = nil) throws -> GGUFTensorInfo {
        let typeText = dtypes.map { " and dtype " + Self.list($0) } ?? ""
        guard let tensor = tensor(name) else {
            throw CheckpointError(file: path, field: "tensor \(quoted(name))",
                                  expected: "a tensor with dims \(dims)\(typeText)",
                                  found: "no such tensor among the file's \(tensors.count)")
        }
        guard tensor.dims == dims else {
            throw CheckpointError(file: path, field: "tensor \(quoted(name)) dims",
                                  expected: "\(dims) (ggml ne order; numpy shape \(Array(dims.reversed())))",
                                  found: "\(tensor.dims) (numpy shape \(tensor.shape))")
        }
        if let dtypes, !dtypes.contains(tensor.dtype) {
            throw CheckpointError(file: path, field: "tensor \(quoted(name)) dtype",
                                  expected: Self.list(dtypes), found: tensor.dtype.name)
        }
        return tensor
    }

    private static func list(_ dtypes: Set<DType>) -> String {
        let names = dtypes.sorted { $0.rawValue < $1.rawValue }.map(\.name)
        return names.count == 1 ? names[0] : "one of " + names.joined(separator: ", ")
    }

}

// MARK: - Parsing

/// A bounds-checked little-endian reader over the mapped bytes, producing the validated contents.
struct GGUFParser {
    struct Parsed {
        var version: Int
        var alignment: Int
        var dataOffset: Int
        var metadata: [String: GGUFValue]
        var metadataKeys: [String]
        var tensors: [GGUFTensorInfo]
        var tensorIndex: [String: Int]
    }

    static let headerSize = 24
    static let defaultAlignment = 32
    /// Fewest bytes of one key-value pair: an empty key (8), the type (4), a one-byte value.
    static let minimumKeyValueSize = 13
    /// Fewest bytes of one tensor info: an empty name (8), n_dims (4), type (4), offset (8).
    static let minimumTensorInfoSize = 24
    static let maximumArrayDepth = 32

    let file: String
    let bytes: UnsafeRawBufferPointer
    var position = 0
    /// What is being read, for truncation errors.
    var field = "header"

    init(file: String, bytes: UnsafeRawBufferPointer) {
        self.file = file
        self.bytes = bytes
    }

    var remaining: Int { bytes.count - position }

    func failure(_ field: String, expected: String, found: String? = nil) -> CheckpointError {
        CheckpointError(file: file, field: field, expected: expected, found: found)
    }

    mutating func parse() throws -> Parsed {
        let version = try parseHeaderStart()
        field = "tensor_count"
        let rawTensorCount = try u64()
        field = "metadata_kv_count"
        let rawKeyValueCount = try u64()
        let keyValueCount = try count("metadata_kv_count", rawKeyValueCount, perItem: Self.minimumKeyValueSize,
                                      what: "key-value pairs", after: "header")
        let tensorCount = try count("tensor_count", rawTensorCount, perItem: Self.minimumTensorInfoSize,
                                    what: "tensor infos", after: "header",
                                    reserved: keyValueCount * Self.minimumKeyValueSize)

        // Metadata.
        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        metadata.reserveCapacity(keyValueCount)
        keys.reserveCapacity(keyValueCount)
        for i in 0..<keyValueCount {
            field = "metadata #\(i) key"
            let key = try string()
            let keyField = "metadata \(quoted(key))"
            guard metadata[key] == nil else {
                throw failure(keyField, expected: "unique keys", found: "a second pair with this key (#\(i))")
            }
            field = keyField
            let type = try u32()
            metadata[key] = try value(type: type, depth: 0)
            keys.append(key)
        }

        var alignment = Self.defaultAlignment
        if let value = metadata["general.alignment"] {
            let alignmentField = "metadata \(quoted("general.alignment"))"
            guard let a = value.intValue else {
                throw failure(alignmentField, expected: "a uint32 power of two", found: "\(value.typeName) \(value)")
            }
            guard a > 0, a & (a - 1) == 0, a <= 1 << 31 else {
                throw failure(alignmentField, expected: "a power of two (at most 2^31)", found: "\(a)")
            }
            alignment = a
        }

        // Tensor infos.
        _ = try count("tensor_count", rawTensorCount, perItem: Self.minimumTensorInfoSize, what: "tensor infos",
                      after: "metadata")
        var tensors: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        tensors.reserveCapacity(tensorCount)
        index.reserveCapacity(tensorCount)
        for i in 0..<tensorCount {
            field = "tensor #\(i) name"
            let name = try string()
            let tensorField = "tensor \(quoted(name))"
            if let first = index[name] {
                throw failure(tensorField, expected: "unique tensor names",
                              found: "a second tensor with this name (#\(first) and #\(i))")
            }
            field = tensorField
            tensors.append(try tensorInfo(name: name, field: tensorField))
            index[name] = i
        }

        // Data section.
        let (padded, overflow) = position.addingReportingOverflow(alignment - 1)
        let dataOffset = overflow ? Int.max : padded & ~(alignment - 1)
        try checkData(tensors, dataOffset: dataOffset, alignment: alignment)

        return Parsed(version: version, alignment: alignment, dataOffset: dataOffset, metadata: metadata,
                      metadataKeys: keys, tensors: tensors, tensorIndex: index)
    }

    private func tooShort(_ size: Int) -> CheckpointError {
        failure("header", expected: "at least \(Self.headerSize) bytes (magic, version, counts)",
                found: "a file of \(size) bytes")
    }

    /// Magic and version; leaves `position` after the version.
    private mutating func parseHeaderStart() throws -> Int {
        let size = bytes.count
        guard size >= 4 else { throw tooShort(size) }
        let magic = Array(bytes[0..<4])
        if magic != Array("GGUF".utf8) {
            let hex = magic.map { hexByte($0) }.joined(separator: " ")
            let ascii = String(magic.map { (0x20..<0x7F).contains($0) ? Character(UnicodeScalar($0)) : "." })
            var found = "\(hex) (\(quoted(ascii)))"
            if ["GGML", "GGMF", "GGJT", "lmgg", "fmgg", "tjgg"].contains(ascii) {
                found += ": a pre-GGUF ggml file"
            }
            throw failure("magic", expected: "\"GGUF\" (47 47 55 46)", found: found)
        }
        position = 4
        guard size >= 8 else { throw tooShort(size) }
        let version = try u32()
        switch version {
        case 2, 3:
            break
        case 1:
            throw failure("version", expected: "2 or 3",
                          found: "1 (GGUF v1 used 32-bit counts; convert the model again with a current llama.cpp)")
        default:
            if (1...3).contains(version.byteSwapped) {
                throw failure("version", expected: "2 or 3 (little-endian)",
                              found: "\(version.byteSwapped) big-endian, which this reader does not support")
            }
            throw failure("version", expected: "2 or 3", found: "\(version)")
        }
        guard size >= Self.headerSize else { throw tooShort(size) }
        return Int(version)
    }

    /// A header count that cannot be absurd: no more items than fit, at their smallest, in the bytes
    /// after the current position (less `reserved` bytes the other count needs).
    private func count(_ name: String, _ raw: UInt64, perItem: Int, what: String, after: String,
                       reserved: Int = 0) throws -> Int {
        let available = max(remaining - reserved, 0)
        let limit = available / perItem
        guard raw <= UInt64(limit) else {
            throw failure(name, expected: "at most \(limit) \(what) (each takes at least \(perItem) bytes and "
                          + "\(remaining) bytes follow the \(after))",
                          found: "\(raw) (a corrupt count, or the file is truncated at \(bytes.count) bytes)")
        }
        return Int(raw)
    }

    private mutating func tensorInfo(name: String, field tensorField: String) throws -> GGUFTensorInfo {
        let dimCount = try u32()
        guard dimCount <= 4 else {
            throw failure("\(tensorField) n_dims", expected: "at most 4 dimensions", found: "\(dimCount)")
        }
        var dims: [Int] = []
        for j in 0..<Int(dimCount) {
            let ne = Int64(bitPattern: try u64())
            guard ne > 0 else {
                throw failure("\(tensorField) ne[\(j)]", expected: "a positive dimension", found: "\(ne)")
            }
            dims.append(Int(ne))
        }
        let typeCode = try u32()
        guard let dtype = DType(rawValue: typeCode) else {
            let known = ggmlTypeName(typeCode).map { " (\($0), which this runtime does not support)" }
                ?? " (not a ggml type)"
            throw failure("\(tensorField) type", expected: "a supported ggml type: \(supportedDTypeList)",
                          found: "\(typeCode)\(known)")
        }
        let rawOffset = try u64()
        guard let offset = Int(exactly: rawOffset) else {
            throw failure("\(tensorField) offset", expected: "an offset below 2^63", found: "\(rawOffset)")
        }
        let rowLength = dims.first ?? 1
        guard rowLength % dtype.blockSize == 0 else {
            throw failure("\(tensorField) ne[0]", expected: "a multiple of \(dtype.blockSize) (the \(dtype) block size)",
                          found: "\(rowLength)")
        }
        guard checkedByteCount(dims: dims, dtype: dtype) != nil else {
            throw failure("\(tensorField) dims", expected: "a tensor smaller than 2^63 elements and bytes",
                          found: "\(dims)")
        }
        return GGUFTensorInfo(name: name, dims: dims, dtype: dtype, offset: offset)
    }

    /// Offsets aligned, data inside the file, no two tensors overlapping.
    private func checkData(_ tensors: [GGUFTensorInfo], dataOffset: Int, alignment: Int) throws {
        let size = bytes.count
        for tensor in tensors {
            let tensorField = "tensor \(quoted(tensor.name))"
            guard tensor.offset % alignment == 0 else {
                throw failure("\(tensorField) offset", expected: "a multiple of \(alignment) (general.alignment)",
                              found: "\(tensor.offset)")
            }
            let (start, o1) = dataOffset.addingReportingOverflow(tensor.offset)
            let (end, o2) = start.addingReportingOverflow(tensor.byteCount)
            guard !o1, !o2, end <= size else {
                let range = o1 || o2 ? "beyond 2^63" : "bytes \(start)..<\(end)"
                throw failure("\(tensorField) data",
                              expected: "\(range) (\(tensor.byteCount) bytes at data offset \(tensor.offset)) "
                              + "inside the file", found: "a file of \(size) bytes")
            }
        }
        let sorted = tensors.sorted { $0.offset < $1.offset }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where next.offset < previous.offset + previous.byteCount {
            throw failure("tensor \(quoted(next.name)) offset",
                          expected: "data not overlapping tensor \(quoted(previous.name)), which ends at data offset "
                          + "\(previous.offset + previous.byteCount)", found: "\(next.offset)")
        }
    }

    // MARK: Values

    private mutating func value(type code: UInt32, depth: Int) throws -> GGUFValue {
        guard let type = GGUFValueType(rawValue: code) else {
            throw failure(field, expected: "a GGUF value type (0…12)", found: "\(code)")
        }
        switch type {
        case .uint8: return .uint8(try u8())
        case .int8: return .int8(Int8(bitPattern: try u8()))
        case .uint16: return .uint16(try u16())
        case .int16: return .int16(Int16(bitPattern: try u16()))
        case .uint32: return .uint32(try u32())
        case .int32: return .int32(Int32(bitPattern: try u32()))
        case .float32: return .float32(Float(bitPattern: try u32()))
        case .uint64: return .uint64(try u64())
        case .int64: return .int64(Int64(bitPattern: try u64()))
        case .float64: return .float64(Double(bitPattern: try u64()))
        case .bool:
            let byte = try u8()
            guard byte <= 1 else { throw failure(field, expected: "a bool (0 or 1)", found: "\(byte)") }
            return .bool(byte == 1)
        case .string:
            return .string(try string())
        case .array:
            guard depth < Self.maximumArrayDepth else {
                throw failure(field, expected: "arrays nested at most \(Self.maximumArrayDepth) deep",
                              found: "deeper nesting")
            }
            let elementCode = try u32()
            guard let elementType = GGUFValueType(rawValue: elementCode) else {
                throw failure(field, expected: "an array element type (0…12)", found: "\(elementCode)")
            }
            let count = try u64()
            let limit = remaining / elementType.minimumSize
            guard count <= UInt64(limit) else {
                throw failure(field, expected: "at most \(limit) \(elementType.name) elements (the \(remaining) bytes "
                              + "left in the file)", found: "an array of \(count)")
            }
            var elements: [GGUFValue] = []
            elements.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                elements.append(try value(type: elementCode, depth: depth + 1))
            }
            return .array(elements)
        }
    }

    // MARK: Primitives

    /// Checks that `n` more bytes exist and returns where they start.
    private mutating func take(_ n: Int) throws -> Int {
        guard n <= remaining else {
            throw failure(field, expected: "\(n) bytes at offset \(position)",
                          found: "only \(remaining) before the end of the file (\(bytes.count) bytes; truncated?)")
        }
        defer { position += n }
        return position
    }

    mutating func u8() throws -> UInt8 { bytes[try take(1)] }

    mutating func u16() throws -> UInt16 {
        UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(2), as: UInt16.self))
    }

    mutating func u32() throws -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(4), as: UInt32.self))
    }

    mutating func u64() throws -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self))
    }

    /// A u64 length and that many bytes of UTF-8.
    mutating func string() throws -> String {
        let length = try u64()
        guard length <= UInt64(remaining) else {
            throw failure(field, expected: "a string of \(length) bytes at offset \(position)",
                          found: "only \(remaining) before the end of the file (\(bytes.count) bytes)")
        }
        let start = try take(Int(length))
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<start + Int(length)])
        let text = String(decoding: raw, as: UTF8.self)
        // Decoding repairs invalid sequences; a repaired string differs from its bytes.
        guard text.utf8.count == raw.count, text.utf8.elementsEqual(raw) else {
            throw failure(field, expected: "valid UTF-8",
                          found: "\(length) bytes at offset \(start) that are not (\(quoted(text)))")
        }
        return text
    }
}

/// Elements and bytes of a tensor, or nil when either overflows `Int` (dims positive, ne[0] whole blocks).
func checkedByteCount(dims: [Int], dtype: DType) -> Int? {
    var elements = 1
    for d in dims {
        let (product, overflow) = elements.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        elements = product
    }
    let (rowBytes, overflow) = ((dims.first ?? 1) / dtype.blockSize).multipliedReportingOverflow(by: dtype.blockBytes)
    if overflow { return nil }
    var bytes = rowBytes
    for d in dims.dropFirst() {
        let (product, overflow) = bytes.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        bytes = product
    }
    return bytes
}

func hexByte(_ byte: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
}
