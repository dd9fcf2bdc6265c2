import Foundation

/// Text, JSON and SVG views of a `PlacementEvaluation`, and the `compare` table.
public enum PlacementReport {
    static func mb(_ bytes: Double) -> String { String(format: "%.3f", bytes / 1e6) }

    /// `s` right-aligned in `width` columns.
    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }

    /// The evaluation as a text report.
    public static func text(_ e: PlacementEvaluation) -> String {
        var out = ""
        func line(_ s: String = "") { out += s + "\n" }
        line("placement \(e.topology) on trace \(e.trace)")
        line("  \(e.tokens) tokens, \(e.layersCount) layers, \(e.experts) experts, top-\(e.expertsPerToken); \(e.worldSize) ranks; d = \(e.width) (\(e.bytesPerRow) bytes per row)")
        let prompt = e.prefill.map { "each sequence's first \($0) tokens as one step, then " } ?? ""
        line("  \(e.steps) steps: \(prompt)steps of \(e.batch) token\(e.batch == 1 ? "" : "s") (the trace in (sequence, position) order; owners: contiguous chunks of each step's rows)")
        line()
        let rankHeader = (0..<e.worldSize).map { pad("r\($0)", 8) }.joined()
        line("layer  imbalance  busiest/step  remote rows  a2a MB/step  replicas used/placed  ms/step" + "   expert rows per rank:" + rankHeader)
        for l in e.layers {
            let bytes = Double(2 * l.remoteRows * e.bytesPerRow) / Double(max(e.steps, 1))
            line(String(format: "%5d  %9.3f  %12.2f  %11d  ", l.layer, l.imbalance, l.busiestRowsPerStep, l.remoteRows)
                 + pad(mb(bytes), 11) + "  " + pad("\(l.replicasUsed)/\(l.replicasPlaced)", 20) + String(format: "  %7.3f", l.secondsPerStep * 1e3)
                 + String(repeating: " ", count: 23) + l.rowsPerRank.map { String(format: "%8d", $0) }.joined())
        }
        let remote = e.layers.reduce(0) { $0 + $1.remoteRows }
        line(String(format: "  all  %9.3f  %12.2f  %11d  ", e.imbalance, e.layers.reduce(0) { $0 + $1.busiestRowsPerStep }, remote)
             + pad(mb(e.alltoallBytesPerStep), 11) + "  " + pad("\(e.replicasUsed)/\(e.replicasPlaced)", 20)
             + String(format: "  %7.3f", e.time.stepSeconds * 1e3)
             + String(repeating: " ", count: 23) + e.rowsPerRank.map { String(format: "%8d", $0) }.joined())
        line(String(format: "imbalance: %.3f mean over layers of max/mean expert rows per rank; %.3f over the rows summed over layers", e.imbalance, e.overallImbalance))
        line(String(format: "all-to-all: %@ MB over the trace (dispatch + return), %@ MB per step", mb(Double(e.alltoallBytes)) as NSString,
                    mb(e.alltoallBytesPerStep) as NSString))
        line(String(format: "cross-layer locality: %.1f%% of consecutive-layer expert pairs of a token on the same rank", 100 * e.crossLayerLocality))
        line()
        line("dispatch traffic over the trace, MB (row: from owner, column: to expert rank; the return is the same reversed)")
        line("from\\to" + rankHeader)
        for (a, row) in e.dispatchBytes.enumerated() {
            line(pad("r\(a)", 7) + row.map { pad(mb(Double($0)), 8) }.joined())
        }
        line()
        let t = e.time
        line(String(format: "predicted MoE time per step: %.3f ms (row counts %.3f, dispatch %.3f, experts %.3f, return %.3f, combine %.3f)",
                    t.stepSeconds * 1e3, t.countsSeconds * 1e3, t.dispatchSeconds * 1e3, t.expertSeconds * 1e3, t.returnSeconds * 1e3,
                    t.combineSeconds * 1e3))
        line("  model: \(t.method)")
        return out
    }

    public static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }

    // MARK: - SVG

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// White → dark blue for 0…1.
    static func color(_ x: Double) -> String {
        let v = max(0, min(1, x.isFinite ? x : 0))
        let r = Int((1 - v) * 255 + v * 8), g = Int((1 - v) * 255 + v * 48), b = Int((1 - v) * 255 + v * 107)
        return String(format: "#%02x%02x%02x", r, g, b)
    }

    /// One heatmap: `values[row][column]`, labelled, at (x, y); returns its SVG and height.
    static func heatmap(title: String, rowLabel: String, columnLabel: String, rowNames: [String], columnNames: [String],
                        values: [[Double]], cell: Double, x: Double, y: Double, format: (Double) -> String) -> (svg: String, width: Double, height: Double) {
        let maxValue = values.joined().max() ?? 0
        let left = x + 60, top = y + 44
        var s = "<g>\n"
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" font-weight=\"bold\">%@</text>\n", x, y + 16, escape(title) as NSString)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%@ →</text>\n", left, y + 32, escape(columnLabel) as NSString)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%@ ↓</text>\n", x, y + 32, escape(rowLabel) as NSString)
        for (j, name) in columnNames.enumerated() {
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\">%@</text>\n",
                        left + (Double(j) + 0.5) * cell, top - 3, escape(name) as NSString)
        }
        let showNumbers = cell >= 28
        for (i, row) in values.enumerated() {
            let yy = top + Double(i) * cell
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"end\">%@</text>\n",
                        left - 4, yy + cell / 2 + 3, escape(rowNames[i]) as NSString)
            for (j, v) in row.enumerated() {
                let fraction = maxValue > 0 ? v / maxValue : 0
                s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\" stroke=\"#cccccc\" stroke-width=\"0.5\"><title>%@</title></rect>\n",
                            left + Double(j) * cell, yy, cell, cell, color(fraction) as NSString,
                            escape("\(rowNames[i]), \(columnNames[j]): \(format(v))") as NSString)
                if showNumbers {
                    s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"8\" text-anchor=\"middle\" fill=\"%@\">%@</text>\n",
                                left + (Double(j) + 0.5) * cell, yy + cell / 2 + 3, fraction > 0.55 ? "#ffffff" : "#000000",
                                escape(format(v)) as NSString)
                }
            }
        }
        s += "</g>\n"
        return (s, 60 + Double(columnNames.count) * cell + 20, 44 + Double(values.count) * cell + 20)
    }

    /// Two heatmaps: expert load per layer (layers × experts, tokens) and rank-to-rank dispatch
    /// traffic (ranks × ranks, MB over the trace).
    public static func svg(_ e: PlacementEvaluation) -> String {
        let loadCell = max(8, min(40, 640 / Double(max(e.experts, 1)), 1280 / Double(max(e.layersCount, 1))))
        let loads = heatmap(title: "Expert load per layer (tokens routed)", rowLabel: "layer", columnLabel: "expert",
                            rowNames: e.layers.map { "L\($0.layer)" }, columnNames: (0..<e.experts).map { "e\($0)" },
                            values: e.layers.map { $0.expertLoads.map(Double.init) }, cell: loadCell, x: 10, y: 10,
                            format: { String(Int($0)) })
        let trafficCell = max(8, min(48, 480 / Double(max(e.worldSize, 1))))
        let traffic = heatmap(title: "Dispatch traffic, MB (owner → expert rank; return reversed)", rowLabel: "from", columnLabel: "to",
                              rowNames: (0..<e.worldSize).map { "r\($0)" }, columnNames: (0..<e.worldSize).map { "r\($0)" },
                              values: e.dispatchBytes.map { $0.map { Double($0) / 1e6 } }, cell: trafficCell, x: 10, y: 20 + loads.height,
                              format: { String(format: "%.2f", $0) })
        let width = max(loads.width, traffic.width, 480) + 20
        let height = loads.height + traffic.height + 60
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += String(format: "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
                    width, height, width, height)
        s += "<title>\(escape("grok place evaluate: \(e.topology) on \(e.trace)"))</title>\n"
        s += "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
        s += loads.svg + traffic.svg
        s += String(format: "<text x=\"10\" y=\"%.1f\" font-size=\"10\">%@</text>\n", height - 12,
                    escape(String(format: "imbalance %.3f, all-to-all %.3f MB per step, predicted MoE %.3f ms per step, %d/%d replicas used",
                                  e.imbalance, e.alltoallBytesPerStep / 1e6, e.time.stepSeconds * 1e3, e.replicasUsed, e.replicasPlaced)) as NSString)
        s += "</svg>\n"
        return s
    }

    // MARK: - Compare

    /// One strategy's result in `grok place compare`.
    public struct Comparison: Sendable, Codable {
        public var strategy: String
        /// Nil when the strategy could not place (then `error` says why).
        public var evaluation: PlacementEvaluation?
        /// Max/mean of the load per rank when replicas share an expert's tokens equally (the model the
        /// strategies optimise; the runtime's replica rule may do otherwise, see `evaluation`).
        public var expectedImbalance: Double?
        public var maxExpertsPerRank: Int?
        public var error: String?
    }

    public static func compareText(_ rows: [Comparison], header: String) -> String {
        var out = header + "\n"
        out += "strategy      expected  imbalance  busiest/step  a2a MB/step  a2a MB total  replicas used/placed  experts/rank  locality  MoE ms/step\n"
        for c in rows {
            guard let e = c.evaluation else {
                out += c.strategy.padding(toLength: 12, withPad: " ", startingAt: 0) + "  n/a: " + (c.error ?? "") + "\n"
                continue
            }
            out += c.strategy.padding(toLength: 12, withPad: " ", startingAt: 0)
            out += String(format: "  %8.3f  %9.3f  %12.2f  ", c.expectedImbalance ?? 0, e.imbalance, e.layers.reduce(0) { $0 + $1.busiestRowsPerStep })
                + pad(mb(e.alltoallBytesPerStep), 11) + "  " + pad(mb(Double(e.alltoallBytes)), 12) + "  "
                + pad("\(e.replicasUsed)/\(e.replicasPlaced)", 20)
                + String(format: "  %12d  %7.1f%%  %11.3f\n", c.maxExpertsPerRank ?? 0, 100 * e.crossLayerLocality, e.time.stepSeconds * 1e3)
        }
        if let method = rows.compactMap({ $0.evaluation?.time.method }).first { out += "MoE time: \(method)\n" }
        out += "expected: max/mean rank load if replicas shared tokens equally (what the strategies optimise); imbalance: simulated with the runtime's replica rule, mean over layers; busiest/step: the busiest rank's expert rows per step, summed over layers\n"
        return out
    }
}
