import Foundation
import GrokModel
import GrokTopology
import XCTest

/// The repository's Topologies/ directory.
let topologiesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Topologies").path

/// A shipped topology file, parsed.
func shipped(_ name: String) throws -> Topology {
    try Topology(contentsOf: topologiesDirectory + "/" + name)
}

/// Parses `json` as the file `t.json`.
func parse(_ json: String) throws -> Topology {
    try Topology(json: Data(json.utf8), source: "t.json")
}

/// The one-line message of the error `body` throws (fails when it throws none).
func message(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        try body()
        XCTFail("expected an error", file: file, line: line)
        return ""
    } catch {
        let text = "\(error)"
        XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
        return text
    }
}

/// The tiny reference shapes every tiny topology must fit.
let tinyShapes: [(name: String, shape: ModelShape)] = [("grok-1-tiny", Grok1.tiny.shape), ("grok-2-tiny", Grok2.tiny.shape)]
