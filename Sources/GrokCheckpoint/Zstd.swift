// The only Swift file that imports CZstd (libzstd). Used for the per-rank shard files.
import CZstd

/// A libzstd failure: the operation and zstd's own error text (`ZSTD_getErrorName`) or our reason.
public struct ZstdError: Error, CustomStringConvertible, Equatable {
    /// `compress` or `decompress`.
    public let operation: String
    /// What went wrong.
    public let reason: String

    public init(operation: String, reason: String) {
        self.operation = operation
        self.reason = reason
    }

    public var description: String { "zstd \(operation): \(reason)" }
}

/// One-shot zstd compression and decompression of byte buffers.
public enum Zstd {
    // ZSTD_CONTENTSIZE_UNKNOWN and ZSTD_CONTENTSIZE_ERROR are `(0ULL - 1)` and `(0ULL - 2)`.
    private static let contentSizeUnknown = UInt64.max
    private static let contentSizeError = UInt64.max - 1
    /// zstd cannot expand data by more than this: an RLE block (4 bytes) holds at most 128 KiB.
    private static let maximumRatio = 32_768

    /// Compresses `data` into one zstd frame that records its content size and a checksum of it
    /// (so corruption is detected on decompression, not only malformed frames).
    ///
    /// - Parameter level: zstd compression level (1…19 usual; 3 is zstd's default).
    /// - Throws: ``ZstdError`` with zstd's error text.
    public static func compress(_ data: UnsafeRawBufferPointer, level: Int = 3) throws -> [UInt8] {
        guard let context = ZSTD_createCCtx() else {
            throw ZstdError(operation: "compress", reason: "cannot allocate a compression context")
        }
        defer { ZSTD_freeCCtx(context) }
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(clamping: level)), "compress")
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), "compress")
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1), "compress")
        let bound = ZSTD_compressBound(data.count)
        try check(bound, "compress")
        var failure: Int?
        let compressed = withSource(data) { source in
            [UInt8](unsafeUninitializedCapacity: bound) { buffer, initialized in
                let n = ZSTD_compress2(context, buffer.baseAddress, bound, source, data.count)
                if ZSTD_isError(n) != 0 { failure = n; initialized = 0 } else { initialized = n }
            }
        }
        if let failure { try check(failure, "compress") }
        return compressed
    }

    /// Decompresses one or more concatenated zstd frames.
    ///
    /// When the frame header records the content size (as ``compress(_:level:)`` frames do) the output
    /// is allocated once; otherwise it is decompressed by streaming.
    /// - Parameter expectedSize: when given, the output must have exactly this many bytes.
    /// - Throws: ``ZstdError`` for corrupt, truncated or wrongly sized data.
    public static func decompress(_ data: UnsafeRawBufferPointer, expectedSize: Int? = nil) throws -> [UInt8] {
        guard data.count > 0 else { throw ZstdError(operation: "decompress", reason: "empty input (no zstd frame)") }
        if let expectedSize, expectedSize < 0 {
            throw ZstdError(operation: "decompress", reason: "expected size \(expectedSize) is negative")
        }
        let contentSize = ZSTD_getFrameContentSize(data.baseAddress, data.count)
        if contentSize == contentSizeError {
            throw ZstdError(operation: "decompress", reason: "not a zstd frame (bad magic number or frame header)")
        }
        let singleFrame = ZSTD_findFrameCompressedSize(data.baseAddress, data.count) == data.count
        if contentSize != contentSizeUnknown && singleFrame {
            if let expectedSize, UInt64(expectedSize) != contentSize {
                throw ZstdError(operation: "decompress",
                                reason: "frame holds \(contentSize) bytes, expected \(expectedSize)")
            }
            let (product, overflow) = data.count.multipliedReportingOverflow(by: maximumRatio)
            let limit = overflow ? Int.max : product
            // A header claiming more than zstd can encode is corrupt; streaming will say where.
            if contentSize <= UInt64(limit) {
                return try decompressFrame(data, size: Int(contentSize))
            }
        }
        let output = try decompressStream(data, limit: expectedSize)
        if let expectedSize, output.count != expectedSize {
            throw ZstdError(operation: "decompress", reason: "data holds \(output.count) bytes, expected \(expectedSize)")
        }
        return output
    }

    /// Decompresses one frame into `output`, which it must fill exactly (a shard chunk, whose
    /// size the index records): no intermediate copy.
    public static func decompress(_ data: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws {
        guard let source = data.baseAddress, data.count > 0 else { throw ZstdError(operation: "decompress", reason: "empty input (no zstd frame)") }
        var scratch: UInt8 = 0
        let n = withUnsafeMutablePointer(to: &scratch) { fallback in
            ZSTD_decompress(output.baseAddress ?? UnsafeMutableRawPointer(fallback), output.count, source, data.count)
        }
        try check(n, "decompress")
        guard n == output.count else {
            throw ZstdError(operation: "decompress", reason: "frame decoded to \(n) bytes, expected \(output.count)")
        }
    }

    private static func decompressFrame(_ data: UnsafeRawBufferPointer, size: Int) throws -> [UInt8] {
        var failure: Int?
        let output = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            // A zero-capacity buffer may have no address; zstd wants a pointer regardless.
            var scratch: UInt8 = 0
            let n = withUnsafeMutablePointer(to: &scratch) { fallback in
                ZSTD_decompress(buffer.baseAddress ?? fallback, size, data.baseAddress, data.count)
            }
            if ZSTD_isError(n) != 0 { failure = n; initialized = 0 } else { initialized = n }
        }
        if let failure { try check(failure, "decompress") }
        guard output.count == size else {
            throw ZstdError(operation: "decompress", reason: "frame decoded to \(output.count) bytes, its header says \(size)")
        }
        return output
    }

    private static func decompressStream(_ data: UnsafeRawBufferPointer, limit: Int?) throws -> [UInt8] {
        guard let context = ZSTD_createDCtx() else {
            throw ZstdError(operation: "decompress", reason: "cannot allocate a decompression context")
        }
        defer { ZSTD_freeDCtx(context) }
        var input = ZSTD_inBuffer(src: data.baseAddress, size: data.count, pos: 0)
        var chunk = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
        var output: [UInt8] = []
        while true {
            var status = 0
            let produced = chunk.withUnsafeMutableBytes { buffer -> Int in
                var out = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
                status = ZSTD_decompressStream(context, &out, &input)
                return out.pos
            }
            try check(status, "decompress")
            output.append(contentsOf: chunk[0..<produced])
            if let limit, output.count > limit {
                throw ZstdError(operation: "decompress", reason: "data holds more than the expected \(limit) bytes")
            }
            // Done when all input is consumed and zstd had no more output to flush.
            if input.pos == input.size && produced < chunk.count {
                guard status == 0 else {
                    throw ZstdError(operation: "decompress", reason: "input ends inside a frame (truncated data)")
                }
                return output
            }
        }
    }

    private static func withSource<R>(_ data: UnsafeRawBufferPointer, _ body: (UnsafeRawPointer) throws -> R) rethrows -> R {
        if let base = data.baseAddress { return try body(base) }
        var empty: UInt8 = 0
        return try withUnsafePointer(to: &empty) { try body(UnsafeRawPointer($0)) }
    }

    private static func check(_ code: Int, _ operation: String) throws {
        guard ZSTD_isError(code) != 0 else { return }
        throw ZstdError(operation: operation, reason: String(cString: ZSTD_getErrorName(code)))
    }
}
