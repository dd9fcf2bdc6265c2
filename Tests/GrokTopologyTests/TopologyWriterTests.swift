import Foundation
import GrokTopology
import XCTest

/// The layout-file writer (`grok place`, `grok plan --search`) reads back to the same layout.
final class TopologyWriterTests: XCTestCase {
    func testEveryShippedLayoutRoundTrips() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Topologies")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }
        XCTAssertGreaterThanOrEqual(files.count, 14)
        for name in files {
            let original = try Topology(contentsOf: directory.appendingPathComponent(name).path)
            let written = try Topology(json: Data(original.layoutFileText.utf8), source: name)
            XCTAssertEqual(written, original, name)
        }
        var quoted = try Topology(contentsOf: directory.appendingPathComponent("tiny-1r.json").path)
        quoted.description = "a \"quoted\" line\nwith\ta tab and \\ and \u{1}"
        XCTAssertEqual(try Topology(json: Data(quoted.layoutFileText.utf8), source: "quoted").description, quoted.description)
    }
}
