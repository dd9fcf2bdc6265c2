import Foundation

/// NumPy `.npy` files (format 1.0), for logits, token fixtures and routing traces: little-endian
/// f32, i32 or i16, C order.
public enum NPY {
    public struct Array2D<T> {
        public var shape: [Int]
        public var values: [T]
    }

    public struct FormatError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Header for `descr` and `shape`, padded so that data starts at a multiple of 64 bytes.
    static func header(descr: String, shape: [Int]) -> [UInt8] {
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dims), }"
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let length = UInt16(dict.utf8.count)
        bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
        return bytes + Array(dict.utf8)
    }

    /// Writes `values` (row-major, `shape`) as `<f4`.
    public static func write(_ values: [Float], shape: [Int], to path: String) throws {
        precondition(shape.reduce(1, *) == values.count)
        var data = Data(header(descr: "<f4", shape: shape))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Writes `values` as `<i4`.
    public static func write(_ values: [Int32], shape: [Int], to path: String) throws {
        precondition(shape.reduce(1, *) == values.count)
        var data = Data(header(descr: "<i4", shape: shape))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Writes `values` as `<i2`.
    public static func write(_ values: [Int16], shape: [Int], to path: String) throws {
        precondition(shape.reduce(1, *) == values.count)
        var data = Data(header(descr: "<i2", shape: shape))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Reads a `<f4` array.
    public static func readFloat32(_ path: String) throws -> Array2D<Float> { try read(path, descr: "<f4") }
    /// Reads a `<i4` array.
    public static func readInt32(_ path: String) throws -> Array2D<Int32> { try read(path, descr: "<i4") }
    /// Reads a `<i2` array.
    public static func readInt16(_ path: String) throws -> Array2D<Int16> { try read(path, descr: "<i2") }

    private static func read<T>(_ path: String, descr: String) throws -> Array2D<T> {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count >= 10, data.prefix(6) == Data([0x93] + Array("NUMPY".utf8)) else {
            throw FormatError(description: "\(path): not a .npy file")
        }
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        guard data.count >= 10 + headerLength,
              let header = String(data: data[10..<(10 + headerLength)], encoding: .ascii) else {
            throw FormatError(description: "\(path): truncated .npy header")
        }
        guard header.contains("'descr': '\(descr)'"), header.contains("'fortran_order': False") else {
            throw FormatError(description: "\(path): expected a C-order \(descr) array, header \(header.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        guard let open = header.firstIndex(of: "("), let close = header.firstIndex(of: ")") else {
            throw FormatError(description: "\(path): no shape in header")
        }
        let shape = header[header.index(after: open)..<close].split(separator: ",")
            .compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let count = shape.reduce(1, *)
        let body = data[(10 + headerLength)...]
        guard body.count == count * MemoryLayout<T>.size else {
            throw FormatError(description: "\(path): expected \(count) values of \(descr), found \(body.count) bytes")
        }
        let values = body.withUnsafeBytes { Array($0.bindMemory(to: T.self)) }
        return Array2D(shape: shape, values: values)
    }
}
