/// One GGUF metadata value. The cases follow the GGUF value types, in their numbering order
/// (0 `uint8` … 12 `float64`); arrays hold values of one type and may nest.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)
}

extension GGUFValue {
    /// The value of any integer case as an `Int`; nil for other cases and for a `uint64` above `Int.max`.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// The value of any integer or floating-point case as a `Double`; nil for bools, strings and arrays.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        case .uint64(let v): return Double(v)
        default: return intValue.map(Double.init)
        }
    }

    /// The string of a `.string`; nil otherwise.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value of a `.bool`; nil otherwise.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements of an `.array`; nil otherwise.
    public var arrayValue: [GGUFValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The GGUF type name: `uint32`, `string`, `array[string]`, `array[array[int32]]`, or `array` when
    /// the array is empty (its element type cannot be known from the value).
    public var typeName: String {
        switch self {
        case .array(let elements):
            guard let first = elements.first else { return "array" }
            return "array[\(first.typeName)]"
        default:
            return valueType.name
        }
    }

    /// The GGUF value type of this case.
    var valueType: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }
}

extension GGUFValue: CustomStringConvertible {
    /// A short rendering for tools and messages: numbers as written, strings quoted, arrays showing
    /// their first 8 elements and their length (`[1, 2, 3, … (512 total)]`).
    public var description: String {
        switch self {
        case .uint8(let v): return String(v)
        case .int8(let v): return String(v)
        case .uint16(let v): return String(v)
        case .int16(let v): return String(v)
        case .uint32(let v): return String(v)
        case .int32(let v): return String(v)
        case .uint64(let v): return String(v)
        case .int64(let v): return String(v)
        case .float32(let v): return String(v)
        case .float64(let v): return String(v)
        case .bool(let v): return String(v)
        case .string(let s): return quoted(s)
        case .array(let elements):
            let shown = elements.prefix(8).map(\.description).joined(separator: ", ")
            if elements.count <= 8 { return "[\(shown)]" }
            return "[\(shown), … (\(elements.count) total)]"
        }
    }
}

/// GGUF value-type codes, as stored in the file.
enum GGUFValueType: UInt32, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    var name: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .float32: return "float32"
        case .bool: return "bool"
        case .string: return "string"
        case .array: return "array"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float64: return "float64"
        }
    }

    /// The fewest bytes a value of this type takes: its size for scalars, the length prefix for a
    /// string, type + count for an array. Used to reject counts that cannot fit in the file.
    var minimumSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}
