import Foundation
import GrokCheckpoint
import GrokComm

/// `--distribute-from RANK`, for clusters without shared storage: one rank holds the shard
/// directory (or cuts it from the model), and sends every other rank its manifest, model metadata
/// and own shard file over MPI, zstd-compressed in flight (level 1) unless the shard is already
/// compressed. Each receiver writes them to a local directory, which it then loads like any
/// `--shards` directory; with `--shard-cache` that directory is kept, so the next start can use
/// `--shards` on it directly.
public enum ShardDistribution {
    /// Bytes per message; each is compressed on its own.
    static let pieceSize = 16 << 20
    static let tag = 7

    /// Collective: rank `root` sends from `directory` (meaningful on `root` only); every other
    /// rank receives into `cache`. With `rootCaches`, the root also copies its own shard there,
    /// so that `cache` is a complete `--shards` directory on every node. Returns the directory
    /// this rank loads from.
    public static func run(_ comm: Communicator, root: Int, directory: String, cache: String, rootCaches: Bool = false,
                           progress: ProgressBar? = nil) throws -> String {
        // The manifest and the metadata go to everyone (small), then each rank's file to its rank.
        var manifestBytes: [UInt8] = [], metadataBytes: [UInt8] = []
        var manifest: ShardManifest?
        if comm.rank == root {
            let (m, _) = try Shards.readManifest(directory)
            manifest = m
            manifestBytes = Array(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/manifest.json")))
            metadataBytes = Array(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(m.model.metadataFile)")))
        }
        try comm.broadcast(&manifestBytes, root: root)
        try comm.broadcast(&metadataBytes, root: root)
        if comm.rank != root { manifest = try JSONDecoder().decode(ShardManifest.self, from: Data(manifestBytes)) }
        guard let manifest, manifest.ranks.count == comm.size else {
            throw ShardError("--distribute-from \(root): the shards are for \(manifest?.ranks.count ?? 0) ranks, the world has \(comm.size)")
        }
        let compressInFlight = manifest.zstdLevel == nil

        if comm.rank == root {
            let total = manifest.ranks.filter { $0.rank != root }.map(\.fileBytes).reduce(0, +)
            progress?.start(total: total)
            for entry in manifest.ranks where entry.rank != root {
                let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(entry.file)"), options: .alwaysMapped)
                try data.withUnsafeBytes { file in
                    var header: [Int64] = [Int64(file.count)]
                    try comm.send(&header, count: 8, to: entry.rank, tag: tag)
                    for start in stride(from: 0, to: file.count, by: pieceSize) {
                        let piece = UnsafeRawBufferPointer(rebasing: file[start ..< min(start + pieceSize, file.count)])
                        var wire = compressInFlight ? try Zstd.compress(piece, level: 1) : Array(piece)
                        var size = Int64(wire.count)
                        try comm.send(&size, count: 8, to: entry.rank, tag: tag)
                        try comm.send(&wire, count: wire.count, to: entry.rank, tag: tag)
                        progress?.advance(piece.count)
                    }
                }
            }
            progress?.finish()
            guard rootCaches, cache != directory else { return directory }
            try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
            // Atomic writes: on one machine the other ranks write the same manifest and metadata there.
            for name in [manifest.ranks[root].file, manifest.model.metadataFile, "manifest.json"] {
                try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name)"), options: .alwaysMapped)
                    .write(to: URL(fileURLWithPath: "\(cache)/\(name)"), options: .atomic)
            }
            return cache
        }

        // Receive this rank's file into the cache directory.
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        let entry = manifest.ranks[comm.rank]
        var header: [Int64] = [0]
        try comm.receive(&header, count: 8, from: root, tag: tag)
        let path = "\(cache)/\(entry.file)"
        guard FileManager.default.createFile(atPath: path + ".partial", contents: nil),
              let handle = FileHandle(forWritingAtPath: path + ".partial") else {
            throw ShardError("--shard-cache \(cache): cannot write \(entry.file)")
        }
        var received = 0
        while received < Int(header[0]) {
            var size: Int64 = 0
            try comm.receive(&size, count: 8, from: root, tag: tag)
            var wire = [UInt8](repeating: 0, count: Int(size))
            try comm.receive(&wire, count: wire.count, from: root, tag: tag)
            let piece = compressInFlight
                ? try wire.withUnsafeBytes { try Zstd.decompress($0, expectedSize: min(pieceSize, Int(header[0]) - received)) } : wire
            handle.write(Data(piece))
            received += piece.count
        }
        try handle.close()
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: path + ".partial", toPath: path)
        try Data(metadataBytes).write(to: URL(fileURLWithPath: "\(cache)/\(manifest.model.metadataFile)"), options: .atomic)
        try Data(manifestBytes).write(to: URL(fileURLWithPath: "\(cache)/manifest.json"), options: .atomic)
        return cache
    }
}
