#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only, for
/// every file format read in place: GGUF, safetensors, pickles, shards.
final class MappedFile: @unchecked Sendable {
    let path: String
    /// The file's bytes (empty for an empty file, which is never mapped).
    let bytes: UnsafeRawBufferPointer

    /// Maps `path`; `what` names the expected kind of file in errors ("a safetensors file"),
    /// `label` how errors name the file (default: its path).
    init(path: String, what: String, label: String? = nil) throws {
        self.path = path
        func failure(_ expected: String, _ found: String) -> CheckpointError {
            CheckpointError(file: label ?? path, field: "file", expected: expected, found: found)
        }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw failure("a readable \(what)", errnoDescription(errno)) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("a file whose size can be read", errnoDescription(errno)) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw failure("a regular file", "a directory or device") }
        let size = Int(info.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw failure("a file that can be memory-mapped", errnoDescription(errno))
        }
        bytes = UnsafeRawBufferPointer(start: mapped, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }

    /// Whether `pointer` points into this mapping.
    func contains(_ pointer: UnsafeRawPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        return pointer >= base && pointer < base + bytes.count
    }

    /// Drops the whole pages of `range` (a range of this mapping) from resident memory; reading
    /// them again faults them back in from the page cache.
    func evict(_ range: UnsafeRawBufferPointer) {
        guard let start = range.baseAddress, range.count > 0, contains(start) else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lower = (Int(bitPattern: start) + page - 1) / page * page
        let upper = min(Int(bitPattern: start) + range.count, Int(bitPattern: bytes.baseAddress! + bytes.count)) / page * page
        guard upper > lower else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: lower), upper - lower, Int32(MADV_DONTNEED))
    }
}
