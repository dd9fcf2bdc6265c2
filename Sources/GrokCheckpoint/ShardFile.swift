import Foundation
import GrokTensor

// A rank's shard: exactly the weight blocks one rank of one layout holds, already sliced, in the
// layout the kernels read, every chunk checksummed (XXH64 of its raw bytes) and optionally
// zstd-compressed. Written by `grok shard`, read by `grok-coordinator --shards`.
//
// File layout (little-endian):
//   0   "GRKSHARD"             magic
//   8   u32 version (1)
//   12  u32 reserved (0)
//   16  u64 index offset
//   24  u64 index length
//   32… chunks; a block's first chunk starts at a multiple of 64 bytes, and uncompressed chunks
//       of one block follow each other without a gap, so the block can be used in place
//   index: JSON `ShardIndex` (last, so that the writer streams)

/// What a shard holds: its rank, the layout it was cut for, and where each block's chunks are.
public struct ShardIndex: Codable, Sendable {
    public var rank: Int
    /// Digest of the whole layout's blocks (every rank's), so a shard of another layout is refused.
    public var layoutDigest: String
    /// "zstd" or "none".
    public var compression: String
    public var blocks: [StoredBlock]

    public struct StoredBlock: Codable, Sendable {
        public var block: WeightBlock
        public var dtype: String
        public var bytes: Int
        public var chunks: [StoredChunk]
    }

    public struct StoredChunk: Codable, Sendable {
        /// Byte offset in the file, bytes stored there, bytes once decompressed.
        public var offset: Int
        public var stored: Int
        public var size: Int
        /// XXH64 of the decompressed bytes, 16 hex digits.
        public var xxh64: String
    }
}

enum ShardFormat {
    static let magic = Array("GRKSHARD".utf8)
    static let version: UInt32 = 1
    static let headerSize = 32
    static let alignment = 64
    static func hex(_ value: UInt64) -> String { String(format: "%016llx", value) }
}

/// Writes one rank's shard, a block at a time (memory: one block and its compressed chunks).
public final class ShardWriter {
    public let path: String
    private let handle: FileHandle
    private let partial: String
    private var index: ShardIndex
    private var position = ShardFormat.headerSize
    private let zstdLevel: Int?
    private let chunkSize: Int

    /// `zstdLevel` nil stores chunks uncompressed (the shard can then be mapped in place).
    public init(path: String, rank: Int, layoutDigest: String, zstdLevel: Int?, chunkSize: Int = 4 << 20) throws {
        self.path = path
        partial = path + ".partial"
        guard FileManager.default.createFile(atPath: partial, contents: Data(count: ShardFormat.headerSize)),
              let handle = FileHandle(forWritingAtPath: partial) else {
            throw CheckpointError(file: path, field: "shard", expected: "a writable file", found: "cannot create \(partial)")
        }
        self.handle = handle
        handle.seek(toFileOffset: UInt64(ShardFormat.headerSize))
        self.zstdLevel = zstdLevel
        self.chunkSize = chunkSize
        index = ShardIndex(rank: rank, layoutDigest: layoutDigest, compression: zstdLevel == nil ? "none" : "zstd", blocks: [])
    }

    /// Appends `bytes` (the block in `dtype`), cut into chunks that are checksummed and
    /// compressed in parallel on `pool`.
    public func add(_ block: WeightBlock, dtype: DType, bytes: UnsafeRawBufferPointer, pool: ThreadPool) throws {
        let pieces = stride(from: 0, to: max(bytes.count, 1), by: chunkSize).map { $0 ..< min($0 + chunkSize, bytes.count) }
        var hashes = [UInt64](repeating: 0, count: pieces.count)
        var compressed = [[UInt8]?](repeating: nil, count: pieces.count)
        var failure: Error?
        let lock = NSLock()
        hashes.withUnsafeMutableBufferPointer { hashes in
            pool.parallelFor(pieces.count) { i in
                let piece = UnsafeRawBufferPointer(rebasing: bytes[pieces[i]])
                hashes[i] = Checksum.xxh64(piece)
                guard let level = zstdLevel else { return }
                do {
                    let frame = try Zstd.compress(piece, level: level)
                    lock.lock(); compressed[i] = frame; lock.unlock()
                } catch {
                    lock.lock(); failure = failure ?? error; lock.unlock()
                }
            }
        }
        if let failure { throw failure }
        pad(to: ShardFormat.alignment)
        var chunks: [ShardIndex.StoredChunk] = []
        for (i, piece) in pieces.enumerated() {
            let stored: Int
            if let frame = compressed[i] {
                handle.write(Data(frame))
                stored = frame.count
            } else {
                handle.write(Data(UnsafeRawBufferPointer(rebasing: bytes[piece])))
                stored = piece.count
            }
            chunks.append(.init(offset: position, stored: stored, size: piece.count, xxh64: ShardFormat.hex(hashes[i])))
            position += stored
        }
        index.blocks.append(.init(block: block, dtype: dtype.name, bytes: bytes.count, chunks: chunks))
    }

    /// Writes the index and the header, and moves the file into place. Returns the file's size.
    @discardableResult
    public func finish() throws -> Int {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(index)
        pad(to: 8)
        let indexOffset = position
        handle.write(json)
        position += json.count
        var header = ShardFormat.magic
        withUnsafeBytes(of: ShardFormat.version.littleEndian) { header += $0 }
        withUnsafeBytes(of: UInt32(0)) { header += $0 }
        withUnsafeBytes(of: UInt64(indexOffset).littleEndian) { header += $0 }
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { header += $0 }
        handle.seek(toFileOffset: 0)
        handle.write(Data(header))
        try handle.synchronize()
        try handle.close()
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: partial, toPath: path)
        return position
    }

    private func pad(to alignment: Int) {
        let gap = (alignment - position % alignment) % alignment
        if gap > 0 { handle.write(Data(count: gap)); position += gap }
    }
}

/// A rank's shard as a `TensorSource`. Every chunk is verified before use; uncompressed blocks
/// are used in place (memory-mapped), compressed ones are decompressed once, in parallel, into
/// the rank's own memory and the mapped file is dropped from resident memory.
public final class ShardFile: TensorSource {
    public let path: String
    public let metadataFile: GGUFFile
    public let index: ShardIndex
    private let mapping: MappedFile
    private var base: UnsafeRawPointer { mapping.bytes.baseAddress! }
    private var size: Int { mapping.bytes.count }
    private let arena = ByteArena()
    private var blocks: [WeightBlock: (info: GGUFTensorInfo, bytes: UnsafeRawBufferPointer)] = [:]
    private var tensors: [String: GGUFTensorInfo] = [:]

    /// Opens and verifies the shard at `path` for `rank`, with the model's metadata. `progress`
    /// is called (from worker threads) with the bytes of each chunk as it is verified.
    public init(path: String, rank: Int, metadata: GGUFFile, pool: ThreadPool,
                progress: (@Sendable (Int) -> Void)? = nil) throws {
        self.path = path
        metadataFile = metadata
        let label = "shard \(path) (rank \(rank))"
        mapping = try MappedFile(path: path, what: "shard file", label: label)
        guard mapping.bytes.count >= ShardFormat.headerSize else {
            throw CheckpointError(file: label, field: "header", expected: "at least \(ShardFormat.headerSize) bytes", found: "a shorter file (truncated)")
        }
        index = try ShardFile.readIndex(mapping.bytes.baseAddress!, size: mapping.bytes.count, label: label)
        guard index.rank == rank else {
            throw CheckpointError(file: label, field: "index rank", expected: "rank \(rank)",
                                  found: "rank \(index.rank): this file belongs to another rank (files swapped?)")
        }
        try load(label: label, pool: pool, progress: progress)
    }

    private static func readIndex(_ base: UnsafeRawPointer, size: Int, label: String) throws -> ShardIndex {
        guard Array(UnsafeRawBufferPointer(start: base, count: 8)) == ShardFormat.magic else {
            throw CheckpointError(file: label, field: "magic", expected: "\"GRKSHARD\"", found: "other bytes (not a shard file)")
        }
        let version = base.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian
        guard version == ShardFormat.version else {
            throw CheckpointError(file: label, field: "version", expected: "\(ShardFormat.version)", found: "\(version)")
        }
        let offset = Int(base.loadUnaligned(fromByteOffset: 16, as: UInt64.self).littleEndian)
        let length = Int(base.loadUnaligned(fromByteOffset: 24, as: UInt64.self).littleEndian)
        guard offset >= ShardFormat.headerSize, length > 0, offset <= size, length <= size - offset else {
            throw CheckpointError(file: label, field: "index", expected: "\(length) bytes at offset \(offset) inside the file",
                                  found: "a file of \(size) bytes (truncated?)")
        }
        do {
            return try JSONDecoder().decode(ShardIndex.self, from: Data(UnsafeRawBufferPointer(start: base + offset, count: length)))
        } catch {
            throw CheckpointError(file: label, field: "index", expected: "the JSON index of a shard", found: "unreadable JSON (\(error))")
        }
    }

    /// Checks every chunk's place, then verifies (and decompresses) them in parallel.
    private func load(label: String, pool: ThreadPool, progress: (@Sendable (Int) -> Void)?) throws {
        let compressed = index.compression == "zstd"
        guard compressed || index.compression == "none" else {
            throw CheckpointError(file: label, field: "index compression", expected: "zstd or none", found: index.compression)
        }
        struct Work { var block: Int; var chunk: Int; var destination: UnsafeMutableRawPointer? }
        var work: [Work] = []
        for (b, stored) in index.blocks.enumerated() {
            let where_ = "tensor \(stored.block.label)"
            guard let dtype = DType(name: stored.dtype) else {
                throw CheckpointError(file: label, field: where_, expected: "a known dtype", found: stored.dtype)
            }
            let cols = stored.block.columns.count
            guard cols % dtype.blockSize == 0, stored.bytes == stored.block.rows.count * dtype.rowBytes(cols),
                  stored.chunks.map(\.size).reduce(0, +) == stored.bytes else {
                throw CheckpointError(file: label, field: where_, expected: "\(stored.block.rows.count * dtype.rowBytes(cols)) bytes of \(dtype)",
                                      found: "\(stored.bytes) bytes in chunks of \(stored.chunks.map(\.size).reduce(0, +))")
            }
            var destination: UnsafeMutableRawPointer?
            if compressed { destination = arena.allocate(stored.bytes) }
            var offset = 0
            for (c, chunk) in stored.chunks.enumerated() {
                guard chunk.offset >= ShardFormat.headerSize, chunk.stored >= 0, chunk.offset <= size, chunk.stored <= size - chunk.offset else {
                    throw CheckpointError(file: label, field: "\(where_), chunk \(c) at byte \(chunk.offset)",
                                          expected: "\(chunk.stored) bytes inside the file", found: "a file of \(size) bytes (truncated)")
                }
                if !compressed && (chunk.stored != chunk.size || chunk.offset != stored.chunks[0].offset + offset) {
                    throw CheckpointError(file: label, field: "\(where_), chunk \(c)", expected: "contiguous uncompressed chunks", found: "a gap")
                }
                work.append(Work(block: b, chunk: c, destination: destination.map { $0 + offset }))
                offset += chunk.size
            }
            let info = GGUFTensorInfo(name: stored.block.name, dims: stored.block.dims, dtype: dtype, offset: 0)
            let bytes = UnsafeRawBufferPointer(start: destination.map(UnsafeRawPointer.init) ?? base + (stored.chunks.first?.offset ?? 0),
                                               count: stored.bytes)
            blocks[stored.block] = (info, bytes)
            if tensors[stored.block.name] == nil { tensors[stored.block.name] = info }
        }

        var failure: CheckpointError?
        let lock = NSLock()
        pool.parallelFor(work.count) { i in
            let item = work[i], stored = index.blocks[item.block], chunk = stored.chunks[item.chunk]
            let source = UnsafeRawBufferPointer(start: base + chunk.offset, count: chunk.stored)
            let field = "tensor \(stored.block.label), chunk \(item.chunk) at byte \(chunk.offset)"
            var problem: (expected: String, found: String)?
            var raw = source
            if let destination = item.destination {
                do {
                    try Zstd.decompress(source, into: UnsafeMutableRawBufferPointer(start: destination, count: chunk.size))
                    raw = UnsafeRawBufferPointer(start: destination, count: chunk.size)
                } catch {
                    problem = ("a zstd frame of \(chunk.size) bytes", "\(error) (the file is corrupted)")
                }
            }
            if problem == nil {
                let hash = ShardFormat.hex(Checksum.xxh64(raw))
                if hash != chunk.xxh64 { problem = ("XXH64 \(chunk.xxh64)", "\(hash) (the file is corrupted)") }
            }
            if item.destination != nil { mapping.evict(source) }
            if let problem {
                lock.lock()
                if failure == nil { failure = CheckpointError(file: label, field: field, expected: problem.expected, found: problem.found) }
                lock.unlock()
            }
            progress?(chunk.stored)
        }
        if let failure { throw failure }
    }

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensors[name] }

    public func block(_ name: String, expert: Int?, rows: Range<Int>, columns: Range<Int>) throws -> UnsafeRawBufferPointer {
        guard let info = tensors[name] else {
            throw CheckpointError(file: path, field: "tensor \(name)", expected: "a block of it in this shard", found: "none (a shard of another layout?)")
        }
        let key = WeightBlock(name: name, dims: info.dims, expert: expert, rows: rows, columns: columns)
        guard let found = blocks[key] ?? blocks[WeightBlock(name: name, dims: info.dims, expert: expert, rows: rows, columns: columns, isMatrix: false)] else {
            throw CheckpointError(file: path, field: "tensor \(key.label)", expected: "that block in this shard",
                                  found: "other blocks of it (a shard of another layout?)")
        }
        return found.bytes
    }

    public func release(_ bytes: UnsafeRawBufferPointer) {}

    /// Every block the shard holds, in file order.
    public var storedBlocks: [WeightBlock] { index.blocks.map(\.block) }
}
