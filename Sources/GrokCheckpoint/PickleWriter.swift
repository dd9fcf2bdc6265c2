import Foundation

/// What ``PickleWriter`` pickles: the Python objects of a checkpoint leaf, as the pickler sees them.
indirect enum PickleNode {
    case none
    case bool(Bool)
    case int(Int)
    case string(String)
    /// A small bytes constant Python shares between uses (numpy's `b'b'`).
    case constant([UInt8])
    /// Array data (never shared).
    case payload(UnsafeRawBufferPointer)
    case tuple([PickleNode])
    case global(module: String, name: String)
    /// `callable(*args)` then BUILD with `state` (numpy's `__reduce__`).
    case reduce(PickleNode, arguments: PickleNode, state: PickleNode)
    /// `cls.__new__(cls)` then BUILD with `state` (a dataclass under protocol 2+).
    case newObject(PickleNode, state: PickleNode)
    case dict([(String, PickleNode)])

    /// numpy 1.26's `ndarray.__reduce__` of a C-order array (what the official checkpoint holds;
    /// the bfloat16 dtype state is ml_dtypes 0.3's).
    static func array(_ dtype: PickleDType, shape: [Int], data: UnsafeRawBufferPointer) -> PickleNode {
        let descr: PickleNode, order: String, size: Int, flags: Int
        switch dtype {
        case .float32: (descr, order, size, flags) = (.string("f4"), "<", -1, 0)
        case .int8: (descr, order, size, flags) = (.string("i1"), "|", -1, 0)
        case .bfloat16: (descr, order, size, flags) = (.global(module: "ml_dtypes", name: "bfloat16"), "<", 2, 80)
        }
        let type = PickleNode.reduce(.global(module: "numpy", name: "dtype"), arguments: .tuple([descr, .bool(false), .bool(true)]),
                                     state: .tuple([.int(3), .string(order), .none, .none, .none, .int(size), .int(size), .int(flags)]))
        return .reduce(.global(module: "numpy.core.multiarray", name: "_reconstruct"),
                       arguments: .tuple([.global(module: "numpy", name: "ndarray"), .tuple([.int(0)]), .constant(Array("b".utf8))]),
                       state: .tuple([.int(1), .tuple(shape.map { .int($0) }), type, .bool(false), .payload(data)]))
    }

    /// `__main__.QuantizedWeight8bit(weight, scales)` as pickle saves a dataclass.
    static func quantized(weight: PickleNode, scales: PickleNode) -> PickleNode {
        .newObject(.global(module: "__main__", name: "QuantizedWeight8bit"), state: .dict([("weight", weight), ("scales", scales)]))
    }
}

/// Writes one pickle the way CPython's protocol-4 pickler does (Lib/pickle.py `_Pickler`, which
/// the C pickler matches): the same opcodes, memo (strings, globals and shared constants are
/// stored once and fetched with BINGET) and framing (64 KiB frames; payloads of 64 KiB or more
/// outside frames), so a leaf's file has the bytes `pickle.dump` gives for the same objects.
struct PickleWriter {
    /// The output: bytes, and payloads referenced without a copy.
    enum Chunk {
        case bytes([UInt8])
        case payload(UnsafeRawBufferPointer)
    }

    /// pickle.py `_Framer._FRAME_SIZE_TARGET` and `_FRAME_SIZE_MIN`.
    static let frameTarget = 64 * 1024, frameMinimum = 4

    private(set) var chunks: [Chunk] = [.bytes([0x80, 4])]   // PROTO 4, before framing starts
    private var frame: [UInt8] = []
    private var memo: [String: Int] = [:]
    private var memoCount = 0

    /// Pickles `root` and STOP.
    init(_ root: PickleNode) {
        save(root)
        frame.append(0x2E)   // STOP
        commitFrame(force: true)
    }

    /// Writes the chunks to `path`.
    func write(to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw CheckpointError(file: path, field: "file", expected: "a writable path", found: "cannot create it")
        }
        defer { try? handle.close() }
        do {
            for chunk in chunks {
                switch chunk {
                case .bytes(let b): try handle.write(contentsOf: b)
                case .payload(let p) where p.isEmpty: break
                case .payload(let p):
                    try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: p.baseAddress!), count: p.count, deallocator: .none))
                }
            }
        } catch {
            throw CheckpointError(file: path, field: "file", expected: "a successful write", found: "\(error.localizedDescription)")
        }
    }

    // MARK: - pickle.py's save

    private mutating func save(_ node: PickleNode) {
        commitFrame(force: false)
        if let key = Self.sharedKey(node), let index = memo[key] {
            frame += index < 256 ? [0x68, UInt8(index)] : [0x6A] + Self.le32(index)   // BINGET, LONG_BINGET
            return
        }
        switch node {
        case .none: frame.append(0x4E)
        case .bool(let b): frame.append(b ? 0x88 : 0x89)
        case .int(let v):
            switch v {
            case 0...0xFF: frame += [0x4B, UInt8(v)]                                   // BININT1
            case 0...0xFFFF: frame += [0x4D, UInt8(v & 0xFF), UInt8(v >> 8)]           // BININT2
            default: frame += [0x4A] + Self.le32(Int(UInt32(bitPattern: Int32(v))))   // BININT (shapes and dtype fields fit)
            }
        case .string(let s):
            let utf8 = Array(s.utf8)
            frame += (utf8.count <= 0xFF ? [0x8C, UInt8(utf8.count)] : [0x58] + Self.le32(utf8.count)) + utf8
            memoize(node)
        case .constant(let b):
            frame += [0x43, UInt8(b.count)] + b                                          // SHORT_BINBYTES
            memoize(node)
        case .payload(let p):
            saveBytes(p)
            memoize(node)
        case .tuple(let items):
            if items.isEmpty { frame.append(0x29); return }                              // EMPTY_TUPLE, not memoized
            if items.count > 3 { frame.append(0x28) }                                    // MARK
            items.forEach { save($0) }
            frame.append(items.count > 3 ? 0x74 : 0x84 + UInt8(items.count))             // TUPLE, TUPLE1-3
            memoize(node)
        case .global(let module, let name):
            save(.string(module))
            save(.string(name))
            frame.append(0x93)                                                           // STACK_GLOBAL
            memoize(node)
        case .reduce(let callable, let arguments, let state):
            save(callable)
            save(arguments)
            frame.append(0x52)                                                           // REDUCE
            memoize(node)
            save(state)
            frame.append(0x62)                                                           // BUILD
        case .newObject(let cls, let state):
            save(cls)
            save(.tuple([]))
            frame.append(0x81)                                                           // NEWOBJ
            memoize(node)
            save(state)
            frame.append(0x62)                                                           // BUILD
        case .dict(let items):
            frame.append(0x7D)                                                           // EMPTY_DICT
            memoize(node)
            if items.count > 1 { frame.append(0x28) }
            for (key, value) in items {
                save(.string(key))
                save(value)
            }
            if !items.isEmpty { frame.append(items.count > 1 ? 0x75 : 0x73) }           // SETITEMS, SETITEM
        }
    }

    /// pickle.py `save_bytes` (protocol 4).
    private mutating func saveBytes(_ p: UnsafeRawBufferPointer) {
        if p.count <= 0xFF {
            frame += [0x43, UInt8(p.count)] + Array(p)                                   // SHORT_BINBYTES
        } else if p.count > 0xFFFF_FFFF {
            writeLarge([0x8E] + Self.le64(p.count), p)                                   // BINBYTES8
        } else if p.count >= Self.frameTarget {
            writeLarge([0x42] + Self.le32(p.count), p)                                   // BINBYTES
        } else {
            frame += [0x42] + Self.le32(p.count) + Array(p)
        }
    }

    /// What the memo shares by value: strings, globals and constants (Python shares them by
    /// identity: interned names, one global object, numpy's one `b'b'`). Nothing else is reused.
    private static func sharedKey(_ node: PickleNode) -> String? {
        switch node {
        case .string(let s): return "s" + s
        case .global(let module, let name): return "g\(module).\(name)"
        case .constant(let b): return "b" + b.map(String.init).joined(separator: ",")
        default: return nil
        }
    }

    private mutating func memoize(_ node: PickleNode) {
        if let key = Self.sharedKey(node) { memo[key] = memoCount }
        memoCount += 1
        frame.append(0x94)   // MEMOIZE
    }

    // MARK: - pickle.py's _Framer

    private mutating func commitFrame(force: Bool) {
        guard frame.count >= Self.frameTarget || force else { return }
        if frame.count >= Self.frameMinimum { chunks.append(.bytes([0x95] + Self.le64(frame.count))) }   // FRAME
        if !frame.isEmpty { chunks.append(.bytes(frame)) }
        frame = []
    }

    private mutating func writeLarge(_ header: [UInt8], _ payload: UnsafeRawBufferPointer) {
        commitFrame(force: true)
        chunks.append(.bytes(header))
        chunks.append(.payload(payload))
    }

    private static func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    private static func le64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}
