import Foundation
import GrokCheckpoint
import GrokModel
import GrokTensor
import GrokTopology

/// A shard directory, as `grok shard` writes it and `grok-coordinator --shards` reads it:
///
///     manifest.json         what follows, the layout, every rank's blocks and checksums
///     model.gguf            the model's metadata (configuration, tokenizer), no tensors
///     rank-00000.gshard …   one file per rank: exactly the blocks that rank holds
public struct ShardManifest: Codable, Sendable {
    public static let formatName = "grokcluster-shards"
    public var format = ShardManifest.formatName
    public var version = 1
    public var model: Model
    public var topology: Layout
    /// zstd level, or nil for uncompressed (memory-mappable) shards.
    public var zstdLevel: Int?
    public var ranks: [Rank]

    public struct Model: Codable, Sendable {
        public var source: String
        public var architecture: String
        public var metadataFile: String
        public var metadataXXH64: String
    }

    public struct Layout: Codable, Sendable {
        /// The topology file's text, so a shard directory says how it was cut.
        public var json: String
        public var worldSize: Int
        /// XXH64 of every rank's block list: two layouts with the same digest hold the same blocks.
        public var digest: String
    }

    public struct Rank: Codable, Sendable {
        public var rank: Int
        public var file: String
        public var fileBytes: Int
        /// Bytes of weights (decompressed).
        public var weightBytes: Int
        public var blocks: [Block]
    }

    public struct Block: Codable, Sendable {
        public var block: WeightBlock
        public var dtype: String
        public var bytes: Int
        public var xxh64: String
    }

    static func fileName(rank: Int) -> String { String(format: "rank-%05d.gshard", rank) }
}

/// A shard directory's problem: one line naming the directory, the rank and what is wrong.
public struct ShardError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public enum Shards {
    /// Every rank's blocks under `topology`, and their digest.
    public static func layout(config: ModelConfig, topology: Topology) throws -> (blocks: [[WeightBlock]], digest: String) {
        let shape = config.shape
        try topology.validate(shape: shape, worldSize: nil, source: topology.source)
        let blocks = (0..<topology.worldSize).map { unique(WeightBlock.list(config: config, plan: topology.plan(rank: $0, shape: shape))) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let digest = try encoder.encode(blocks).withUnsafeBytes { String(format: "%016llx", Checksum.xxh64($0)) }
        return (blocks, digest)
    }

    static func unique(_ blocks: [WeightBlock]) -> [WeightBlock] {
        var seen = Set<WeightBlock>()
        return blocks.filter { seen.insert($0).inserted }
    }

    /// Cuts `source` into one shard per rank of `topology` in `directory`, streaming block by
    /// block (memory: about one block). `zstdLevel` nil writes uncompressed shards. `convert`
    /// re-encodes every matrix (not norms or routers) into that dtype; nil keeps the source's.
    @discardableResult
    public static func write(source: TensorSource, topology: Topology, topologyJSON: String, to directory: String,
                             zstdLevel: Int?, convert: DType? = nil, pool: ThreadPool, progress: ProgressBar? = nil) throws -> ShardManifest {
        let metadata = source.metadataFile
        let config = try ModelConfig(gguf: metadata)
        let (layout, digest) = try layout(config: config, topology: topology)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)

        // The metadata, without tensors.
        var writer = GGUFWriter()
        for key in metadata.metadataKeys where key != "general.alignment" { writer.set(key, metadata.metadata[key]!) }
        for (key, value) in config.structuralMetadata { writer.set(key, value) }
        let metadataPath = (directory as NSString).appendingPathComponent("model.gguf")
        try writer.write(to: metadataPath)
        let metadataHash = try Data(contentsOf: URL(fileURLWithPath: metadataPath)).withUnsafeBytes { Checksum.xxh64($0) }

        var total = 0
        for blocks in layout { for b in blocks { total += try bytes(of: b, in: source) } }
        progress?.start(total: total)
        var ranks: [ShardManifest.Rank] = []
        for (rank, blocks) in layout.enumerated() {
            let file = ShardManifest.fileName(rank: rank)
            let shard = try ShardWriter(path: (directory as NSString).appendingPathComponent(file), rank: rank,
                                        layoutDigest: digest, zstdLevel: zstdLevel)
            var entries: [ShardManifest.Block] = []
            for block in blocks {
                let info = try source.requireTensor(block.name, dims: block.dims)
                let data = try source.block(block.name, expert: block.expert, rows: block.rows, columns: block.columns)
                let target = block.isMatrix ? convert ?? info.dtype : info.dtype
                let converted = target == info.dtype ? nil : try reencode(data, block: block, from: info.dtype, to: target, pool: pool)
                try (converted ?? Array(data)).withUnsafeBytes { bytes in
                    try shard.add(block, dtype: target, bytes: converted == nil ? data : bytes, pool: pool)
                    entries.append(.init(block: block, dtype: target.name, bytes: bytes.count,
                                         xxh64: String(format: "%016llx", Checksum.xxh64(converted == nil ? data : bytes))))
                }
                source.release(data)
                progress?.advance(data.count)
            }
            let fileBytes = try shard.finish()
            ranks.append(.init(rank: rank, file: file, fileBytes: fileBytes, weightBytes: entries.map(\.bytes).reduce(0, +), blocks: entries))
        }
        progress?.finish()
        let manifest = ShardManifest(
            model: .init(source: source.path, architecture: config.architecture.rawValue, metadataFile: "model.gguf",
                         metadataXXH64: String(format: "%016llx", metadataHash)),
            topology: .init(json: topologyJSON, worldSize: topology.worldSize, digest: digest),
            zstdLevel: zstdLevel, ranks: ranks)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(manifest).write(to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("manifest.json")),
                                           options: .atomic)
        return manifest
    }

    /// `data` (rows of `block` in `from`) re-encoded row by row into `to` through f32.
    static func reencode(_ data: UnsafeRawBufferPointer, block: WeightBlock, from: DType, to: DType, pool: ThreadPool) throws -> [UInt8] {
        let cols = block.columns.count, rows = block.rows.count
        guard cols % to.blockSize == 0 else {
            throw ShardError("--dtype \(to.name.lowercased()): \(block.label) has rows of \(cols) values, not whole \(to.name) blocks of \(to.blockSize)")
        }
        let inRow = from.rowBytes(cols), outRow = to.rowBytes(cols)
        var out = [UInt8](repeating: 0, count: rows * outRow)
        out.withUnsafeMutableBytes { target in
            pool.parallelFor(rows) { r in
                let values = Quantizer.dequantize(UnsafeRawBufferPointer(rebasing: data[(r * inRow)..<((r + 1) * inRow)]), dtype: from, count: cols)
                let encoded = values.withUnsafeBufferPointer { Quantizer.quantize($0, to: to) }
                encoded.withUnsafeBytes { (target.baseAddress! + r * outRow).copyMemory(from: $0.baseAddress!, byteCount: outRow) }
            }
        }
        return out
    }

    private static func bytes(of block: WeightBlock, in source: TensorSource) throws -> Int {
        let info = try source.requireTensor(block.name, dims: block.dims)
        return block.rows.count * info.dtype.rowBytes(block.columns.count)
    }

    /// Reads `directory`'s manifest and model metadata; checks the manifest's own consistency.
    public static func readManifest(_ directory: String) throws -> (manifest: ShardManifest, metadata: GGUFFile) {
        let path = (directory as NSString).appendingPathComponent("manifest.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ShardError("--shards \(directory): no manifest.json (write one with grok shard)")
        }
        let manifest: ShardManifest
        do { manifest = try JSONDecoder().decode(ShardManifest.self, from: data) } catch {
            throw ShardError("\(path): not a shard manifest (\(error))")
        }
        guard manifest.format == ShardManifest.formatName, manifest.version == 1 else {
            throw ShardError("\(path): format \(manifest.format) version \(manifest.version), expected \(ShardManifest.formatName) version 1")
        }
        let metadataPath = (directory as NSString).appendingPathComponent(manifest.model.metadataFile)
        guard let metadataBytes = FileManager.default.contents(atPath: metadataPath) else {
            throw ShardError("\(metadataPath): missing (the model's metadata)")
        }
        let hash = metadataBytes.withUnsafeBytes { String(format: "%016llx", Checksum.xxh64($0)) }
        guard hash == manifest.model.metadataXXH64 else {
            throw ShardError("\(metadataPath): XXH64 \(hash), the manifest says \(manifest.model.metadataXXH64) (corrupted or from another model)")
        }
        return (manifest, try GGUFFile(path: metadataPath))
    }

    /// The layout a shard directory was cut for, checked against `topology` when one is given
    /// (it must hold exactly the same blocks on every rank).
    public static func topology(of manifest: ShardManifest, directory: String, config: ModelConfig,
                                given: Topology?) throws -> Topology {
        let cut = try Topology(json: Data(manifest.topology.json.utf8), source: "\(directory)/manifest.json topology")
        guard let given else { return cut }
        let digest = try layout(config: config, topology: given).digest
        guard digest == manifest.topology.digest else {
            throw ShardError("--shards \(directory): cut for another layout (\(manifest.topology.worldSize) ranks, digest \(manifest.topology.digest)) than \(given.source) (digest \(digest)); cut it again with grok shard --topology \(given.source)")
        }
        return given
    }

    /// Opens and verifies `rank`'s shard: its file, its index (rank, layout digest, the exact
    /// blocks `plan` needs, sizes and checksums against the manifest) and every chunk.
    public static func open(_ directory: String, manifest: ShardManifest, metadata: GGUFFile, rank: Int, plan: RankPlan,
                            config: ModelConfig, pool: ThreadPool, progress: (@Sendable (Int) -> Void)? = nil) throws -> ShardFile {
        guard rank < manifest.ranks.count, manifest.ranks[rank].rank == rank else {
            throw ShardError("--shards \(directory): the manifest has no entry for rank \(rank)")
        }
        let entry = manifest.ranks[rank]
        let path = (directory as NSString).appendingPathComponent(entry.file)
        let shard = try ShardFile(path: path, rank: rank, metadata: metadata, pool: pool, progress: progress)
        let label = "shard \(path) (rank \(rank))"
        guard shard.index.layoutDigest == manifest.topology.digest else {
            throw ShardError("\(label): cut for layout \(shard.index.layoutDigest), the manifest's is \(manifest.topology.digest) (a file from another shard directory?)")
        }
        let needed = unique(WeightBlock.list(config: config, plan: plan))
        guard Set(needed) == Set(shard.storedBlocks) else {
            let missing = needed.first { !shard.storedBlocks.contains($0) }
            throw ShardError("\(label): holds \(shard.storedBlocks.count) blocks, this rank needs \(needed.count)\(missing.map { " (e.g. \($0.label))" } ?? "")")
        }
        for (stored, listed) in zip(shard.index.blocks, entry.blocks) {
            let hash = stored.chunks.count == 1 ? stored.chunks[0].xxh64 : nil
            guard stored.block == listed.block, stored.bytes == listed.bytes, stored.dtype == listed.dtype,
                  hash == nil || hash == listed.xxh64 else {
                throw ShardError("\(label): tensor \(stored.block.label) differs from the manifest (size, dtype or checksum)")
            }
        }
        return shard
    }
}

/// A one-line progress bar on stderr (bytes, throughput, ETA) when stderr is a terminal; a
/// summary line at the end either way.
public final class ProgressBar: @unchecked Sendable {
    let label: String
    let enabled: Bool
    private let lock = NSLock()
    private var total = 0, done = 0
    private var started = Date(), lastDraw = Date.distantPast

    public init(label: String, enabled: Bool = isatty(STDERR_FILENO) != 0) {
        self.label = label
        self.enabled = enabled
    }

    public func start(total: Int) {
        lock.lock(); self.total = total; done = 0; started = Date(); lock.unlock()
    }

    public func advance(_ bytes: Int) {
        lock.lock(); defer { lock.unlock() }
        done += bytes
        if enabled && Date().timeIntervalSince(lastDraw) > 0.2 { draw(final: false); lastDraw = Date() }
    }

    /// Sets the bytes done (for a total gathered from several ranks).
    public func update(done bytes: Int) {
        lock.lock(); defer { lock.unlock() }
        done = bytes
        if enabled { draw(final: false) }
    }

    public func finish() {
        lock.lock(); defer { lock.unlock() }
        draw(final: true)
    }

    private func draw(final: Bool) {
        let seconds = max(Date().timeIntervalSince(started), 1e-6)
        let rate = Double(done) / seconds
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 30, filled = Int(fraction * Double(width))
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        let text = String(format: "%@ [%@] %.2f/%.2f GB  %.0f MB/s  %@", label, bar, Double(done) / 1e9, Double(total) / 1e9, rate / 1e6,
                          final ? String(format: "in %.1f s", seconds) : String(format: "ETA %.0f s", eta))
        if enabled { FileHandle.standardError.write(Data(("\r" + text + (final ? "\n" : "")).utf8)) }
        else if final { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    }
}
