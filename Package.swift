// swift-tools-version:6.0
// GrokCluster: a distributed CPU runtime for xAI's Grok-1 and Grok-2 mixture-of-experts models.
// Layers (dependencies point down only; see ../shared/DESIGN.md):
//   executables ─ GrokRuntime ─ GrokModel ─ GrokCheckpoint ─ GrokTensor ─ C shims
//                             └ GrokTokenizer          GrokComm ─ CMPI   GrokTopology
import PackageDescription

let package = Package(
    name: "GrokCluster",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "grok-coordinator", targets: ["grok-coordinator"]),
        .executable(name: "grok", targets: ["grok"]),
        .library(name: "GrokRuntime", targets: ["GrokRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries, each imported by exactly one Swift file.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi",
                       providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        // Our own SIMD inner loops (dot products over quantized rows); always built optimized.
        .target(name: "CGrokKernels", path: "Sources/CGrokKernels",
                cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]),

        .target(name: "GrokTensor", dependencies: ["CBLAS", "CGrokKernels"]),
        .target(name: "GrokTopology"),
        .target(name: "GrokComm", dependencies: ["CMPI"]),
        .target(name: "GrokCheckpoint", dependencies: ["GrokTensor", "CZstd"]),
        .target(name: "GrokTokenizer"),
        .target(name: "GrokModel", dependencies: ["GrokTensor", "GrokCheckpoint", "GrokTopology", "GrokComm"]),
        .target(name: "GrokRuntime", dependencies: ["GrokModel", "GrokTokenizer", "GrokComm"]),

        .executableTarget(name: "grok-coordinator", dependencies: [
            "GrokRuntime", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "grok", dependencies: [
            "GrokRuntime", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        .testTarget(name: "GrokTensorTests", dependencies: ["GrokTensor"]),
        .testTarget(name: "GrokCheckpointTests", dependencies: ["GrokCheckpoint"]),
        .testTarget(name: "GrokCommTests", dependencies: ["GrokComm"]),
        .testTarget(name: "GrokTopologyTests", dependencies: ["GrokRuntime"]),
        .testTarget(name: "GrokTokenizerTests", dependencies: ["GrokTokenizer"]),
        .testTarget(name: "GrokModelTests", dependencies: ["GrokRuntime"],
                    resources: [.copy("Fixtures"), .copy("Reference")]),
        .testTarget(name: "GrokRuntimeTests", dependencies: ["GrokRuntime"]),
        .testTarget(name: "CLITests", dependencies: ["GrokRuntime", "grok-coordinator", "grok"]),
    ],
    swiftLanguageModes: [.v5]
)
