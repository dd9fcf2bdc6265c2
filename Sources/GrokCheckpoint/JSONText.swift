/// JSON written in a fixed key order, for the files the release writer produces (config.json,
/// tokenizer.tok.json, safetensors headers): deterministic output that reads like the originals.
/// Floats are written in their shortest round-trip form (`1e-05`, `0.5`; whole numbers in full,
/// `208533504.0`), so a value read back as a `Float` is bit-identical. (Reading uses Foundation's `JSONSerialization`.)
indirect enum JSONText {
    case object([(String, JSONText)])
    case array([JSONText])
    case string(String)
    case int(Int)
    case float(Float)
    case double(Double)
    case bool(Bool)

    /// Compact text; with `pretty`, an object's members one per line, indented by two spaces
    /// (arrays stay on one line).
    func rendered(pretty: Bool = false) -> String {
        var out = ""
        render(into: &out, pretty: pretty, depth: 0)
        return out
    }

    private func render(into out: inout String, pretty: Bool, depth: Int) {
        switch self {
        case .object(let members):
            out += "{"
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out += "," }
                if pretty { out += "\n" + String(repeating: "  ", count: depth + 1) }
                out += Self.quote(key) + (pretty ? ": " : ":")
                value.render(into: &out, pretty: pretty, depth: depth + 1)
            }
            if pretty && !members.isEmpty { out += "\n" + String(repeating: "  ", count: depth) }
            out += "}"
        case .array(let elements):
            out += "["
            for (i, element) in elements.enumerated() {
                if i > 0 { out += pretty ? ", " : "," }
                element.render(into: &out, pretty: pretty, depth: depth + 1)
            }
            out += "]"
        case .string(let s): out += Self.quote(s)
        case .int(let v): out += String(v)
        case .float(let v):
            precondition(v.isFinite, "JSON has no non-finite numbers")
            out += v == v.rounded() && abs(v) < 1e15 ? "\(Double(v))" : "\(v)"   // 208533504.0, not 2.085335e+08
        case .double(let v):
            precondition(v.isFinite, "JSON has no non-finite numbers")
            out += "\(v)"
        case .bool(let v): out += v ? "true" : "false"
        }
    }

    private static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
