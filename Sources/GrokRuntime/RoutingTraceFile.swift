import Foundation
import GrokComm
import GrokModel

/// `grok-coordinator --trace-routing DIR`: the experts every token chose in every layer, with
/// their gates, written as NumPy files (Launch/routing-trace.md). Each rank records the
/// (token, layer) pairs it routed (`GrokModel.routingTrace`); at the end rank 0 gathers, merges
/// and sorts them by (sequence, position, layer), so the files are the same whatever the layout.
/// The trace itself, its writer and its reader are `RoutingTrace` (Placement.swift).
public enum RoutingTraceFile {
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

    /// Merges every rank's encoded records into the trace of a run of `model` (`layers` layers,
    /// `experts` experts). Each (sequence, position) must have been recorded for every layer
    /// exactly once.
    public static func merge(_ parts: [[UInt8]], model: String, layers: Int, experts: Int, expertsPerToken k: Int) throws -> RoutingTrace {
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
        var trace = RoutingTrace(model: model, layers: layers, experts: experts, expertsPerToken: k, choices: [], gates: [],
                                 sequence: [], position: [], source: "(merged)")
        var step: [Int32] = []
        guard rows.count % max(layers, 1) == 0 else {
            throw Inconsistent(description: "routing trace: \(rows.count) records is not a whole number of tokens × \(layers) layers")
        }
        trace.choices.reserveCapacity(rows.count * k)
        trace.gates.reserveCapacity(rows.count * k)
        for t in stride(from: 0, to: rows.count, by: layers) {
            let first = rows[t]
            for l in 0..<layers {
                let r = rows[t + l]
                guard r.sequence == first.sequence, r.position == first.position, r.layer == Int32(l) else {
                    throw Inconsistent(description: "routing trace: sequence \(first.sequence) position \(first.position) does not have exactly one record per layer")
                }
                trace.choices += r.experts
                trace.gates += r.gates
            }
            trace.sequence.append(first.sequence)
            trace.position.append(first.position)
            step.append(first.step)
        }
        trace.step = step
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
}
