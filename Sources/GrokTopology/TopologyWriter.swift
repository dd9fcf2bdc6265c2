import Foundation

extension Topology {
    /// This layout as a layout file (the schema of Topologies/README.md) that `init(contentsOf:)`
    /// reads back to an equal value: written by `grok place` and `grok plan --search`.
    public var layoutFileText: String {
        func list(_ p: [[Int]]) -> String { "[" + p.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: ", ") + "]" }
        var lines = ["{", "  \"description\": \(Self.jsonString(description)),"]
        if let model { lines.append("  \"model\": \(Self.jsonString(model)),") }
        lines.append("  \"worldSize\": \(worldSize),")
        if let microBatches { lines.append("  \"microBatches\": \(microBatches),") }
        lines.append("  \"stages\": [")
        for (i, s) in stages.enumerated() {
            let span = s.layers.count == 1 ? "\(s.layers.lowerBound)" : "\(s.layers.lowerBound)-\(s.layers.upperBound - 1)"
            lines.append("    { \"layers\": \"\(span)\", \"ranks\": \(s.ranks), \"tensorParallel\": \(s.tensorParallel),")
            var experts = ["\"mode\": \"\(s.experts.mode.rawValue)\""]
            if s.experts.mode == .parallel {
                if let placement = s.experts.placement {
                    experts.append("\"placement\": \(list(placement))")
                } else {
                    experts.append("\"rule\": \"\(s.experts.rule.rawValue)\"")
                }
                if !s.experts.layerPlacements.isEmpty {
                    let overrides = s.experts.layerPlacements.keys.sorted().map { "          \"\($0)\": \(list(s.experts.layerPlacements[$0]!))" }
                    experts.append("\"layers\": {\n" + overrides.joined(separator: ",\n") + "\n        }")
                }
            }
            lines.append("      \"experts\": {\n        " + experts.joined(separator: ",\n        ") + "\n      } }" + (i == stages.count - 1 ? "" : ","))
        }
        lines += ["  ]", "}"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// `s` as a JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 { out += String(format: "\\u%04x", c.value) } else { out.unicodeScalars.append(c) }
            }
        }
        return out + "\""
    }
}
