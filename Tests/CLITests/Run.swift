import Foundation
import XCTest

/// The built products (`grok`, `grok-coordinator`) sit beside the test bundle.
let productsDirectory: URL = {
    var url = Bundle(for: ProductsLocator.self).bundleURL
    if url.pathExtension == "xctest" { url = url.deletingLastPathComponent() }
    return url
}()
final class ProductsLocator {}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
}

/// Runs `program` with `arguments`, killing it after `timeout` seconds (a hang fails the test).
func launch(_ program: String, _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 120,
         file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
    let p = Process()
    p.executableURL = program.hasPrefix("/") ? URL(fileURLWithPath: program) : productsDirectory.appendingPathComponent(program)
    p.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let outData = Box(), errData = Box()
    let group = DispatchGroup()
    group.enter(); DispatchQueue.global().async { outData.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter(); DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning {
        p.terminate()
        XCTFail("\(program) \(arguments.joined(separator: " ")) did not finish in \(timeout) s", file: file, line: line)
    }
    p.waitUntilExit()
    group.wait()
    return RunResult(status: p.terminationStatus, stdout: String(decoding: outData.data, as: UTF8.self),
                     stderr: String(decoding: errData.data, as: UTF8.self))
}

/// A pipe's bytes, filled by the thread that drains it (read after the group is waited on).
final class Box: @unchecked Sendable { var data = Data() }

/// mpirun with the settings this machine needs (root, shared memory, oversubscription), or nil.
let mpirun: String? = {
    for dir in ["/usr/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/mpirun") {
        return dir + "/mpirun"
    }
    return nil
}()

let mpiEnvironment = [
    "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl": "self,vader", "OMPI_MCA_btl_vader_single_copy_mechanism": "none", "OPENBLAS_NUM_THREADS": "1",
]

func runUnderMPI(ranks: Int, _ arguments: [String], timeout: TimeInterval = 120) throws -> RunResult {
    guard let mpirun else { throw XCTSkip("mpirun is not installed") }
    return try launch(mpirun, ["--oversubscribe", "--timeout", "\(Int(timeout))", "-np", "\(ranks)",
                            productsDirectory.appendingPathComponent("grok-coordinator").path] + arguments,
                   environment: mpiEnvironment, timeout: timeout + 30)
}

func scratchDirectory(_ test: XCTestCase) throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("grokcluster-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}
