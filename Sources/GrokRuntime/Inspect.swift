import Foundation
import GrokCheckpoint
import GrokModel
import GrokTensor

/// `grok inspect`: a GGUF's metadata, tensors (dtype, shape, bytes) and totals, as text.
public enum Inspector {
    public static func describe(_ file: GGUFFile, allTokens: Bool = false) -> String {
        var out = "file: \(file.path)\nGGUF version \(file.version), alignment \(file.alignment), \(file.fileSize) bytes\n"
        out += "\nmetadata (\(file.metadataKeys.count) keys):\n"
        for key in file.metadataKeys {
            out += "  \(key) = \(render(file.metadata[key]!, full: allTokens))\n"
        }
        out += "\ntensors (\(file.tensors.count)):\n"
        var parameters = 0, bytes = 0
        var byType: [DType: (count: Int, bytes: Int)] = [:]
        for t in file.tensors {
            out += "  \(t.name.padding(toLength: max(32, t.name.count), withPad: " ", startingAt: 0)) \(t.dtype.name.padding(toLength: 5, withPad: " ", startingAt: 0)) \(t.shape) \(t.byteCount) B\n"
            parameters += t.elementCount
            bytes += t.byteCount
            byType[t.dtype, default: (0, 0)].count += t.elementCount
            byType[t.dtype, default: (0, 0)].bytes += t.byteCount
        }
        out += "\nparameters: \(parameters) (\(String(format: "%.3f", Double(parameters) / 1e9))B)\n"
        out += "tensor bytes: \(bytes) (\(String(format: "%.3f", Double(bytes) / 1e9)) GB)\n"
        for (type, v) in byType.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            out += "  \(type.name): \(v.count) parameters, \(v.bytes) bytes\n"
        }
        do {
            let c = try ModelConfig(gguf: file)
            out += "\nmodel: \(c.architecture.rawValue), \(c.layerCount) layers, width \(c.modelWidth), heads \(c.queryHeads)/\(c.kvHeads)×\(c.headDim), "
            out += "experts \(c.expertsPerToken) of \(c.expertCount) × \(c.expertFFNWidth)"
            out += c.denseFFNWidth > 0 ? ", dense MLP \(c.denseFFNWidth)" : ""
            out += ", vocabulary \(c.vocabularySize), context \(c.contextLength)\n"
            out += "active parameters per token: \(c.activeParameterCount)\n"
        } catch {
            out += "\nnot a runnable Grok model: \(error)\n"
        }
        return out
    }

    static func render(_ value: GGUFValue, full: Bool) -> String {
        switch value {
        case .string(let s): return "\"\(s.debugDescription.dropFirst().dropLast())\""
        case .array(let items):
            let shown = full ? items : Array(items.prefix(8))
            let body = shown.map { render($0, full: full) }.joined(separator: ", ")
            return "[\(body)\(items.count > shown.count ? ", … (\(items.count) items)" : "")]"
        case .bool(let b): return "\(b)"
        case .float32(let f): return "\(f)"
        case .float64(let f): return "\(f)"
        default: return value.intValue.map(String.init) ?? "?"
        }
    }
}
