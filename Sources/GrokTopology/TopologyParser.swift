import Foundation

extension Topology {
    /// Parses a topology from JSON text. Checks the schema (keys, types, formats) and reports the
    /// first problem as one line naming `source` and the field; `validate` checks it against a model.
    public init(json: Data, source: String) throws {
        let root: JSONValue
        do {
            root = try JSONReader.parse([UInt8](json))
        } catch let e as JSONSyntaxError {
            throw TopologyError(source: source, message: "invalid JSON at line \(e.line), column \(e.column): \(e.message)")
        }
        self = try TopologyDecoder(source: source).topology(root)
    }

    /// The keys a topology file may use, by object (for error messages and documentation).
    static let topKeys = ["description", "model", "worldSize", "microBatches", "stages"]
    static let stageKeys = ["layers", "ranks", "tensorParallel", "experts"]
    static let expertKeys = ["mode", "rule", "placement", "layers"]
}

/// Walks the parsed JSON with a path (`stages[1].experts.placement[3]`) for every error.
private struct TopologyDecoder {
    let source: String

    func fail(_ path: String, _ message: String) -> TopologyError {
        TopologyError(source: source, message: path.isEmpty ? message : "\(path): \(message)")
    }

    /// The members of an object, after rejecting unknown keys and checking required ones.
    func members(_ value: JSONValue, _ path: String, allowed: [String], required: [String]) throws -> [String: JSONValue] {
        guard case .object(let pairs) = value else {
            throw fail(path, "expected an object { … }, found \(value.shortDescription)")
        }
        var out: [String: JSONValue] = [:]
        for (key, v) in pairs {
            guard allowed.contains(key) else {
                let folded = key.lowercased().filter { $0.isLetter || $0.isNumber }
                let hint = allowed.first { $0.lowercased() == folded }.map { " (did you mean \"\($0)\"?)" } ?? ""
                throw fail(path, "unknown key \"\(key)\"\(hint); allowed keys: \(allowed.joined(separator: ", "))")
            }
            out[key] = v
        }
        for key in required where out[key] == nil { throw fail(path, "missing key \"\(key)\"") }
        return out
    }

    func int(_ value: JSONValue, _ path: String) throws -> Int {
        guard case .number(let text) = value else { throw fail(path, "expected an integer, found \(value.shortDescription)") }
        guard let n = Int(text) else { throw fail(path, "expected an integer, found \(text)") }
        return n
    }

    func string(_ value: JSONValue, _ path: String) throws -> String {
        guard case .string(let s) = value else { throw fail(path, "expected a string, found \(value.shortDescription)") }
        return s
    }

    func bool(_ value: JSONValue, _ path: String) throws -> Bool {
        guard case .bool(let b) = value else { throw fail(path, "expected true or false, found \(value.shortDescription)") }
        return b
    }

    func array(_ value: JSONValue, _ path: String, of what: String) throws -> [JSONValue] {
        guard case .array(let items) = value else { throw fail(path, "expected an array of \(what), found \(value.shortDescription)") }
        return items
    }

    func topology(_ root: JSONValue) throws -> Topology {
        let m = try members(root, "", allowed: Topology.topKeys, required: ["worldSize", "stages"])
        let stageValues = try array(m["stages"]!, "stages", of: "stages")
        guard !stageValues.isEmpty else { throw fail("stages", "expected at least one stage") }
        return Topology(
            description: try m["description"].map { try string($0, "description") } ?? "",
            model: try m["model"].map { try string($0, "model") },
            worldSize: try int(m["worldSize"]!, "worldSize"),
            microBatches: try m["microBatches"].map { try int($0, "microBatches") },
            stages: try stageValues.enumerated().map { try stage($1, "stages[\($0)]") },
            source: source)
    }

    func stage(_ value: JSONValue, _ path: String) throws -> Topology.Stage {
        let m = try members(value, path, allowed: Topology.stageKeys, required: ["layers", "ranks"])
        let ranks = try array(m["ranks"]!, path + ".ranks", of: "world ranks").enumerated().map {
            try int($1, "\(path).ranks[\($0)]")
        }
        guard !ranks.isEmpty else { throw fail(path + ".ranks", "expected at least one world rank") }
        let layers = try layerRange(m["layers"]!, path + ".layers")
        return Topology.Stage(
            layers: layers, ranks: ranks,
            tensorParallel: try m["tensorParallel"].map { try bool($0, path + ".tensorParallel") } ?? true,
            experts: try m["experts"].map { try experts($0, path + ".experts") } ?? .contiguous)
    }

    /// `"a-b"` (inclusive) or `"a"`; a bare integer is taken as one layer.
    func layerRange(_ value: JSONValue, _ path: String) throws -> Range<Int> {
        let expected = "expected \"first-last\" (e.g. \"0-31\")"
        if case .number = value {
            let l = try int(value, path)
            guard l >= 0 else { throw fail(path, "\(expected), found \(l)") }
            return l ..< l + 1
        }
        guard case .string(let text) = value else { throw fail(path, "\(expected), found \(value.shortDescription)") }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let numbers = parts.map { p -> Int? in p.allSatisfy(\.isASCII) && p.allSatisfy(\.isNumber) ? Int(p) : nil }
        guard (1...2).contains(parts.count), numbers.allSatisfy({ $0 != nil }) else {
            throw fail(path, "\(expected), found \"\(text)\"")
        }
        let first = numbers[0]!, last = numbers.last!!
        guard first <= last else { throw fail(path, "first layer \(first) is after last layer \(last) in \"\(text)\"") }
        return first ..< last + 1
    }

    func experts(_ value: JSONValue, _ path: String) throws -> Topology.Experts {
        let m = try members(value, path, allowed: Topology.expertKeys, required: [])
        var x = Topology.Experts()
        if let v = m["mode"] {
            let s = try string(v, path + ".mode")
            guard let mode = ExpertMode(rawValue: s) else {
                throw fail(path + ".mode", "expected \"parallel\" or \"slice\", found \"\(s)\"")
            }
            x.mode = mode
        }
        if x.mode == .slice {
            for key in ["rule", "placement", "layers"] where m[key] != nil {
                throw fail("\(path).\(key)", "only applies to mode \"parallel\" (in slice mode every rank holds a slice of every expert)")
            }
            return x
        }
        if m["rule"] != nil && m["placement"] != nil {
            throw fail(path, "give either \"rule\" or \"placement\", not both")
        }
        if let v = m["rule"] {
            let s = try string(v, path + ".rule")
            guard let rule = Topology.ExpertRule(rawValue: s) else {
                throw fail(path + ".rule", "expected \"contiguous\" or \"round-robin\", found \"\(s)\"")
            }
            x.rule = rule
        }
        if let v = m["placement"] { x.placement = try placement(v, path + ".placement") }
        if let v = m["layers"] {
            guard case .object(let pairs) = v else {
                throw fail(path + ".layers", "expected an object {\"layer\": placement, …}, found \(v.shortDescription)")
            }
            for (key, p) in pairs {
                guard !key.isEmpty, key.allSatisfy({ $0.isASCII && $0.isNumber }), let l = Int(key) else {
                    throw fail(path + ".layers", "key \"\(key)\" is not a layer number (e.g. \"12\")")
                }
                guard x.layerPlacements[l] == nil else { throw fail(path + ".layers", "layer \(l) is given twice") }
                x.layerPlacements[l] = try placement(p, "\(path).layers.\(key)")
            }
        }
        return x
    }

    /// `[[ranks of expert 0], [ranks of expert 1], …]`.
    func placement(_ value: JSONValue, _ path: String) throws -> [[Int]] {
        try array(value, path, of: "rank lists, one per expert").enumerated().map { e, holders in
            try array(holders, "\(path)[\(e)]", of: "world ranks").enumerated().map { k, r in try int(r, "\(path)[\(e)][\(k)]") }
        }
    }
}
