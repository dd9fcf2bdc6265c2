import Foundation
import GrokComm
import GrokModel

/// `grok-coordinator --trace-routing DIR`: the experts every token chose in every layer, with
/// their gates, written as NumPy files (Launch/routing-trace.md). Each rank records the
/// (token, layer) pairs it routed (`GrokModel.routingTrace`); at the end rank 0 gathers, merges
/// and sorts them by (sequence, position, layer), so the files are the same whatever the layout.
/// (Reading a trace back: `RoutingTrace(directory:)` in Placement.swift.)
public struct RoutingTraceFile: Equatable {
    public var layers: Int
    public var expertsPerToken: Int
    /// `[T]` sequence index (prompt order) and position of each token, sorted by (sequence, position).
    public var sequence: [Int32] = []
    public var position: [Int32] = []
    /// `[T]` the forward micro-batch ("step") the token was processed in, counted from 0: the
    /// rows of one step are what the expert-parallel dispatch shares out among owners.
    public var step: [Int32] = []
    /// `[T, L, k]` expert ids, best first, and their raw gate probabilities.
    public var experts: [Int16] = []
    public var gates: [Float] = []

    public var tokens: Int { sequence.count }

    public struct Inconsistent: Error, CustomStringConvertible {
        public let description: String
    }

    /// One rank's records as bytes for the gather: [count, k] as Int64, then per record
    /// (sequence, position, layer, step) as Int32, then k Int16 experts, then k Float32 gates per record.
    /// `sequenceOf` maps the recorder's KV-cache slots to sequence indices of the whole run.
    public static func encode(_ recorder: RoutingRecorder, sequenceOf: (Int) -> Int) -> [UInt8] {
        var bytes: [UInt8] = []
        func append<T>(_ values: [T]) { values.withUnsafeBytes { bytes += $0 } }
        append([Int64(recorder.count), Int64(recorder.expertsPerToken)])
        var triples: [Int32] = []
        triples.reserveCapacity(recorder.count * 4)
        for i in 0..<recorder.count {
            triples += [Int32(sequenceOf(Int(recorder.slots[i]))), recorder.positions[i], recorder.layers[i], recorder.steps[i]]
        }
        append(triples)
        append(recorder.experts)
        append(recorder.gates)
        return bytes
    }

    /// Merges every rank's encoded records into the trace of a run over `layers` layers. Each
    /// (sequence, position) must have been recorded for every layer exactly once.
    public static func merge(_ parts: [[UInt8]], layers: Int, expertsPerToken k: Int) throws -> RoutingTraceFile {
        struct Row { var sequence, position, layer, step: Int32; var experts: ArraySlice<Int16>; var gates: ArraySlice<Float> }
        var rows: [Row] = []
        for part in parts where !part.isEmpty {
            var offset = 0
            func take<T>(_ count: Int, _: T.Type) throws -> [T] {
                let size = count * MemoryLayout<T>.size
                guard offset + size <= part.count else { throw Inconsistent(description: "routing trace: truncated records from a rank") }
                defer { offset += size }
                return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
                    part.withUnsafeBytes { raw in
                        UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + size)]))
                    }
                    initialized = count
                }
            }
            let header = try take(2, Int64.self)
            let n = Int(header[0])
            guard Int(header[1]) == k else { throw Inconsistent(description: "routing trace: a rank recorded \(header[1]) experts per token, expected \(k)") }
            let triples = try take(4 * n, Int32.self), experts = try take(n * k, Int16.self), gates = try take(n * k, Float.self)
            for i in 0..<n {
                rows.append(Row(sequence: triples[4 * i], position: triples[4 * i + 1], layer: triples[4 * i + 2], step: triples[4 * i + 3],
                                experts: experts[(i * k)..<((i + 1) * k)], gates: gates[(i * k)..<((i + 1) * k)]))
            }
        }
        rows.sort { ($0.sequence, $0.position, $0.layer) < ($1.sequence, $1.position, $1.layer) }
        var trace = RoutingTraceFile(layers: layers, expertsPerToken: k)
        guard rows.count % max(layers, 1) == 0 else {
            throw Inconsistent(description: "routing trace: \(rows.count) records is not a whole number of tokens × \(layers) layers")
        }
        trace.experts.reserveCapacity(rows.count * k)
        trace.gates.reserveCapacity(rows.count * k)
        for t in stride(from: 0, to: rows.count, by: layers) {
            let first = rows[t]
            for l in 0..<layers {
                let r = rows[t + l]
                guard r.sequence == first.sequence, r.position == first.position, r.layer == Int32(l) else {
                    throw Inconsistent(description: "routing trace: sequence \(first.sequence) position \(first.position) does not have exactly one record per layer")
                }
                trace.experts += r.experts
                trace.gates += r.gates
            }
            trace.sequence.append(first.sequence)
            trace.position.append(first.position)
            trace.step.append(first.step)
        }
        return trace
    }

    /// Creates `directory` (before the run, so that a bad path fails early).
    static func prepare(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue,
                  FileManager.default.isWritableFile(atPath: directory) else {
                throw CocoaError(.fileWriteNoPermission)
            }
        } catch {
            throw GenerationError("--trace-routing: cannot write \(directory): \(error.localizedDescription)")
        }
    }

    /// Writes experts.npy, gates.npy, sequence.npy, position.npy and meta.json into `directory`
    /// (created if missing).
    public func write(to directory: String, expertCount: Int, model: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let url = URL(fileURLWithPath: directory)
        let shape = [tokens, layers, expertsPerToken]
        try NPY.write(experts, shape: shape, to: url.appendingPathComponent("experts.npy").path)
        try NPY.write(gates, shape: shape, to: url.appendingPathComponent("gates.npy").path)
        try NPY.write(sequence, shape: [tokens], to: url.appendingPathComponent("sequence.npy").path)
        try NPY.write(position, shape: [tokens], to: url.appendingPathComponent("position.npy").path)
        try NPY.write(step, shape: [tokens], to: url.appendingPathComponent("step.npy").path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let modelJSON = String(decoding: try encoder.encode([model]), as: UTF8.self).dropFirst().dropLast()
        let meta = "{\"format\": \"grokcluster-routing-trace\", \"version\": 1, \"layers\": \(layers), \"experts\": \(expertCount), "
            + "\"expertsPerToken\": \(expertsPerToken), \"model\": \(modelJSON), \"tokens\": \(tokens)}\n"
        try Data(meta.utf8).write(to: url.appendingPathComponent("meta.json"))
    }
}
